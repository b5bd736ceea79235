"""Real recordings the training corpus may use, with their licences, and the bench's evaluation-only list.

Every default model was trained on renders of one General MIDI soundfont plus espeak-ng voices. This
module registers *real* recordings that installed packages ship (Debian packages, installed by
``scripts/install_corpus_deps.sh``): recorded voices in several languages and speakers, real drum
kits and instrument samples, game soundtracks and recorded effects. Each licence was read from the
package's ``/usr/share/doc/PKG/copyright``; only licences that allow commercial use are accepted
(GPL/LGPL/GFDL/CC-BY/CC-BY-SA/CC0/MIT/BSD/public domain), never non-commercial ones.

The bench (``shared/bench/README.md``) keeps some recordings for evaluation only. They are listed in
:data:`EVALUATION_ONLY` (packages) and :data:`EVALUATION_ONLY_PATHS` (path globs). :func:`files`
never yields such a path (it checks the path as installed and the file it resolves to), and
:func:`assert_not_evaluation_only` lets any other code refuse them.

* :data:`SOURCES`: the registry (frozen :class:`RealSource` rows).
* :func:`files`: existing files of a source, evaluation-only paths skipped.
* :func:`hours` / :func:`summary`: seconds of audio per source and per kind, for what is installed.
"""
from __future__ import annotations

import functools
import os
import re
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where the packages are installed; tests point it at a fake tree.
SYSTEM_ROOT = Path("/")

#: The kinds of material.
KINDS = ("speech", "singing", "instrument", "drums", "music", "stems", "effect")
#: Containers: plain audio files, or sample banks whose samples are the recordings.
CONTAINERS = ("audio", "sf2", "pat")
SPLITS = ("train", "dev")
#: How a source with several speakers names the speaker of a file: ``unit`` - the folder above the
#: file's folder (``units/<unit>/sounds/x.wav``); ``prefix`` - the file name before ``_ack``/``_select``.
SPEAKER_FROM = (None, "unit", "prefix")
REGISTRIES = ("debian", "pypi", "npm")

#: Licences accepted for training data in this MIT project (SPDX-like, prefix match).
ACCEPTED_LICENCES = ("GPL-", "LGPL-", "GFDL-", "CC-BY-", "CC-BY-SA-", "CC0-", "MIT", "BSD-",
                     "public-domain", "Zlib", "ISC")
#: Markers of licences that are never accepted.
REJECTED_MARKERS = ("NC", "NONCOMMERCIAL", "NON-COMMERCIAL", "ND", "NODERIVATIVES", "UNKNOWN",
                    "PROPRIETARY", "FREEWARE")

AUDIO_EXTS = (".wav", ".ogg", ".oga", ".flac", ".opus", ".mp3", ".aiff", ".aif", ".gsm")


class EvaluationOnlyError(PermissionError):
    """A path or package that the bench reserves for evaluation was about to be used for training."""


@dataclass(frozen=True)
class Rule:
    """One evaluation-only path glob and why (``**`` spans folders; a glob without a leading ``/``
    matches at any depth)."""

    pattern: str
    reason: str


