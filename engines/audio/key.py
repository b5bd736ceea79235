"""Key profiles and profile-correlation key finding (the one table both key estimators read).

* ``"krumhansl"``: Krumhansl-Kessler probe-tone ratings (Krumhansl 1990), for chroma of audio
  (:func:`engines.fusion.align.estimate_key`).
* ``"aarden"``: Aarden-Essen note-count profiles, music21's default (``Stream.analyze('key')``), for
  duration-weighted pitch-class histograms of scores (``trainers.corpus.scores.analyze_key``).

Both are indexed by pitch class from the tonic (0 = tonic); :func:`best_key` rolls them to every tonic.

:class:`KeyNet` is the learned alternative for audio (registry kind ``fusion-key``, trained by
``trainers/fusion_key.py`` on the corpus's rendered songs, whose score keys are known): a key profile per mode
learned as the weights of a rotation-equivariant linear classifier over the mean chroma, so every tonic is
scored by the same 2 x 12 weights.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engines.checkpoint import capture_init

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


def rotations(chroma: torch.Tensor) -> torch.Tensor:
    """``(B, 12, 12)``: ``out[b, t, j] = chroma[b, (t + j) % 12]``, the chroma seen from every tonic ``t``."""
    idx = (torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 12
    return chroma[:, idx]


@capture_init
class KeyNet(nn.Module):
    """Learned key profiles: ``logits[b, 12 * m + t] = <w_m, chroma_b rolled to tonic t> + bias_m``.

    Input ``(B, 12)``: mean chroma (:func:`chroma_vector`); output ``(B, 24)``: the 12 major tonics (C..B), then
    the 12 minor ones. Scale-free: the chroma is normalised to mean 1 inside."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, 12))
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, chroma: torch.Tensor) -> torch.Tensor:
        x = chroma / chroma.mean(1, keepdim=True).clamp_min(1e-9)
        logits = torch.einsum("btj,mj->bmt", rotations(x), self.weight) + self.bias[None, :, None]
        return logits.reshape(x.shape[0], 24)


def chroma_vector(y: np.ndarray, sr: int) -> np.ndarray:
    """``(12,)``: the mean STFT chroma (librosa, n_fft 4096, hop 2048) of a mono signal, the input of both key
    finders."""
    import librosa

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    return librosa.feature.chroma_stft(y=y, sr=sr, n_fft=4096, hop_length=2048).mean(1)


def key_index(tonic: int, mode: str) -> int:
    """The index of a key among :class:`KeyNet`'s 24 outputs: the tonic's pitch class, + 12 for a minor key."""
    return int(tonic) % 12 + (12 if mode == "minor" else 0)


def classify(model: KeyNet, chroma: np.ndarray) -> tuple[float, int, str]:
    """``(probability, tonic pitch class, "major" | "minor")`` of the best of the model's 24 keys."""
    with torch.no_grad():
        p = torch.softmax(model(torch.as_tensor(np.asarray(chroma, dtype=np.float32)).reshape(1, 12)), 1)[0]
    i = int(p.argmax())
    return float(p[i]), i % 12, ("major", "minor")[i // 12]


__all__ = ["PITCH_CLASSES", "PROFILES", "profiles", "best_key", "KeyNet", "chroma_vector", "classify",
           "key_index", "rotations"]
