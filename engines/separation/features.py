"""Front end shared by the built-in model, detection and the mask optimisation.

All functions take 16 kHz mono waveforms as torch tensors ``(..., T)``.
"""
from __future__ import annotations

import torch

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from engines.audio.spectral import stft

SR = 16000
#: Front end of the built-in model (fixed: the checkpoint was trained with it).
MODEL_NFFT = 512
MODEL_HOP = 256
MODEL_MELS = 64
LOG_EPS = 1e-4


@lru_cache(maxsize=16)
def mel_fb(sr: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """``engines.audio.spectral.mel_filterbank`` cached on disk (``$AUDIO_STUDIO_CACHE`` or
    ``~/.cache/audio-studio``): computing it imports librosa, which costs 1-2 s per CLI call."""
    cache = Path(os.environ.get("AUDIO_STUDIO_CACHE", Path.home() / ".cache" / "audio-studio"))
    f = cache / f"melfb_slaney_{sr}_{n_fft}_{n_mels}.npy"
    try:
        fb = np.load(f, allow_pickle=False)  # arrays only; anything else is recomputed
        if fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32 and np.isfinite(fb).all():
            return torch.from_numpy(fb)
    except (OSError, ValueError, EOFError):
        pass
    from engines.audio.spectral import mel_filterbank

    fb = mel_filterbank(sr, n_fft, n_mels)
    try:
        from engines.atomic import atomic_path

        with atomic_path(f) as tmp:
            np.save(tmp, fb.numpy())
    except OSError:
        pass
    return fb


def log_mel(x: torch.Tensor, n_fft: int = MODEL_NFFT, hop: int = MODEL_HOP, n_mels: int = MODEL_MELS,
            sr: int = SR) -> torch.Tensor:
    """Log-mel ``(..., n_mels, frames)`` of a waveform ``(..., T)``."""
    mag = stft(x, n_fft, hop).abs()
    fb = mel_fb(sr, n_fft, n_mels).to(mag.device, mag.dtype)
    return torch.log(torch.matmul(fb, mag) + LOG_EPS)


def log_mag(x: torch.Tensor, n_fft: int = MODEL_NFFT, hop: int = MODEL_HOP) -> torch.Tensor:
    """Log-magnitude STFT ``(..., n_fft // 2 + 1, frames)``."""
    return torch.log(stft(x, n_fft, hop).abs() + LOG_EPS)


def rms_normalise(x: torch.Tensor, target: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each waveform ``(..., T)`` to ``target`` RMS; returns ``(scaled, gain)``."""
    rms = x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
    gain = target / rms
    return x * gain, gain
