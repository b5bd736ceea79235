"""A small learned downbeat tracker (issue 18): which beat of a beat grid starts a bar.

The beat grid (tempo, beats) stays :func:`engines.fusion.align.track_beats`'s constant-tempo grid; this
module replaces its downbeat heuristic (strongest low-band onsets) by a tiny network trained on the
corpus's rendered songs, whose beats and downbeats are known (``trainers/fusion_beats.py``).

* :func:`beat_features`: ``(F, n_beats)`` features per beat, z-scored per song: the spectral flux of
  24 log-mel bands around the beat (kick/bass on bar starts), the chroma change between the beat's
  interval and the previous one (chords change on bar lines) and the log energy of three bands; with
  ``n_features = N_FEATURES_BAR`` also four at the scale of a bar: the chroma change between the 2, 3 and 4
  beats before the beat and the 2, 3 and 4 from it (a chord held for a bar changes at the bar line, and
  which span changes most tells 2 from 3 from 4 beats a bar), and the same over 2 beats for the bass's chroma
  (60-250 Hz: the root moves on the downbeat).
* :class:`DownbeatNet`: three 1-D convolutions over the beat sequence (a few beats of context) ->
  one logit per beat ("this beat is a downbeat").
* :func:`decode`: the meter (2, 3 or 4 beats per bar, or the one asked for) and phase whose grid of
  downbeats best explains the logits (mean log-likelihood of "downbeat" on the grid's beats and "not"
  on the others).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engines.checkpoint import Int, capture_init
from .frame_beats import FrameBeatNet

HOP = 512
N_MELS = 24
N_FEATURES = N_MELS + 1 + 3
#: the per-beat features plus the four at the scale of a bar (see the module docstring)
N_FEATURES_BAR = N_FEATURES + 4
BAR_SPANS = (2, 3, 4)
METERS = (2, 3, 4)


def _frames(y: np.ndarray, sr: int):
    from engines.audio.spectral import mel_filterbank, stft

    n_fft = 2048
    S = stft(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), n_fft, HOP).abs().pow_(2).numpy()
    fb = np.asarray(mel_filterbank(sr, n_fft, N_MELS, 30.0, min(8000.0, sr / 2)), dtype=np.float32)
    mel = 10 * np.log10(np.maximum(fb @ S, 1e-10))
    mel = np.maximum(mel, mel.max() - 80)
    freqs = np.arange(S.shape[0]) * sr / n_fft
    # chroma: power of each bin folded onto its pitch class (60 Hz - 5 kHz)
    def fold(lo, hi):
        ok = (freqs > lo) & (freqs < hi)
        pc = np.zeros(S.shape[0], dtype=np.int64)
        pc[ok] = np.round(12 * np.log2(freqs[ok] / 440.0)).astype(np.int64) % 12
        out = np.zeros((12, S.shape[1]), dtype=np.float64)
        np.add.at(out, pc[ok], np.sqrt(S[ok]))
        return out

    chroma, bass = fold(60, 5000), fold(60, 250)
    bands = [10 * np.log10(S[(freqs >= lo) & (freqs < hi)].sum(0) + 1e-10)
             for lo, hi in ((0, 200), (200, 2000), (2000, sr / 2))]
    return mel, chroma, np.stack(bands), sr / HOP, bass


def _cos_change(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def _bar_features(per_beat: np.ndarray, bass: np.ndarray) -> np.ndarray:
    """``(4, n_beats)``: chroma change between the ``m`` beats before and the ``m`` from each beat (m in
    :data:`BAR_SPANS`; per-beat mean chromas ``per_beat`` ``(12, n)``), and the bass chroma's over 2 beats."""
    n = per_beat.shape[1]
    out = np.zeros((len(BAR_SPANS) + 1, n))
    for k, (m, src) in enumerate([(m, per_beat) for m in BAR_SPANS] + [(2, bass)]):
        for i in range(n):
            if i == 0 or i >= n - 1:
                continue
            out[k, i] = _cos_change(src[:, max(i - m, 0):i].mean(1), src[:, i:min(i + m, n)].mean(1))
    return out


