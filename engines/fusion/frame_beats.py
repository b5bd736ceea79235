"""A frame-level beat and downbeat network (issue 18): the spectrogram in, two activations per frame out.

The per-beat tracker (:class:`engines.fusion.downbeat.DownbeatNet`) sees 28-32 hand-made features per beat and a
few beats of context; on the corpus's unseen songs its bar grid was right on ~45 % of them, and even with the
meter given the phase was wrong on 40 % of the songs whose beats were right. This network reads the log-mel
spectrogram and its onset flux frame by frame and sees ~22 s around every frame (a temporal convolutional network
of dilated 1-D convolutions, as in Böck & Davies' TCN beat trackers, much smaller), so a fill before a bar line, a
crash on a phrase start or a chord held for a bar are in view.

* :func:`frame_features`: ``(2 * N_BANDS, n_frames)`` float32 at :data:`FPS` frames a second (the signal is
  resampled to :data:`SR` first): log-mel power of :data:`N_BANDS` bands (30 Hz - 11 kHz, floor 80 dB under the
  peak) and its positive first difference, each z-scored per band over the song.
* :class:`FrameBeatNet`: ``(B, F, N) -> (B, 2, N)`` logits, channel 0 "a beat is here", channel 1 "a downbeat".
* :func:`beat_grid`: the constant-tempo grid (period and phase) that fits the beat activation.
* :func:`pool_at`: a frame activation at given times (the largest within :data:`POOL` frames of each).

:func:`engines.fusion.align.track_frames` turns the logits into a grid, a meter and a phase (this module imports
nothing of the fusion package, so ``align`` and ``downbeat`` may both import it).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engines.checkpoint import Int, capture_init

SR = 24000
HOP = 512
N_FFT = 2048
FPS = SR / HOP
N_BANDS = 64
N_FEATURES = 2 * N_BANDS
#: ``chroma=True``: 12 pitch-class energies more (chords change on bar lines)
N_CHROMA = 12
N_FEATURES_CHROMA = N_FEATURES + N_CHROMA
#: a beat's downbeat logit is the largest within this many frames of it (+-43 ms)
POOL = 2


def frame_features(y: np.ndarray, sr: int, chroma: bool = False) -> np.ndarray:
    """``(N_FEATURES, n_frames)`` float32 features of a mono signal ``y`` at ``sr`` (see the module docstring);
    ``chroma=True``: ``(N_FEATURES_CHROMA, n_frames)``, with the log chroma of the same STFT (librosa's chroma
    filters, each frame scaled to its largest pitch class) last."""
    from engines.audio.spectral import mel_filterbank, stft

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if sr != SR:
        import soxr

        y = soxr.resample(y, sr, SR, quality="HQ").astype(np.float32)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    power = stft(torch.from_numpy(np.ascontiguousarray(y)), N_FFT, HOP).abs().pow_(2).numpy()
    fb = np.asarray(mel_filterbank(SR, N_FFT, N_BANDS, 30.0, 11000.0), dtype=np.float32)
    mel = 10 * np.log10(np.maximum(fb @ power, 1e-10))
    mel = np.maximum(mel, mel.max() - 80)
    flux = np.concatenate([np.zeros((N_BANDS, 1), np.float32), np.maximum(np.diff(mel, axis=1), 0)], axis=1)
    parts = [mel, flux]
    if chroma:
        import librosa

        c = librosa.filters.chroma(sr=SR, n_fft=N_FFT).astype(np.float32) @ np.sqrt(power)
        parts.append(np.log1p(100.0 * c / np.maximum(c.max(0, keepdims=True), 1e-8)))
    out = np.concatenate(parts).astype(np.float64)
    mu, sd = out.mean(1, keepdims=True), out.std(1, keepdims=True)
    return ((out - mu) / (sd + 1e-3)).astype(np.float32)


class _Block(nn.Module):
    """One dilated residual block: ``(B, C, N) -> (B, C, N)``."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.ELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.drop(self.act(self.conv(x))))


