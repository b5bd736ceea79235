"""Where each rendered item's audio came from: the ``sources`` of its manifest row.

Rendered material names the package of each ingredient (the soundfont, the music21 score corpus,
espeak-ng, Debian's sound theme and alsa-utils recordings) with its licence as read from
``/usr/share/doc/PKG/copyright`` (or the PyPI metadata); ``real`` tells recordings from renders.
Registered real recordings (:mod:`trainers.corpus.real_sources`) are listed file by file, with
the package and licence of their registry entry (:func:`real`).
"""
from __future__ import annotations

from pathlib import Path

from ..data import Source

#: package -> licence (checked in each package's copyright file; docs/corpus.md lists them)
LICENCES = {
    "fluid-soundfont-gm": "MIT",
    "timgm6mb-soundfont": "GPL-2",
    "espeak-ng": "GPL-3+",
    "music21": "BSD-3-Clause (corpus: public-domain scores, music21 corpus terms)",
    "sound-theme-freedesktop": "CC-BY-SA-3.0 / CC-BY-3.0 / GPL-2+ (per file)",
    "alsa-utils": "GPL-2",
    "audio-studio": "MIT",
}
_SOUNDFONT_PACKAGES = {"FluidR3_GM.sf2": "fluid-soundfont-gm", "TimGM6mb.sf2": "timgm6mb-soundfont"}


def src(path: str, package: str, real: bool) -> Source:
    return Source(str(path), package, LICENCES.get(package, "see docs/corpus.md"), bool(real))


def soundfont(path: str) -> Source:
    name = Path(path).name
    return src(str(path), _SOUNDFONT_PACKAGES.get(name, "soundfont:" + name), False)


def score(key: str) -> Source:
    return src(f"music21:{key}", "music21", False)


def espeak() -> Source:
    return src("espeak-ng", "espeak-ng", False)


def synthetic(what: str) -> Source:
    """Audio this project synthesises itself (noise, synthetic birds)."""
    return src(f"synthetic:{what}", "audio-studio", False)


def real(source_id: str, paths: list[str]) -> list[Source]:
    """Rows of the files read from one registered real source (package and licence from the
    registry, :mod:`trainers.corpus.real_sources`); the source's root when no file is named."""
    from .real_sources import BY_ID
    reg = BY_ID[source_id]
    return [Source(str(p), reg.package, reg.licence, bool(reg.real)) for p in paths] or \
        [Source(reg.root, reg.package, reg.licence, bool(reg.real))]


def of_info(info: dict, soundfont_path: str) -> list[Source]:
    """Sources of one :mod:`trainers.corpus.sources` source (by its ``info`` dict)."""
    t = info.get("type", "")
    if info.get("real_source"):
        return real(info["real_source"], info.get("files", []))
    if t == "espeak-speech":  # the engine and voice that spoke (espeak-ng, flite or festival)
        from .voices import source_of
        return [source_of(info.get("voice"))]
    if t == "recorded-speech":
        return [src("/usr/share/sounds/alsa", "alsa-utils", True)]
    if t == "sung-espeak":
        from .voices import source_of
        out = [source_of(info.get("espeak_singer"))]
    elif t in ("gm-instrument", "gm-drums", "gm-effect"):
        out = [soundfont(soundfont_path)]
    elif t == "recorded-effect":
        return [src(f"/usr/share/sounds/freedesktop/stereo/{f}", "sound-theme-freedesktop", True)
                for f in info.get("files", [])[:8]] or [src("/usr/share/sounds/freedesktop", "sound-theme-freedesktop", True)]
    elif t in ("synthetic-birds", "noise"):
        return [synthetic(t)]
    else:
        out = []
    key = info.get("score") or info.get("source")
    if key:
        out.append(score(str(key)))
    return out


def merge(*groups: list[Source]) -> list[Source]:
    """Sources in order, without repeats."""
    seen, out = set(), []
    for g in groups:
        for s in g:
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out
