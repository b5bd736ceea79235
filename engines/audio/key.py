"""Key profiles and profile-correlation key finding (the one table both key estimators read).

* ``"krumhansl"``: Krumhansl-Kessler probe-tone ratings (Krumhansl 1990), for chroma of audio
  (:func:`engines.fusion.align.estimate_key`).
* ``"aarden"``: Aarden-Essen note-count profiles, music21's default (``Stream.analyze('key')``), for
  duration-weighted pitch-class histograms of scores (``trainers.corpus.scores.analyze_key``).

Both are indexed by pitch class from the tonic (0 = tonic); :func:`best_key` rolls them to every tonic.
"""
from __future__ import annotations

import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: name -> (major, minor) weights, pitch classes from the tonic
PROFILES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "krumhansl": (np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]),
                  np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])),
    "aarden": (np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624,
                         8.15494, 0.232998, 4.95122]),
               np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621,
                         1.93186, 7.37619, 1.75623])),
}


def profiles(name: str = "krumhansl") -> tuple[np.ndarray, np.ndarray]:
    """``(major, minor)`` weights of profile ``name`` (copies)."""
    if name not in PROFILES:
        raise ValueError(f"Unknown key profile {name!r}: choose {', '.join(PROFILES)}.")
    major, minor = PROFILES[name]
    return major.astype(float), minor.astype(float)


def best_key(hist: np.ndarray, profile: str = "krumhansl") -> tuple[float, int, str]:
    """``(correlation, tonic pitch class, "major" | "minor")`` of the 24 rolled profiles that correlate best
    with the 12-bin pitch-class ``hist`` (the first best wins; ``(-2.0, 0, "major")`` when no correlation is
    finite, e.g. a flat histogram)."""
    hist = np.asarray(hist, dtype=float).reshape(12)
    best = (-2.0, 0, "major")
    for mode, prof in zip(("major", "minor"), profiles(profile)):
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if np.isfinite(r) and r > best[0]:
                best = (float(r), tonic, mode)
    return best


__all__ = ["PITCH_CLASSES", "PROFILES", "profiles", "best_key"]
