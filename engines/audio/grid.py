"""Mapping a time-frequency mask from one STFT grid onto another (the one place it is done).

A mask ``(F, N)`` lives on an STFT grid: ``F`` bins spanning ``0 .. mask_rate / 2`` and ``N`` frames (frame
``j`` centred on sample ``j * hop``). :func:`to_grid` maps it onto the grid of an STFT of ``n_fft`` points at
``rate`` with ``n_frames`` frames: linear interpolation in Hz (bins above ``mask_rate / 2`` take the top
bin's value) and linear interpolation in time with the first and last frames aligned. ``frames=(a, b)``
returns only columns ``a .. b`` of that grid (the same interpolation), for chunked reconstruction.

Users: the query separation engine (its 16 kHz mask onto the mixture's own rate, and the mask net's grid
onto another analysis STFT).
"""
from __future__ import annotations

import numpy as np
import torch


def to_grid(mask: torch.Tensor, n_fft: int, n_frames: int, *, rate: float = 1.0, mask_rate: float | None = None,
            frames: tuple[int, int] | None = None) -> torch.Tensor:
    """Map ``mask (F, N)`` onto the STFT grid of ``n_fft`` at ``rate`` (``n_fft // 2 + 1`` bins, ``n_frames``).

    Args:
        mask: ``(F, N)``, its bins spanning ``0 .. mask_rate / 2``.
        n_fft / n_frames / rate: the target grid (``rate`` only matters relative to ``mask_rate``).
        mask_rate: the mask's sample rate (``None``: the same as ``rate``).
        frames: ``(a, b)``: only columns ``a .. b`` of the target grid.

    Returns:
        ``(n_fft // 2 + 1, n_frames)`` (or ``(.., b - a)`` with ``frames``), the mask's dtype and device.
    """
    mask_rate = rate if mask_rate is None else mask_rate
    F_, N = mask.shape
    n_freq = n_fft // 2 + 1
    if frames is None and (F_, N) == (n_freq, n_frames) and mask_rate == rate:
        return mask
    if frames is not None:
        a, b = frames
        if N == n_frames:
            mask = mask[:, a:b]
        else:  # linear with align_corners: output frame j sits at input position j (N - 1) / (n_frames - 1)
            pos_t = torch.arange(a, b, dtype=torch.float64) * (N - 1) / max(n_frames - 1, 1)
            lo_t = pos_t.floor().long().clamp(0, N - 1)
            hi_t = (lo_t + 1).clamp(max=N - 1)
            w_t = (pos_t - lo_t).to(mask.dtype)[None].to(mask.device)
            lo_t, hi_t = lo_t.to(mask.device), hi_t.to(mask.device)
            mask = mask[:, lo_t] * (1 - w_t) + mask[:, hi_t] * w_t
        n_frames = b - a
    freqs = np.arange(n_freq) * rate / n_fft
    pos = np.clip(freqs / (mask_rate / 2) * (F_ - 1), 0, F_ - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, F_ - 1)
    w = torch.from_numpy(pos - lo).to(mask.dtype)[:, None].to(mask.device)
    lo_i, hi_i = torch.from_numpy(lo).to(mask.device), torch.from_numpy(hi).to(mask.device)
    m = mask[lo_i] * (1 - w) + mask[hi_i] * w  # (n_freq, N')
    if m.shape[-1] != n_frames:
        m = torch.nn.functional.interpolate(m[None], size=n_frames, mode="linear", align_corners=True)[0]
    return m


def band_of_bins(n_fft: int, rate: float, bands: int) -> np.ndarray:
    """Band index ``(n_fft // 2 + 1,)`` of every STFT bin for ``bands`` equal-width bands over ``0 .. rate / 2``
    (nearest-lower band, the top bin clipped into the last): how a latent whose channels are frequency bands
    (the fusion codec's MDCT) is carried onto an STFT grid."""
    f_hz = np.arange(n_fft // 2 + 1) * rate / n_fft
    return np.clip((f_hz / (rate / 2 / bands)).astype(int), 0, bands - 1)


__all__ = ["to_grid", "band_of_bins"]