@dataclass(frozen=True)
class RealSource:
    """One registered source of real recordings.

    ``root`` is the folder inside the installed package (absolute, as installed on the system) and
    ``globs`` the files under it (relative globs, ``**`` spans folders); ``exclude`` removes files of
    the globs. ``kind`` is one of :data:`KINDS`; ``lang`` / ``speaker`` (speech; ``speaker_from``
    when one source holds several speakers, see :func:`speaker_of`), ``instrument``
    (instrument, drums) and ``label`` (effect class) say what the layout tells. ``split`` marks
    sources held out as a real dev split.
    """

    id: str
    package: str
    version: str
    root: str
    globs: tuple[str, ...]
    kind: str
    licence: str
    attribution: str
    registry: str = "debian"
    lang: str | None = None
    speaker: str | None = None
    instrument: str | None = None
    label: str | None = None
    split: str = "train"
    exclude: tuple[str, ...] = ()
    container: str = "audio"
    speaker_from: str | None = None
    note: str = ""
    real: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.split not in SPLITS:
            raise ValueError(f"{self.id}: split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.registry not in REGISTRIES:
            raise ValueError(f"{self.id}: registry {self.registry!r} is not one of {', '.join(REGISTRIES)}")
        if self.container not in CONTAINERS:
            raise ValueError(f"{self.id}: container {self.container!r} is not one of {', '.join(CONTAINERS)}")
        if self.speaker_from not in SPEAKER_FROM:
            raise ValueError(f"{self.id}: speaker_from {self.speaker_from!r} is not one of "
                             f"{', '.join(str(x) for x in SPEAKER_FROM)}")
        if not self.root.startswith("/"):
            raise ValueError(f"{self.id}: root must be an absolute path, got {self.root!r}")

    def as_dict(self) -> dict:
        """Metadata written next to what is made from this source."""
        d = {k: getattr(self, k) for k in ("id", "package", "registry", "version", "kind", "licence",
                                           "attribution", "lang", "speaker", "instrument", "label",
                                           "split", "real")}
        return {k: v for k, v in d.items() if v is not None}


# -- the evaluation-only list (from shared/bench/README.md) ------------------------------------------

_README = "shared/bench/README.md: evaluation only"
#: Packages the bench reserves, by registry (fnmatch globs on the package name). The whole package
#: is excluded even where the bench uses only part of it.
EVALUATION_ONLY: dict[str, tuple[str, ...]] = {
    "debian": ("fretsonfire-songs-sectoid", "fretsonfire-songs-muldjord", "wesnoth-*music*",
               "wesnoth-music", "klettres-data", "tuxpaint-stamps-default", "salamander*",
               "*salamander*", "musescore-general-soundfont*"),
    "pypi": ("stempeg", "pyannote.audio", "pyannote-audio"),
    "npm": ("@audio-samples/piano*", "*salamander*"),
}

#: Path globs the bench reserves (case-insensitive). Packages used only in part (hedgewars-data,
#: hydrogen-drumkits, freepats) are listed by pack, kit and file.
EVALUATION_ONLY_PATHS: tuple[Rule, ...] = (
    Rule("**/shared/bench/data_real/**", "the real bench set itself"),
    Rule("/work/shared/bench/data_real", "the real bench set itself"),
    Rule("**/fretsonfire/**", _README + " (fretsonfire-songs-sectoid / -muldjord)"),
    Rule("**/wesnoth*/**/music/**", _README + " (wesnoth-1.16-music)"),
    Rule("**/wesnoth*/music/**", _README + " (wesnoth-1.16-music)"),
    Rule("**/klettres/**", _README + " (klettres-data)"),
    Rule("**/tuxpaint/stamps/**", _README + " (tuxpaint-stamps-default)"),
    Rule("**/*_desc_*.ogg", _README + " (tuxpaint stamp descriptions)"),
    Rule("**/blackbird.ogg", _README + " (tuxpaint-stamps-default)"),
    Rule("**/cow_white.ogg", _README + " (tuxpaint-stamps-default)"),
    Rule("**/cow.ogg", _README + " (tuxpaint-stamps-default)"),
    *(Rule(f"**/hedgewars/Data/Sounds/voices/{v}/**", _README + f" (hedgewars voice pack {v})")
      for v in ("British", "Singer", "Default_pl", "Mobster", "Surfer", "HillBilly")),
    Rule("**/hedgewars/Data/Sounds/Droplet*.ogg", _README + " (hedgewars Droplet1-3)"),
    Rule("**/drumkits/The Black Pearl 1.0/**", _README + " (hydrogen kit The Black Pearl 1.0)"),
    Rule("**/drumkits/ColomboAcousticDrumkit/**", _README + " (hydrogen kit ColomboAcousticDrumkit)"),
    Rule("**/*.h2drumkit", "packed hydrogen kits: their content cannot be checked by path"),
    Rule("**/freepats/**/000_Acoustic_Grand_Piano.pat", _README + " (freepats piano)"),
    Rule("**/freepats/**/040_Violin.pat", _README + " (freepats violin)"),
    Rule("**/*salamander*", _README + " (Salamander Grand Piano)"),
    Rule("**/*salamander*/**", _README + " (Salamander Grand Piano)"),
    Rule("**/*MuseScore_General*", _README + " (MuseScore General soundfont)"),
    Rule("**/stempeg/**", _README + " (the example stem in the stempeg wheel)"),
    Rule("**/pyannote/audio/**", _README + " (the sample recording in the pyannote.audio wheel)"),
    Rule("**/music21/corpus/miscFolk/americanfifeopus.abc", _README + " (timbre tunes X:5, X:6, X:30)"),
    Rule("**/music21/corpus/miscFolk/northumbrianminstrelsyopus.abc", _README + " (timbre tunes X:3, X:10, X:28)"),
    # Held back by us, not by the README: they hold, or may hold, the same recordings as a reserved
    # pack or kit (checked by md5 and by waveform correlation; see docs/corpus.md).
    Rule("**/hedgewars/Data/Sounds/voices/**",
         "held back: the other hedgewars voice packs share files (same md5) with the evaluation-only "
         "packs or may be processed copies of the same takes"),
    Rule("**/drumkits/Gimme A Hand 1.0/**",
         "held back: its hand claps are the recording of The Black Pearl 1.0's HandClap (r = 0.98)"),
    Rule("**/Black_Pearl_4_LV2.sf2", "held back: the AVL kits reuse The Black Pearl 1.0's samples"),
    Rule("**/Red_Zeppelin_4_LV2.sf2",
         "held back: its hi-hat samples are The Black Pearl 1.0's recordings (r = 1.0)"),
    Rule("**/avldrums.lv2/**", "held back: the AVL kits reuse The Black Pearl 1.0's samples"),
)


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """A path glob as a regex: ``**`` spans folders, ``*`` and ``?`` stay inside one name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    body = "".join(out)
    if not pattern.startswith("/"):
        body = "(?:.*/)?" + body
    # A rule on a folder also covers everything inside it.
    return re.compile(body + "(?:/.*)?", re.IGNORECASE)


def _match(pattern: str, path: str) -> bool:
    return _glob_regex(pattern).fullmatch(path) is not None


def _candidates(path: str | os.PathLike) -> list[str]:
    """The path as given (absolute, normalised) and the file it resolves to."""
    p = os.path.normpath(os.path.abspath(os.fspath(path)))
    out = [p]
    try:
        r = os.path.realpath(p)
    except OSError:  # pragma: no cover - realpath does not raise on Linux
        r = p
    if r != p:
        out.append(r)
    return out


@functools.lru_cache(maxsize=4)
def _any_rule(rules: tuple[Rule, ...]) -> re.Pattern:
    """One regex for all the rules (a quick first test; the reason is looked up on a match)."""
    return re.compile("|".join(f"(?:{_glob_regex(r.pattern).pattern})" for r in rules), re.IGNORECASE)


def _reason(path: str) -> str | None:
    if _any_rule(EVALUATION_ONLY_PATHS).fullmatch(path) is None:
        return None
    return next((r.reason for r in EVALUATION_ONLY_PATHS if _match(r.pattern, path)), None)


def evaluation_only_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` (or the file it resolves to) is evaluation-only, or None when it is not."""
    for cand in _candidates(path):
        reason = _reason(Path(cand).as_posix())
        if reason is not None:
            return reason
    return None


def is_evaluation_only(path: str | os.PathLike) -> bool:
    """True when ``path`` is on the evaluation-only list."""
    return evaluation_only_reason(path) is not None


def assert_not_evaluation_only(path: str | os.PathLike) -> None:
    """Raise :class:`EvaluationOnlyError` when ``path`` is reserved for evaluation."""
    reason = evaluation_only_reason(path)
    if reason is not None:
        raise EvaluationOnlyError(f"{os.fspath(path)} is reserved for evaluation and must not be "
                                  f"used for training ({reason})")


def package_is_evaluation_only(package: str, registry: str = "debian") -> bool:
    """True when a whole package is reserved for evaluation."""
    return any(_fnmatch_name(package, pat) for pat in EVALUATION_ONLY.get(registry, ()))


def _fnmatch_name(name: str, pattern: str) -> bool:
    import fnmatch
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def licence_ok(licence: str) -> bool:
    """True when every part of an SPDX-like licence string (``A or B``, ``A and B``, ``A / B``) is
    an accepted licence and none is non-commercial or unclear."""
    parts = [p.strip() for p in re.split(r"\s+(?:or|and|with)\s+|\s*/\s*|\s*;\s*", licence) if p.strip()]
    if not parts:
        return False
    for p in parts:
        up = p.upper()
        if any(re.search(rf"(?:^|[-_ ]){m}(?:$|[-_ ])", up) for m in REJECTED_MARKERS):
            return False
    # "X with composition exception": the exception only widens a GPL.
    heads = [p for p in parts if "exception" not in p.lower()]
    return bool(heads) and all(p.startswith(ACCEPTED_LICENCES) or p in ("MIT", "ISC", "Zlib")
                               for p in heads)


# -- the registry --------------------------------------------------------------------------------

_AST = "/usr/share/asterisk/sounds"
_AST_CORE = "asterisk-core-sounds-{}-wav"
_AST_V = "1.6.1-1"
_HW = "/usr/share/games/hedgewars/Data"
_HW_V = "1.0.2-6"
_HW_ATTR = "Hedgewars sounds (c) 2004-2006 Andrey Korotaev and the Hedgewars Project"
_H2 = "/usr/share/hydrogen/data/drumkits"
_H2_V = "2017.09.19~dfsg-1"
_KT = "/usr/share/ktuberling/sounds"
_KT_V = "4:22.12.3-1"
_SP = "/usr/share/sonic-pi/samples"
_SP_V = "3.2.2~repack-8"
_LM = "/usr/share/lmms/samples"
_LM_V = "1.2.2+dfsg1-6"
_LM_ATTR = "LMMS samples (c) the LMMS developers (Debian copyright: Files: *)"


def _asterisk(id_, folder, lang, speaker, package, version, licence, attribution, split="train",
              note=""):
    return RealSource(id=id_, package=package, version=version, root=f"{_AST}/{folder}",
                      globs=("**/*.wav", "**/*.gsm"), exclude=("silence/**",), kind="speech", lang=lang,
                      speaker=speaker, licence=licence, attribution=attribution, split=split,
                      note=("telephone prompts (words, digits, letters, short sentences), studio "
                            "recorded, 8 kHz telephone band" + (f"; {note}" if note else "")))


#: ktuberling: one folder of spoken words per language (recorded by the KDE translation teams;
#: ``<lang>.soundtheme`` maps each file to its word). ``sr@*`` repeat ``sr``; ``nn`` has no files.
_KT_LANGS = ("ca", "da", "de", "el", "en", "es", "fi", "fr", "ga", "gl", "it", "lt", "nds", "nl",
             "pt", "ro", "ru", "sl", "sr", "sv", "uk", "wa")
_KT_DEV = ("nl", "sv")

#: hydrogen acoustic kits not on the evaluation-only list: no sample shares an md5 with the
#: reserved kits, and no sample's waveform correlates above 0.95 with one of theirs (Gimme A Hand
#: 1.0, by the author of The Black Pearl 1.0, does: it is held back). The electronic kits (ElectricEmpireKit, HardElectro1,
#: VariBreaks, Audiophob) are left out: they are not recordings of acoustic instruments.
_H2_KITS = {
    "BJA_Pacific": ("CC-BY-SA-3.0", "BJA Pacific kit (c) Luc Tunguay", "dev"),
    "ForzeeStereo": ("GPL-2", "ForzeeStereo kit (c) Vladimir Sadovnikov, Alexander Belokurov", "train"),
    "Millo-Drums_v.1": ("GPL-2", "Millo-Drums (c) Emiliano Grilli (Emillo)", "train"),
    "Millo_MultiLayered2": ("GPL-2", "Millo MultiLayered 2 (c) Emiliano Grilli (Emillo)", "train"),
    "Millo_MultiLayered3": ("GPL-2", "Millo MultiLayered 3 (c) Emiliano Grilli (Emillo)", "train"),
    "rumpf_kit_z01_h2": ("CC-BY-3.0", "rumpf kit z01 (c) Emanuel Rumpf", "train"),
    "circAfrique v4": ("CC-BY-SA-3.0", "circAfrique (c) Jim Harney", "train"),
}


_MG = "/usr/share/games/megaglest"
_MG_V = "3.13.0-3"
_MG_ATTR = ("MegaGlest data (c) 2001-2011 The Glest Team, The MegaGlest Team, Titus and Philipp "
            "Tscharntke, Raphael Schroeder, Jacob Vejvoda")
#: human units only (their *_ack*/*_select* files are spoken lines).
_MG_UNITS = {
    "egypt": ("spearman",),
    "indian": ("archer", "axe_indian", "fire_archer", "horseman", "shaman", "spearman",
               "stickfighter", "worker"),
    "magic": ("archmage", "battlemage", "dragon_rider", "initiate", "summoner"),
    "norsemen": ("battleaxe", "battleaxe_berserk", "cudgel_lady", "flying_valkyrie", "spearman",
                 "spearman_berserk", "swordman", "swordman_berserk", "valkyrie"),
    "persian": ("fakir", "genie", "magician", "princess", "stickfighter", "swordman", "worker"),
}
_MG_DEV = ("persian",)
_MG_COMMON = ("technician", "archer", "horseman", "guard", "swordman", "worker", "axe_thrower",
              "archmage", "summoner", "initiate", "battlemage")


def _build() -> tuple[RealSource, ...]:
    s: list[RealSource] = []
    # speech: asterisk prompts, one professional speaker per folder
    allison = "Recorded by Allison Smith (theivrvoice.com); financial contributions by Digium, Inc."
    s += [
        _asterisk("asterisk-en-allison", "en_US_f_Allison", "en", "allison-smith",
                  _AST_CORE.format("en"), _AST_V, "CC-BY-SA-3.0", allison),
        _asterisk("asterisk-es-allison", "es_MX_f_Allison", "es", "allison-smith",
                  _AST_CORE.format("es"), _AST_V, "CC-BY-SA-3.0", allison,
                  note="same speaker as asterisk-en-allison"),
        _asterisk("asterisk-fr-june", "fr_CA_f_June", "fr", "june-wallack", _AST_CORE.format("fr"),
                  _AST_V, "CC-BY-SA-3.0", "Recorded by June Wallack (junewallack.com); translated by "
                  "Clod Patry, Kristopher Lalletti, June Wallack; Digium, Unlimitel, BGM Informatique"),
        _asterisk("asterisk-it-carlo", "it_IT_m_Carlo", "it", "carlo-flora", _AST_CORE.format("it"),
                  _AST_V, "CC-BY-3.0", "Recorded by Carlo Flora (carloflora.com); translated by "
                  "Silvia Petrin (segreterietelefoniche.it)"),
        _asterisk("asterisk-ru-ivrvoice", "ru_RU_f_IvrvoiceRU", "ru", "ivrvoice-ru",
                  _AST_CORE.format("ru"), _AST_V, "CC-BY-3.0",
                  "(c) 2010 Maxim Topal, ivrvoice.ru", split="dev"),
        _asterisk("asterisk-it-menardi", "it_IT_f_Menardi", "it", "paola-dal-zot",
                  "asterisk-prompt-it-menardi-wav", "1:1.4.22+mm20110907-3.1", "CC-BY-SA-3.0",
                  "Voices (c) 2006-2011 Marco Menardi and Paola Dal Zot (voip.ammdomus.it); the "
                  "attribution must be shown visibly to the end user",
                  note="CC BY-SA 3.0 Italy"),
        _asterisk("asterisk-es-co-july", "es", "es", "july-jimenez", "asterisk-prompt-es-co",
                  "0.20070403-2.1", "GPL-2", "Avatar Ltda. / July E. Jimenez (avatar.com.co)"),
        _asterisk("asterisk-fr-armelle", "fr", "fr", "armelle-desjardins",
                  "asterisk-prompt-fr-armelle", "20070613-2.2", "BSD-2-Clause",
                  "Voice actor Armelle Desjardins; (c) 2006 Michel Gutierrez",
                  note="BSD-style licence (retain the notice; no endorsement)"),
    ]
    # speech: ktuberling words, one folder per language
    for lang in _KT_LANGS:
        s.append(RealSource(
            id=f"ktuberling-{lang}", package="ktuberling-data", version=_KT_V, root=f"{_KT}/{lang}",
            globs=("*.ogg", "*.wav"), kind="speech", lang=lang, speaker=f"ktuberling-{lang}",
            licence="GPL-2+", attribution="KTuberling (c) 2007-2017 Albert Astals Cid, 2000 KDE Team, "
            "Eric Bischoff and the KDE translation teams",
            split="dev" if lang in _KT_DEV else "train",
            note="single spoken words (names of the toys); one speaker per language assumed"))
    # speech: megaglest unit voices (acknowledgements and selection lines), one speaker per unit
    for faction, units in _MG_UNITS.items():
        s.append(RealSource(
            id=f"megaglest-voices-{faction}", package="megaglest-data", version=_MG_V,
            root=f"{_MG}/techs/megapack/factions/{faction}/units",
            globs=tuple(f"{u}/sounds/*_{w}*.wav" for u in units for w in ("ack", "select")),
            kind="speech", lang="en", speaker_from="unit", licence="CC-BY-SA-3.0",
            attribution=_MG_ATTR, split="dev" if faction in _MG_DEV else "train",
            note="acted RTS unit lines (short); creature and machine units left out"))
    s.append(RealSource(
        id="megaglest-voices-common", package="megaglest-data", version=_MG_V,
        root=f"{_MG}/techs/megapack/commondata/sounds",
        globs=tuple(f"{u}_{w}*.wav" for u in _MG_COMMON for w in ("ack", "select")),
        kind="speech", lang="en", speaker_from="prefix", licence="CC-BY-SA-3.0",
        attribution=_MG_ATTR, note="the original Glest unit voices shared by the tech and magic "
        "factions; one speaker per unit name (actors may repeat)"))
    # singing: the only solo vocal sample outside the evaluation-only packs
    s.append(RealSource(
        id="sonic-pi-choir", package="sonic-pi-samples", version=_SP_V, root=_SP,
        globs=("ambi_choir.flac",), kind="singing", licence="CC0-1.0",
        attribution="ambi_choir.flac (c) 2013 Exsomniel, via Sonic Pi", note="one 1.6 s choir sample"))
    # drums
    for kit, (lic, attr, split) in _H2_KITS.items():
        s.append(RealSource(
            id="hydrogen-" + re.sub(r"[^a-z0-9]+", "-", kit.lower()).strip("-"),
            package="hydrogen-drumkits", version=_H2_V, root=f"{_H2}/{kit}",
            globs=("*.wav", "*.flac", "*.aiff"), kind="drums", instrument=kit, licence=lic,
            attribution=attr, split=split, note="one-shot drum samples (velocity layers)"))
    s += [
        RealSource(id="sonic-pi-drums", package="sonic-pi-samples", version=_SP_V, root=_SP,
                   globs=("drum_*.flac", "bd_*.flac", "sn_*.flac", "perc_*.flac", "tabla_*.flac"),
                   kind="drums", instrument="mixed kit and percussion", licence="CC0-1.0",
                   attribution="Sonic Pi samples (freesound.org contributors named per file in the "
                               "package copyright), via Sam Aaron",
                   note="some bd_/perc_ samples may be synthesised"),
        RealSource(id="sonic-pi-loops", package="sonic-pi-samples", version=_SP_V, root=_SP,
                   globs=("loop_*.flac",), kind="drums", instrument="drum loops",
                   licence="CC0-1.0", attribution="Sonic Pi samples (freesound.org contributors "
                   "named per file in the package copyright)"),
        RealSource(id="lmms-drums", package="lmms-common", version=_LM_V, root=_LM,
                   globs=("drums/*", "beats/*", "latin/*"), kind="drums",
                   instrument="mixed kit and percussion", licence="GPL-2+", attribution=_LM_ATTR,
                   note="some samples are drum-machine sounds"),
    ]
    # instruments
    s += [
        RealSource(id="hydrogen-guitar-strums", package="hydrogen-drumkits-effects", version=_H2_V,
                   root=f"{_H2}/belofilms_GuitarStrums", globs=("*.wav", "*.flac"),
                   kind="instrument", instrument="acoustic guitar (strums)", licence="CC-BY-3.0",
                   attribution="belofilms GuitarStrums (c) Gabriel Verdugo Soto (belofilms.com)"),
        RealSource(id="sonic-pi-guitar", package="sonic-pi-samples", version=_SP_V, root=_SP,
                   globs=("guit_*.flac",), kind="instrument", instrument="electric guitar",
                   licence="CC0-1.0", attribution="Sonic Pi samples (contributors named per file)"),
        RealSource(id="lmms-instruments", package="lmms-common", version=_LM_V, root=_LM,
                   globs=("instruments/*", "stringsnpads/*", "basses/*", "bassloops/*"),
                   kind="instrument", instrument="mixed (named by file)", licence="GPL-2+",
                   attribution=_LM_ATTR, note="file names tell the instrument; some are synthesised "
                   "pads; shapes/ and waveforms/ are left out (synthetic)"),
        RealSource(id="freepats-tone", package="freepats", version="20060219-4",
                   root="/usr/share/midi/freepats/Tone_000", globs=("*.pat",), kind="instrument",
                   instrument="GM melodic patch (named by file)", container="pat",
                   licence="GPL-2+ with composition exception",
                   attribution="FreePats (c) 2004 Free Software Foundation and the freepats.opensrc.org "
                   "contributors", note="000_Acoustic_Grand_Piano.pat and 040_Violin.pat are "
                   "evaluation-only and never listed"),
        RealSource(id="freepats-drums", package="freepats", version="20060219-4",
                   root="/usr/share/midi/freepats/Drum_000", globs=("*.pat",), kind="drums",
                   instrument="GM drum patch (named by file)", container="pat",
                   licence="GPL-2+ with composition exception",
                   attribution="FreePats (c) 2004 Free Software Foundation and contributors"),
        RealSource(id="csound-gmbank", package="csound-soundfont", version="1:6.18.1+dfsg-1",
                   root="/usr/share/sounds/sf2", globs=("sf_GMbank.sf2",), kind="instrument",
                   instrument="GM bank (all programs)", container="sf2", licence="public-domain",
                   attribution="sf_GMbank.sf2 from Csound (public domain)",
                   note="the bench uses its violin for one baseline row only (not a reference)"),
    ]
    # music beds / soundtracks
    s += [
        RealSource(id="asterisk-moh-opsound", package="asterisk-moh-opsound-wav", version="2.03-1.1",
                   root="/usr/share/asterisk/moh", globs=("*.wav",), kind="music",
                   licence="CC-BY-SA-3.0", attribution="Macroform (Paul Shuler): cold_day, robot_dity, "
                   "the_simplicity; Manolo Camp: morning_coffee; Reno Project: system"),
        RealSource(id="warzone2100-music", package="warzone2100-music", version="4.3.3-3",
                   root="/usr/share/games/warzone2100/music", globs=("**/*.opus",), kind="music",
                   licence="CC-BY-SA-3.0 or GPL-2+", attribution="Warzone 2100 soundtracks: "
                   "LupusMechanicus (Legacy, Aftermath; CC-BY-SA-3.0 or GPL-2+), Martin Severn "
                   "(original soundtrack, GPL-2+)"),
        RealSource(id="hyperrogue-music", package="hyperrogue-music", version="12.0q-1",
                   root="/usr/share/hyperrogue/music", globs=("*.ogg",), kind="music",
                   licence="CC-BY-SA-3.0", attribution="Shawn Parrotte, Lincoln Domina, Will Savino "
                   "(per track in the package copyright)"),
        RealSource(id="singularity-music", package="singularity-music", version="007-2",
                   root="/usr/share/games/singularity/music", globs=("**/*.ogg",), kind="music",
                   licence="CC-BY-SA-3.0", attribution="(c) 2007-2012 Max McCracken", split="dev"),
        RealSource(id="planetblupi-music", package="planetblupi-music-ogg", version="1.14.2-3",
                   root="/usr/share/planetblupi/music", globs=("*.ogg",), kind="music",
                   licence="GPL-3+", attribution="Planet Blupi (c) 2017-2018 Mathieu Schroeter, 1997 "
                   "Daniel Roux, EPSITEC SA & Denis Dumoulin"),
        RealSource(id="colobot-music", package="colobot-common-sounds", version="0.2.0-2",
                   root="/usr/share/games/colobot/music", globs=("*.ogg",), kind="music",
                   licence="GPL-3+", attribution="Colobot (c) 2001-2016 Daniel Roux, EPSITEC SA & "
                   "TerranovaTeam"),
        RealSource(id="supertux-music", package="supertux-data", version="0.6.3-2",
                   root="/usr/share/games/supertux2/music", globs=("**/*.ogg",), kind="music",
                   licence="GPL-2+", attribution="SuperTux music (c) Marek Moeckel and the SuperTux "
                   "Devel Team"),
        RealSource(id="hedgewars-music", package="hedgewars-data", version=_HW_V,
                   root=f"{_HW}/Music", globs=("*.ogg",), kind="music", licence="GPL-2",
                   attribution="Hedgewars music; composers in Data/Music/credits.txt (HSR, Jonatan "
                   "Nilsson, Valentin Kraevskiy, John Dum, yd, Kevin MacLeod and others)"),
        RealSource(id="etr-music", package="extremetuxracer-data", version="0.8.2-1",
                   root="/usr/share/games/etr/music", globs=("*.ogg",), kind="music",
                   licence="GPL-2+", attribution="Extreme Tux Racer (c) 1999-2001 Jasmin F. Patry and "
                   "the ETR team"),
        RealSource(id="frozen-bubble-music", package="frozen-bubble-data", version="2.212-11",
                   root="/usr/share/games/frozen-bubble/snd",
                   globs=("frozen-mainzik-*.ogg", "introzik.ogg"), kind="music", licence="GPL-2",
                   attribution="Frozen-Bubble (c) 2000-2010 The Frozen-Bubble Team, 2012 Karthik Thakore"),
        RealSource(id="asc-music", package="asc-music", version="1.3-6",
                   root="/usr/share/games/asc/music", globs=("*.mp3",), kind="music",
                   licence="GPL-2+", attribution="ASC music (c) 2002 Michael Kievernagel"),
    ]
    s.append(RealSource(
        id="megaglest-music", package="megaglest-data", version=_MG_V, root=_MG,
        globs=("techs/megapack/factions/*/music/*.ogg", "data/core/menu/music/*.ogg"), kind="music",
        licence="CC-BY-SA-3.0", attribution=_MG_ATTR + "; Romans: Mattias Westlund (Chronicles III); "
        "Norsemen: Manolo Camp"))
    # recorded effects
    s += [
        RealSource(id="megaglest-ambience", package="megaglest-data", version=_MG_V,
                   root=f"{_MG}/tilesets", globs=("*/sounds/*.wav", "*/sounds/*.ogg"), kind="effect",
                   label="ambience", licence="CC-BY-SA-3.0",
                   attribution=_MG_ATTR + "; spring ambience by dobroide (freegamedev.net)",
                   note="day/night background ambience of the tilesets (birds, wind, water)"),
        RealSource(id="hedgewars-sfx", package="hedgewars-data", version=_HW_V, root=f"{_HW}/Sounds",
                   globs=("*.ogg",), exclude=("Droplet*",), kind="effect", label="game",
                   licence="GFDL-1.3", attribution=_HW_ATTR,
                   note="weapons, explosions, impacts; Droplet1-3 are evaluation-only"),
        RealSource(id="colobot-sfx", package="colobot-common-sounds", version="0.2.0-2",
                   root="/usr/share/games/colobot/sounds", globs=("*.wav",), kind="effect",
                   label="game", licence="GPL-3+", attribution="Colobot (c) 2001-2016 Daniel Roux, "
                   "EPSITEC SA & TerranovaTeam"),
        RealSource(id="supertux-sfx", package="supertux-data", version="0.6.3-2",
                   root="/usr/share/games/supertux2/sounds", globs=("*.wav", "*.ogg"), kind="effect",
                   label="game", licence="GPL-3+", attribution="SuperTux Devel Team"),
        RealSource(id="hyperrogue-sfx", package="hyperrogue-music", version="12.0q-1",
                   root="/usr/share/hyperrogue/sounds", globs=("*.ogg",), kind="effect",
                   label="game", licence="CC-BY-SA-4.0 / CC-BY-3.0 / CC0-1.0",
                   attribution="Brett Cornwall, Zeno Rogue, Tehora Rogue; freesound.org contributors "
                   "(Jagadamba, pfranzen, Kayyy, InspectorJ and others; per file in the copyright)"),
        RealSource(id="etr-sfx", package="extremetuxracer-data", version="0.8.2-1",
                   root="/usr/share/games/etr/sounds", globs=("*.wav",), kind="effect", label="game",
                   licence="GPL-2+", attribution="Extreme Tux Racer team", split="dev"),
        RealSource(id="frozen-bubble-sfx", package="frozen-bubble-data", version="2.212-11",
                   root="/usr/share/games/frozen-bubble/snd", globs=("*.ogg",),
                   exclude=("frozen-mainzik-*", "introzik.ogg"), kind="effect", label="game",
                   licence="GPL-2", attribution="Frozen-Bubble (c) 2000-2010 The Frozen-Bubble Team, 2012 "
                   "Karthik Thakore (applause, snore, typewriter, ...)"),
        RealSource(id="lomiri-ringtones", package="lomiri-sounds", version="22.02-1",
                   root="/usr/share/sounds/lomiri", globs=("ringtones/*.ogg", "notifications/*.ogg"),
                   kind="effect", label="alarms", licence="CC-BY-SA-3.0 / CC-BY-3.0 / CC-BY-4.0 / CC0-1.0",
                   attribution="Lomiri sounds: Canonical Ltd., Amber Forest, Sam Hulick, TMetso, "
                   "Mauricio Duarte, Wayne Taylor and others (per file in the copyright)",
                   note="ringtones and notification jingles (partly synthesised)"),
        RealSource(id="lomiri-camera", package="lomiri-sounds", version="22.02-1",
                   root="/usr/share/sounds/lomiri/camera", globs=("**/*.ogg",), kind="effect",
                   label="mechanical", licence="CC0-1.0 / CC-BY-3.0",
                   attribution="camera_click: jdaniel1999 (freesound 376205); camera_focus: "
                               "kwahmah_02 (freesound 264103)"),
        RealSource(id="sonic-pi-misc", package="sonic-pi-samples", version=_SP_V, root=_SP,
                   globs=("misc_*.flac", "vinyl_*.flac", "ambi_glass_*.flac"), kind="effect",
                   label="misc", licence="CC0-1.0",
                   attribution="Sonic Pi samples (freesound.org contributors named per file)"),
        RealSource(id="lmms-effects", package="lmms-common", version=_LM_V, root=_LM,
                   globs=("effects/*", "misc/*"), kind="effect", label="misc",
                   licence="GPL-2+", attribution=_LM_ATTR),
        RealSource(id="oxygen-sounds", package="oxygen-sounds", version="4:5.27.5-2",
                   root="/usr/share/sounds", globs=("Oxygen-*.ogg",), kind="effect", label="bells",
                   licence="LGPL-3.0-or-later", attribution="Oxygen sounds (c) 2008 Nuno Filipe Povoa",
                   note="desktop notification sounds (partly synthesised)"),
    ]
    return tuple(s)


#: The registry.
SOURCES: tuple[RealSource, ...] = _build()
BY_ID: dict[str, RealSource] = {s.id: s for s in SOURCES}
if len(BY_ID) != len(SOURCES):  # pragma: no cover - a programming error
    raise RuntimeError("duplicate real source ids")


def speaker_of(source: RealSource, path: str | os.PathLike) -> str | None:
    """The speaker id of one file of a source (``<source id>/<name>`` for multi-speaker sources)."""
    if source.speaker_from is None:
        return source.speaker
    p = Path(path)
    if source.speaker_from == "unit":
        return f"{source.id}/{p.parent.parent.name}"
    m = re.match(r"(.+?)_(?:ack|select)\d*$", p.stem)
    return f"{source.id}/{m.group(1) if m else p.stem}"


def packages(sources: Iterable[RealSource] = SOURCES) -> list[str]:
    """Debian packages the sources come from, sorted."""
    return sorted({s.package for s in sources if s.registry == "debian"})


# -- listing files ------------------------------------------------------------------------------

def _system_path(path: Path, root: Path) -> str:
    """The path as it would be on the system (``path`` lies under the fake or real ``root``)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.as_posix()
    return "/" + rel.as_posix()


def _allowed(path: Path, root: Path) -> bool:
    """False when ``path`` (as installed, as it resolves, or as the system path of either) is
    evaluation-only."""
    real = Path(os.path.realpath(path))
    checks = {path.as_posix(), _system_path(path, root), real.as_posix(),
              _system_path(real, Path(os.path.realpath(root)))}
    return not any(_reason(os.path.normpath(c)) is not None for c in checks)


def files(source: RealSource | str, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Existing files of a source, sorted, each once; never an evaluation-only path.

    ``root`` replaces :data:`SYSTEM_ROOT` (the folder the package is installed under). A file that
    is, or resolves to, an evaluation-only path is skipped, whichever glob found it.
    """
    src = BY_ID[source] if isinstance(source, str) else source
    if src.registry == "debian" and package_is_evaluation_only(src.package, src.registry):
        raise EvaluationOnlyError(f"source {src.id}: package {src.package} is reserved for evaluation")
    base = Path(root) if root is not None else SYSTEM_ROOT
    folder = base / src.root.lstrip("/")
    if not folder.is_dir():
        return
    exts = AUDIO_EXTS if src.container == "audio" else (f".{src.container}",)
    candidates: set[Path] = set()
    for pattern in src.globs:
        for p in folder.glob(pattern):
            if not p.is_file() or p.suffix.lower() not in exts:
                continue
            rel = p.relative_to(folder).as_posix()
            if any(_match(x, rel) for x in src.exclude):
                continue
            if _allowed(p, base):
                candidates.add(p)
    # One path per recording: a plain file before the links to it, then by name.
    seen: set[str] = set()
    found: list[Path] = []
    for p in sorted(candidates, key=lambda q: (q.is_symlink(), q.as_posix())):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            found.append(p)
    yield from sorted(found)


def installed(source: RealSource | str, root: str | os.PathLike | None = None) -> bool:
    """True when the source has at least one file here."""
    return next(files(source, root), None) is not None


# -- durations ----------------------------------------------------------------------------------

def _sf2_seconds(path: Path) -> float:
    """Total length of the samples in a SoundFont 2 file (from its ``shdr`` records)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise ValueError(f"{path} is not a SoundFont 2 file")
        size = os.path.getsize(path)
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"LIST":
                kind = f.read(4)
                if kind == b"pdta":
                    sub, end = pos + 12, pos + 8 + clen
                    while sub + 8 <= end:
                        f.seek(sub)
                        sid, slen = struct.unpack("<4sI", f.read(8))
                        if sid == b"shdr":
                            data = f.read(slen)
                            total = 0.0
                            for i in range(slen // 46 - 1):  # the last record is the terminal EOS
                                start, stop, _, _, rate = struct.unpack_from("<5I", data, i * 46 + 20)
                                stype = struct.unpack_from("<H", data, i * 46 + 44)[0]
                                if rate > 0 and stop > start and not stype & 0x8000:  # no ROM samples
                                    total += (stop - start) / rate
                            return total
                        sub += 8 + slen + (slen & 1)
            pos += 8 + clen + (clen & 1)
    raise ValueError(f"{path} has no sample headers")


def _pat_seconds(path: Path) -> float:
    """Total length of the waves in a Gravis Ultrasound patch (``.pat``)."""
    data = path.read_bytes()
    if not data.startswith(b"GF1PATCH"):
        raise ValueError(f"{path} is not a GUS patch")
    n_waves = data[198]  # layer header: number of samples
    pos, total = 239, 0.0
    for _ in range(n_waves):
        size, = struct.unpack_from("<I", data, pos + 8)
        rate, = struct.unpack_from("<H", data, pos + 20)
        modes = data[pos + 55]
        width = 2 if modes & 1 else 1
        if rate:
            total += size / width / rate
        pos += 96 + size
    return total


def _ffprobe_seconds(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "default=nw=1:nk=1", str(path)], capture_output=True, text=True, timeout=30)
    return float(out.stdout.strip())


def duration(path: str | os.PathLike, container: str = "audio") -> float:
    """Seconds of audio in a file (its header only where the format allows)."""
    p = Path(path)
    if container == "sf2":
        return _sf2_seconds(p)
    if container == "pat":
        return _pat_seconds(p)
    if p.suffix.lower() == ".gsm":  # headerless GSM 6.10: 33 bytes per 160 samples at 8 kHz
        return p.stat().st_size // 33 * 0.02
    try:
        import soundfile as sf
        info = sf.info(str(p))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - fall back to ffprobe for what libsndfile cannot read
        pass
    return _ffprobe_seconds(p)


def read(path: str | os.PathLike, sr: int) -> "np.ndarray":
    """A registered audio file as mono float32 at ``sr`` (libsndfile, or ffmpeg for what libsndfile
    cannot decode, such as headerless GSM prompts). Refuses evaluation-only paths."""
    import numpy as np
    import soundfile as sf

    from .audio import resample
    assert_not_evaluation_only(path)
    p = Path(path)
    if p.suffix.lower() != ".gsm":
        try:
            data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
            return resample(data.mean(axis=1), int(file_sr), int(sr))
        except (RuntimeError, sf.LibsndfileError):
            pass
    cmd = ["ffmpeg", "-v", "error", "-nostdin"] + (["-f", "gsm"] if p.suffix.lower() == ".gsm" else [])
    cmd += ["-i", str(p), "-ac", "1", "-ar", str(int(sr)), "-f", "f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, timeout=120)
    if out.returncode != 0:
        raise ValueError(f"cannot decode {p.name}: {out.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


def hours(sources: Iterable[RealSource] = SOURCES, root: str | os.PathLike | None = None) -> dict[str, dict]:
    """For each installed source: ``{kind, files, seconds, hours, licence, split}``.

    A file whose length cannot be read counts in ``unreadable`` and adds no seconds.
    """
    out: dict[str, dict] = {}
    for s in sources:
        n, secs, bad = 0, 0.0, 0
        for p in files(s, root):
            n += 1
            try:
                secs += duration(p, s.container)
            except (OSError, ValueError, RuntimeError, subprocess.SubprocessError):
                bad += 1
        if n:
            out[s.id] = {"kind": s.kind, "package": s.package, "files": n, "seconds": secs,
                         "hours": secs / 3600.0, "unreadable": bad, "licence": s.licence,
                         "split": s.split}
    return out


def summary(report: dict[str, dict]) -> dict[str, dict]:
    """Hours per kind (and per split) from :func:`hours`."""
    out: dict[str, dict] = {}
    for row in report.values():
        k = out.setdefault(row["kind"], {"sources": 0, "files": 0, "hours": 0.0, "dev_hours": 0.0})
        k["sources"] += 1
        k["files"] += row["files"]
        k["hours"] += row["hours"]
        if row["split"] == "dev":
            k["dev_hours"] += row["hours"]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m trainers.corpus.real_sources``: print hours per source and kind for what is installed."""
    import argparse
    import json
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    rep = hours()
    if args.json:
        print(json.dumps({"sources": rep, "kinds": summary(rep)}, indent=1))
        return 0
    for sid, r in rep.items():
        print(f"{sid:32s} {r['kind']:10s} {r['files']:5d} files {r['hours']:7.3f} h  {r['licence']}"
              f"{'  [dev]' if r['split'] == 'dev' else ''}")
    for k, r in summary(rep).items():
        print(f"{k:10s} {r['sources']:3d} sources {r['files']:6d} files {r['hours']:7.3f} h "
              f"(dev {r['dev_hours']:.3f} h)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
