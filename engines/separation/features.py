"""Front end shared by the built-in model, detection and the mask optimisation.

All functions take 16 kHz mono waveforms as torch tensors ``(..., T)``.
"""
from __future__ import annotations

import torch

from engines.audio.spectral import mel_filterbank, stft

SR = 16000
#: Front end of the built-in model (fixed: the checkpoint was trained with it).
MODEL_NFFT = 512
MODEL_HOP = 256
MODEL_MELS = 64
LOG_EPS = 1e-4


def log_mel(x: torch.Tensor, n_fft: int = MODEL_NFFT, hop: int = MODEL_HOP, n_mels: int = MODEL_MELS,
            sr: int = SR) -> torch.Tensor:
    """Log-mel ``(..., n_mels, frames)`` of a waveform ``(..., T)``."""
    mag = stft(x, n_fft, hop).abs()
    fb = mel_filterbank(sr, n_fft, n_mels).to(mag.dtype)
    return torch.log(torch.matmul(fb, mag) + LOG_EPS)


def log_mag(x: torch.Tensor, n_fft: int = MODEL_NFFT, hop: int = MODEL_HOP) -> torch.Tensor:
    """Log-magnitude STFT ``(..., n_fft // 2 + 1, frames)``."""
    return torch.log(stft(x, n_fft, hop).abs() + LOG_EPS)


def rms_normalise(x: torch.Tensor, target: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each waveform ``(..., T)`` to ``target`` RMS; returns ``(scaled, gain)``."""
    rms = x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
    gain = target / rms
    return x * gain, gain
