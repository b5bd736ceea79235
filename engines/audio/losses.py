"""Losses and distances shared by the engines, the trainers and the benchmarks.

* :func:`si_sdr` -- scale-invariant SDR in dB for torch tensors ``(..., T)`` (per row);
  :func:`engines.audio.metrics.si_sdr` is the same formula for numpy (a test checks they agree).
* :func:`mrstft` -- auraloss's multi-resolution STFT loss (spectral convergence + log magnitude), built once
  per configuration.
"""
from __future__ import annotations

import functools

import torch


def si_sdr(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SI-SDR (dB) per row of ``(..., T)`` on zero-mean signals."""
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    t = a * ref
    return 10 * torch.log10(t.pow(2).sum(-1) / ((est - t).pow(2).sum(-1) + eps) + eps)


@functools.lru_cache(maxsize=8)
def _mrstft(fft_sizes: tuple[int, ...], hop_sizes: tuple[int, ...], win_lengths: tuple[int, ...],
            sample_rate: int | None, perceptual: bool):
    import auraloss

    kw = {}
    if perceptual and sample_rate:
        kw = dict(scale="mel", n_bins=64, sample_rate=sample_rate, perceptual_weighting=True)
    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=list(fft_sizes), hop_sizes=list(hop_sizes),
                                                  win_lengths=list(win_lengths), **kw)


def mrstft(est: torch.Tensor, ref: torch.Tensor, fft_sizes=(2048, 1024, 512), hop_sizes=(512, 256, 128),
           win_lengths=(2048, 1024, 512), *, sample_rate: int | None = None, perceptual: bool = False) -> torch.Tensor:
    """Multi-resolution STFT loss (auraloss) of ``est`` against ``ref``, both ``(B, C, T)`` (or ``(B, T)``)."""
    if est.dim() == 2:
        est, ref = est[:, None], ref[:, None]
    loss = _mrstft(tuple(fft_sizes), tuple(hop_sizes), tuple(win_lengths), sample_rate, perceptual)
    return loss(est, ref)