@capture_init
class FrameBeatNet(nn.Module):
    """``(B, features, N) -> (B, 2, N)`` beat and downbeat logits per frame.

    A 3-frame input convolution to ``channels``, then ``levels`` residual blocks of a ``kernel``-tap convolution
    dilated 1, 2, 4, ... 2**(levels-1) frames (receptive field ``(kernel - 1) * (2**levels - 1) + 3`` frames: 1025,
    ~22 s, at the defaults), and a 1x1 head."""

    CHECKPOINT_BOUNDS = {"features": Int(1, 512), "channels": Int(1, 256), "levels": Int(1, 14),
                         "kernel": Int(3, 9)}

    def __init__(self, features: int = N_FEATURES, channels: int = 32, levels: int = 9, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"FrameBeatNet needs an odd kernel, not {kernel}.")
        self.inp = nn.Sequential(nn.Dropout(0.1), nn.Conv1d(features, channels, 3, padding=1), nn.ELU())
        self.blocks = nn.Sequential(*[_Block(channels, kernel, 2 ** i, 0.1) for i in range(levels)])
        self.head = nn.Conv1d(channels, 2, 1)

    @property
    def features(self) -> int:
        return self.inp[1].in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.inp(x)))


#: the beat periods :func:`beat_grid` weighs against the autocorrelation's, as multiples of it
PERIOD_RATIOS = (1 / 3, 1 / 2, 2 / 3, 1.0, 3 / 2, 2.0, 3.0)


def _grid_mean(act: np.ndarray, period: float, phases: np.ndarray) -> np.ndarray:
    """``(len(phases),)``: the mean of ``act`` (linearly interpolated) on the grids ``phase + k * period``."""
    n = len(act)
    k = np.arange(int(np.ceil(n / period)) + 1)
    pts = phases[:, None] + period * k[None, :]
    ok = pts <= n - 1
    vals = np.interp(np.where(ok, pts, 0), np.arange(n), act)
    return (vals * ok).sum(1) / np.maximum(ok.sum(1), 1)


def beat_grid(act: np.ndarray, fps: float, period0: float, lo_bpm: float = 40.0,
              hi_bpm: float = 220.0) -> tuple[float, float]:
    """``(period, phase)`` in frames of the constant-tempo grid that best fits a beat activation ``act``
    ``(n_frames,)`` (probabilities, ``fps`` frames a second).

    ``period0`` (frames) is the activation's autocorrelation period (:func:`engines.fusion.align.track_frames`
    takes it from ``align._tempo_period``); its multiples :data:`PERIOD_RATIOS` within ``lo_bpm``-``hi_bpm`` are
    scored by *contrast*: the mean activation on the grid minus the largest mean at a third, half or two thirds of
    a period off it (a grid at the felt beat has its off-grid points between beats; half or a third of the tempo
    has beats there, double the tempo has half its points off the beats). The best is refined within +-3 % and its
    phase taken at the highest mean activation on the grid."""
    act = np.asarray(act, dtype=np.float64)
    p0 = float(period0)

    def best(period):
        phases = np.arange(0, period, 0.5)
        on = _grid_mean(act, period, phases)
        i = int(np.argmax(on))
        off = max(float(_grid_mean(act, period, phases[i:i + 1] + f * period)[0]) for f in (1 / 3, 1 / 2, 2 / 3))
        return float(on[i]), float(on[i]) - off, float(phases[i])

    cands = [p0 * r for r in PERIOD_RATIOS if lo_bpm <= 60 * fps / (p0 * r) <= hi_bpm] or [p0]
    period = max(cands, key=lambda p: best(p)[1])
    fine = period * (1 + np.linspace(-0.03, 0.03, 61))
    period = float(fine[int(np.argmax([best(p)[0] for p in fine]))])
    return period, best(period)[2]


def frame_logits(model: FrameBeatNet, y: np.ndarray, sr: int) -> np.ndarray:
    """``(2, n_frames)`` beat and downbeat logits of a mono signal (frames at :data:`FPS`)."""
    x = torch.from_numpy(frame_features(y, sr, chroma=model.features == N_FEATURES_CHROMA))[None]
    with torch.no_grad():
        return model(x)[0].numpy()


def pool_at(act: np.ndarray, times) -> np.ndarray:
    """``(len(times),)``: the largest value of the frame activation ``act`` ``(n_frames,)`` within :data:`POOL`
    frames of each time (s)."""
    fr = np.round(np.asarray(times, dtype=np.float64) * FPS).astype(int)
    n = len(act)
    return np.array([act[max(min(f, n - 1) - POOL, 0):min(max(f, 0) + POOL + 1, n)].max() if n else 0.0
                     for f in fr], dtype=np.float64)


__all__ = ["FrameBeatNet", "beat_grid", "frame_features", "frame_logits", "pool_at", "FPS", "N_FEATURES",
           "N_FEATURES_CHROMA"]