def beat_features(y: np.ndarray, sr: int, beats, n_features: int = N_FEATURES) -> np.ndarray:
    """Features ``(n_features, n_beats)`` float32 of the beats ``beats`` (seconds) of a mono signal ``y``
    (``n_features``: :data:`N_FEATURES`, or :data:`N_FEATURES_BAR` with the bar-scale ones)."""
    if n_features not in (N_FEATURES, N_FEATURES_BAR):
        raise ValueError(f"beat_features makes {N_FEATURES} or {N_FEATURES_BAR} features, not {n_features}.")
    beats = np.asarray(beats, dtype=np.float64)
    mel, chroma, bands, fps, bass = _frames(np.asarray(y, dtype=np.float32).reshape(-1), sr)
    n = mel.shape[1]
    flux = np.concatenate([np.zeros((N_MELS, 1)), np.maximum(np.diff(mel, axis=1), 0)], axis=1)
    fr = np.clip(np.round(beats * fps).astype(int), 0, n - 1)
    out = np.zeros((N_FEATURES, len(beats)), dtype=np.float64)
    per_beat = np.zeros((12, len(beats)))
    per_bass = np.zeros((12, len(beats)))
    for i, f in enumerate(fr):
        lo, hi = max(f - 2, 0), min(f + 4, n)
        out[:N_MELS, i] = flux[:, lo:hi].max(1)
        nxt = fr[i + 1] if i + 1 < len(fr) else min(f + (f - fr[i - 1] if i else 20), n)
        prv = fr[i - 1] if i else max(f - (fr[1] - f if len(fr) > 1 else 20), 0)
        a = chroma[:, prv:max(f, prv + 1)].mean(1)
        b = chroma[:, f:max(nxt, f + 1)].mean(1)
        out[N_MELS, i] = 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        out[N_MELS + 1:, i] = bands[:, f:max(nxt, f + 1)].mean(1)
        per_beat[:, i], per_bass[:, i] = b, bass[:, f:max(nxt, f + 1)].mean(1)
    if n_features == N_FEATURES_BAR:
        out = np.concatenate([out, _bar_features(per_beat, per_bass)])
    mu, sd = out.mean(1, keepdims=True), out.std(1, keepdims=True)
    return ((out - mu) / (sd + 1e-6)).astype(np.float32)


@capture_init
class DownbeatNet(nn.Module):
    """``(B, N_FEATURES, n_beats) -> (B, n_beats)`` downbeat logits: three 1-D convolutions over beats."""

    CHECKPOINT_BOUNDS = {"features": Int(1, 256), "hidden": Int(1, 256), "kernel": Int(1, 33)}

    def __init__(self, features: int = N_FEATURES, hidden: int = 32, kernel: int = 5):
        super().__init__()
        p = kernel // 2
        self.net = nn.Sequential(nn.Conv1d(features, hidden, kernel, padding=p), nn.ReLU(),
                                 nn.Conv1d(hidden, hidden, kernel, padding=p), nn.ReLU(),
                                 nn.Conv1d(hidden, 1, 1))

    @property
    def features(self) -> int:
        """How many features per beat it reads (:data:`N_FEATURES` or :data:`N_FEATURES_BAR`)."""
        return self.net[0].in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def decode(logits: np.ndarray, beats_per_bar: int = 0) -> tuple[int, int, float]:
    """``(beats_per_bar, phase, score)``: the meter (:data:`METERS`, or ``beats_per_bar`` when > 0) and the
    phase (index of the first downbeat beat) with the best mean log-likelihood of the logits ``(n_beats,)``."""
    x = np.asarray(logits, dtype=np.float64)
    lp, ln = -np.logaddexp(0, -x), -np.logaddexp(0, x)  # log sigmoid(x), log (1 - sigmoid(x))
    best = (4, 0, -np.inf)
    for bpb in ([beats_per_bar] if beats_per_bar > 0 else METERS):
        for ph in range(min(bpb, len(x))):
            on = np.zeros(len(x), dtype=bool)
            on[ph::bpb] = True
            score = lp[on].mean() + (ln[~on].mean() if (~on).any() else 0.0)
            if score > best[2]:
                best = (bpb, ph, float(score))
    return best


#: the model classes a ``fusion-beats`` checkpoint may hold
MODEL_CLASSES = (DownbeatNet, FrameBeatNet)


def load(name: str | None = None):
    """The registered downbeat model (registry kind ``fusion-beats``; ``None``: the default), cached; ``None``
    when none is registered (the heuristic is then used)."""
    from engines import registry

    return registry.load_optional("fusion-beats", MODEL_CLASSES, name)


def predict(model: DownbeatNet, y: np.ndarray, sr: int, beats, beats_per_bar: int = 0) -> tuple[int, int]:
    """``(beats_per_bar, phase)`` of the beat grid ``beats`` of ``y`` with ``model`` (a frame-level model finds its
    own grid and bars: :func:`engines.fusion.align.track_frames`)."""
    if len(beats) < 2:
        return (beats_per_bar or 4), 0
    feats = torch.from_numpy(beat_features(y, sr, beats, model.features))[None]
    with torch.no_grad():
        logits = model(feats)[0].numpy()
    bpb, ph, _ = decode(logits, beats_per_bar)
    return bpb, ph


__all__ = ["DownbeatNet", "FrameBeatNet", "MODEL_CLASSES", "beat_features", "decode", "load", "predict",
           "N_FEATURES", "N_FEATURES_BAR", "METERS"]
