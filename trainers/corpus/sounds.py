"""Recorded sounds from Debian packages, sorted into the classes of the query embedder.

* ``alsa-utils``: ``/usr/share/sounds/alsa/*.wav`` - one human speaker saying channel names
  ("Front Left", ...) and a noise file.
* ``sound-theme-freedesktop``: ``/usr/share/sounds/freedesktop/stereo/*.oga`` - alarm clock,
  phone rings, login/logout chimes, notification bells (its ``audio-channel-*`` files are the same
  recordings as the alsa ones and are not used twice).
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from . import audio as A

log = logging.getLogger(__name__)

ALSA_DIR = Path("/usr/share/sounds/alsa")
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")

#: freedesktop sound names per class.
FREEDESKTOP_CLASSES: dict[str, list[str]] = {
    "alarms": ["alarm-clock-elapsed", "phone-incoming-call", "phone-outgoing-busy",
               "phone-outgoing-calling", "suspend-error"],
    "bells": ["bell", "complete", "message", "message-new-instant", "service-login", "service-logout",
              "window-attention", "window-question", "dialog-information", "dialog-warning",
              "dialog-error", "device-added", "device-removed", "network-connectivity-established",
              "network-connectivity-lost", "power-plug", "power-unplug", "audio-volume-change"],
    "noise": ["audio-test-signal"],
}


def speech_files() -> list[Path]:
    """The alsa-utils voice recordings (one speaker), sorted."""
    if not ALSA_DIR.is_dir():
        return []
    return sorted(p for p in ALSA_DIR.glob("*.wav") if p.stem != "Noise")


def class_files(cls: str) -> list[Path]:
    """Recorded files of a class (``speech``, ``alarms``, ``bells``, ``noise``) that exist here."""
    if cls == "speech":
        return speech_files()
    out = [FREEDESKTOP_DIR / f"{n}.oga" for n in FREEDESKTOP_CLASSES.get(cls, [])]
    if cls == "noise":
        out.append(ALSA_DIR / "Noise.wav")
    return [p for p in out if p.is_file()]


@functools.lru_cache(maxsize=128)
def _load(path: str, sr: int) -> np.ndarray:
    x = A.read_any(path, sr)
    x = A.trim_silence(x, -55.0, sr)
    x.setflags(write=False)
    return x


def load_sound(path: str | Path, sr: int) -> np.ndarray:
    """A recorded sound as mono float32 at ``sr``, silence trimmed (cached per process)."""
    return np.array(_load(str(path), int(sr)))
