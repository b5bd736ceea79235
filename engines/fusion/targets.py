"""What a fusion should be: the training target and the complementarity metric (the trainer and the
benchmark import them from here).

* :func:`stft_masks`: a latent mask ``(B, C, N)`` carried onto an STFT grid (each bin inherits its MDCT band's
  mask, :func:`engines.audio.grid.band_of_bins`; codecs whose channels are not bands: the mean over channels).
* :func:`arrangement`: the complementary arrangement built in the STFT domain (n_fft 512, hop = the codec's
  hop so frames coincide): A in A's regions and B in B's regions with clean seams -- the cascade's target.
* :func:`restrict`: a signal restricted to one source's STFT region (the per-source losses).
* :func:`complementarity`: over the regions a fusion's mask defines, the energy-weighted share where the
  output is closer to the source assigned there than to the other one.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engines.audio.grid import band_of_bins
from engines.audio.spectral import istft, stft

A, B, BOTH, NEITHER = 0, 1, 2, -1


def stft_masks(m: torch.Tensor, codec, n_fft: int = 512) -> torch.Tensor:
    """Carry a latent mask ``(B, C, N)`` onto the STFT grid ``(B, n_fft // 2 + 1, N)`` (hop = the codec's hop,
    so frames coincide); bins inherit their band's mask (built-in codec) or the mean over channels (others)."""
    B_, C, N = m.shape
    F_ = n_fft // 2 + 1
    if codec.channel_frequencies() is None:
        return m.mean(1, keepdim=True).expand(B_, F_, N)
    band = torch.from_numpy(band_of_bins(n_fft, codec.sample_rate, C)).to(m.device)
    return m[:, band, :]


def _fit(M: torch.Tensor, N: int) -> torch.Tensor:
    return M if M.shape[-1] == N else F.pad(M, (0, N - M.shape[-1]), mode="replicate")


def arrangement(a: torch.Tensor, b: torch.Tensor, s_in: torch.Tensor, s_tgt: torch.Tensor, codec, n_fft: int = 512):
    """The training target of sources ``a``, ``b`` ``(B, 1, T)`` under latent masks ``s_in``, ``s_tgt`` ``(B, C, N)``.

    Returns:
        ``(ref, ref_in, ref_tgt, (Mi, Mt, n_fft, hop))``: the arrangement ``ref = ref_in + ref_tgt`` and its two
        parts ``(B, 1, T)``, and the STFT-grid masks with the grid (for :func:`restrict`).
    """
    hop = int(round(codec.sample_rate / codec.frame_rate))
    T = a.shape[-1]
    Sa, Sb = stft(a[:, 0], n_fft, hop), stft(b[:, 0], n_fft, hop)
    N = Sa.shape[-1]
    Mi, Mt = stft_masks(s_in[..., :N], codec, n_fft), stft_masks(s_tgt[..., :N], codec, n_fft)
    Mi, Mt = _fit(Mi, N), _fit(Mt, N)
    ref_in = istft(Sa * Mi, n_fft, hop, T)[:, None]
    ref_tgt = istft(Sb * Mt, n_fft, hop, T)[:, None]
    return ref_in + ref_tgt, ref_in, ref_tgt, (Mi, Mt, n_fft, hop)


def restrict(y: torch.Tensor, M: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``y (B, 1, T)`` restricted to the STFT-grid mask ``M (B, F, N)`` (see :func:`arrangement`)."""
    S = stft(y[:, 0], n_fft, hop)
    return istft(S * _fit(M, S.shape[-1]), n_fft, hop, y.shape[-1])[:, None]


def complementarity(result, n_fft: int = 1024, hop: int = 256, block_seconds: float = 1.0,
                    min_cells: int = 8) -> dict:
    """The issue's complementarity of a fusion (:class:`engines.fusion.Result`): over the regions the mask
    defines, the energy-weighted share of regions where the output's magnitude spectrogram is closer (cosine)
    to the source assigned there than to the other one.

    Regions: the latent ownership map is carried onto an STFT grid (``n_fft``/``hop``; latent channels
    to frequency bands for the built-in codec, all frequencies for codecs without band channels);
    time is cut into the mask's segments (time-varying masks) or ``block_seconds`` blocks (static
    masks); each (block, owner) cell set with at least ``min_cells`` cells is one region. The weight
    is the output's energy in the region. ``none`` has no regions (returns ``None`` share).
    """
    if result.mask_type == "none":
        return {"complementarity": None, "regions": 0}
    sr = result.sample_rate
    mags = [stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), n_fft, hop).abs().numpy()
            for x in (result.fusion, result.a, result.b)]
    Y, SA, SB = mags
    F_, T_ = Y.shape
    owner = result.region_map
    C, N = owner.shape
    fr = N / max(result.region_times[-1] + (result.region_times[1] - result.region_times[0] if N > 1 else 1), 1e-9)
    t_idx = np.clip(np.round(np.arange(T_) * hop / sr * fr).astype(int), 0, N - 1)
    if result.params.get("codec") == "builtin":
        grid = owner[band_of_bins(n_fft, sr, C)][:, t_idx]
    else:
        col = owner[0][t_idx]
        grid = np.broadcast_to(col, (F_, T_))
    # time blocks
    if result.segments and result.mask_type in ("temporal", "hybrid"):
        edges = sorted({int(round(s["start"] * sr / hop)) for s in result.segments} | {T_})
    else:
        step = max(int(round(block_seconds * sr / hop)), 1)
        edges = list(range(0, T_, step)) + [T_]
    edges = sorted(set([0] + [e for e in edges if 0 <= e <= T_]))

    def cos(u, v):
        return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))

    wins = total = 0.0
    n_regions = 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        g = grid[:, lo:hi]
        for who in (A, B):
            cells = g == who
            if cells.sum() < min_cells:
                continue
            y = Y[:, lo:hi][cells]
            s_as = (SA if who == A else SB)[:, lo:hi][cells]
            s_ot = (SB if who == A else SA)[:, lo:hi][cells]
            w = float(np.sum(y**2))
            if w <= 0:
                continue
            n_regions += 1
            total += w
            wins += w * (cos(y, s_as) > cos(y, s_ot))
    return {"complementarity": (wins / total) if total > 0 else None, "regions": n_regions}


__all__ = ["stft_masks", "arrangement", "restrict", "complementarity"]
