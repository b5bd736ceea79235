"""Spectral operations shared by every engine.

STFT/iSTFT are ``torch.stft``/``torch.istft`` with a Hann window and centring, an exact pair
(round-trip error ~1e-7). Mel filterbanks and the CQT come from librosa.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=32)
def _window(n_fft: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=dtype)


def stft(x: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    """Complex STFT.

    Args:
        x: waveform ``(..., T)``.

    Returns:
        complex tensor ``(..., n_fft // 2 + 1, frames)`` with ``frames = T // hop + 1``.
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    win = _window(n_fft, flat.dtype).to(flat.device)
    spec = torch.stft(flat, n_fft, hop_length=hop, window=win, center=True, return_complex=True,
                      pad_mode="constant")
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int = 1024, hop: int = 256, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`.

    Args:
        spec: complex ``(..., F, N)``.
        length: number of output samples (pass the original ``T`` for an exact round trip).

    Returns:
        waveform ``(..., T)``.
    """
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    win = _window(n_fft, flat.real.dtype).to(flat.device)
    wav = torch.istft(flat, n_fft, hop_length=hop, window=win, center=True, length=length)
    return wav.reshape(*shape[:-2], wav.shape[-1])


def magphase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a complex spectrogram into magnitude and unit-modulus phase."""
    mag = spec.abs()
    phase = torch.where(mag > 0, spec / mag.clamp_min(1e-12), torch.ones_like(spec))
    return mag, phase


def polar(mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Combine a magnitude with a unit-modulus (complex) phase."""
    return mag * phase


def amplitude_to_db(x: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """20 log10(max(|x|, floor))."""
    return 20.0 * torch.log10(x.abs().clamp_min(floor))


@lru_cache(maxsize=32)
def _mel_np(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, norm: str | None) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=norm)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   norm: str | None = "slaney") -> torch.Tensor:
    """librosa's mel filterbank as a float32 tensor ``(n_mels, n_fft // 2 + 1)`` (cached)."""
    return torch.from_numpy(_mel_np(sr, n_fft, n_mels, float(fmin), fmax, norm).astype(np.float32))


def mel_spectrogram(x: torch.Tensor, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                    fmin: float = 0.0, fmax: float | None = None, power: float = 1.0) -> torch.Tensor:
    """Mel spectrogram ``(..., n_mels, frames)`` of a waveform ``(..., T)``."""
    mag = stft(x, n_fft, hop).abs() ** power
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).to(mag.device, mag.dtype)
    return torch.matmul(fb, mag)


def cqt(y: np.ndarray, sr: int, hop: int = 256, n_bins: int = 84, bins_per_octave: int = 12,
        fmin: float | None = None) -> np.ndarray:
    """Complex constant-Q transform (librosa) of ``(..., T)`` -> ``(..., n_bins, frames)``."""
    import librosa

    return librosa.cqt(np.asarray(y, dtype=np.float32), sr=sr, hop_length=hop, n_bins=n_bins,
                       bins_per_octave=bins_per_octave, fmin=fmin)


def frames_to_seconds(frames: np.ndarray | int, sr: int, hop: int) -> np.ndarray | float:
    """Centre time in seconds of STFT frame indices."""
    return np.asarray(frames) * hop / sr
