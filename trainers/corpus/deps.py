"""Checks for the external programs and data the corpus renderer needs.

Every check raises :class:`CorpusDependencyError` with a message naming the Debian packages that
provide the missing piece and the install script, so a person can fix it in one step.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: Debian packages the renderer uses (``scripts/install_corpus_deps.sh`` installs them).
DEBIAN_PACKAGES: list[str] = [
    "fluidsynth",
    "fluid-soundfont-gm",
    "timgm6mb-soundfont",
    "espeak-ng",
    "sound-theme-freedesktop",
    "alsa-utils",
]

SF2_DIR = Path("/usr/share/sounds/sf2")
#: Default soundfonts, best first (FluidR3_GM: MIT licence; TimGM6mb: GPL-2, small, for tests).
DEFAULT_SOUNDFONTS: list[Path] = [
    SF2_DIR / "FluidR3_GM.sf2",
    SF2_DIR / "TimGM6mb.sf2",
    SF2_DIR / "default-GM.sf2",
]
SMALL_SOUNDFONT = SF2_DIR / "TimGM6mb.sf2"

INSTALL_HINT = (
    "Install them with `bash scripts/install_corpus_deps.sh` "
    "(or: sudo apt-get install -y " + " ".join(DEBIAN_PACKAGES) + ")."
)


class CorpusDependencyError(RuntimeError):
    """A program or data file the corpus renderer needs is not installed."""


def _which(name: str) -> str | None:
    return shutil.which(name)


def find_fluidsynth() -> str:
    """Return the path of the ``fluidsynth`` program or raise :class:`CorpusDependencyError`."""
    path = _which("fluidsynth")
    if not path:
        raise CorpusDependencyError(
            "The `fluidsynth` program was not found on PATH; the corpus renderer synthesises all "
            "music with it. It comes from the Debian package `fluidsynth` (soundfonts: "
            "`fluid-soundfont-gm`, `timgm6mb-soundfont`). " + INSTALL_HINT
        )
    return path


def find_espeak() -> str:
    """Return the path of ``espeak-ng`` or raise :class:`CorpusDependencyError`."""
    path = _which("espeak-ng")
    if not path:
        raise CorpusDependencyError(
            "The `espeak-ng` program was not found on PATH; the corpus renderer makes all speech "
            "and sung vocals with it. It comes from the Debian package `espeak-ng`. " + INSTALL_HINT
        )
    return path


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """Return the soundfont to use: ``path`` if given, else FluidR3_GM, else TimGM6mb.

    Raises:
        CorpusDependencyError: if the given file does not exist or no default soundfont is found.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CorpusDependencyError(
                f"Soundfont {p} does not exist. The General MIDI soundfonts come from the Debian "
                "packages `fluid-soundfont-gm` (FluidR3_GM.sf2) and `timgm6mb-soundfont` "
                "(TimGM6mb.sf2) under /usr/share/sounds/sf2. " + INSTALL_HINT
            )
        return p
    for cand in DEFAULT_SOUNDFONTS:
        if cand.is_file():
            return cand.resolve()
    raise CorpusDependencyError(
        "No General MIDI soundfont found under /usr/share/sounds/sf2. Install the Debian package "
        "`fluid-soundfont-gm` (FluidR3_GM.sf2, MIT licence) or `timgm6mb-soundfont` (TimGM6mb.sf2). "
        + INSTALL_HINT
    )


def check_all(soundfont: str | os.PathLike | None = None, need_espeak: bool = True) -> dict[str, str]:
    """Check every dependency at once; return their resolved paths.

    Args:
        soundfont: optional soundfont override.
        need_espeak: whether espeak-ng is required (every kind but ``timbre``/``fusion`` uses it).
    """
    found = {"fluidsynth": find_fluidsynth(), "soundfont": str(find_soundfont(soundfont))}
    if need_espeak:
        found["espeak-ng"] = find_espeak()
    log.debug("corpus dependencies: %s", found)
    return found
