"""References for the mask optimisation and the initial mask.

* :func:`stitching_reference`: the original system's reference: the query's own mel frames tiled
  into the detected segments (it describes the query, not the target as it sounds in the mixture).
* :func:`fitted_reference`: "beyond the original": the query-conditioned mask network of the
  built-in model predicts a time-frequency mask of the target *in this mixture*; its masked mixture
  is the reference, and the mask itself starts the optimisation.
* :func:`initial_mask` maps a mel reference to a linear-frequency mask weighted by the query's
  frequency profile (``gamma_profile``) with a floor (``mask_floor``).
* :func:`semantic_weights` / :func:`class_profile`: the embedding-aware semantic masking option.
"""
from __future__ import annotations

import numpy as np
import torch

from .features import MODEL_HOP, MODEL_NFFT, SR, mel_fb, rms_normalise

EPS = 1e-8

SPEECH = {"speech", "singing"}
MUSIC = {"piano", "strings", "winds", "brass", "guitar", "bass", "organ", "drums"}


def class_group(name: str) -> str:
    """``speech``, ``music`` or ``environmental`` for a class name (corpus or AudioSet)."""
    n = name.lower()
    if n in SPEECH or any(k in n for k in ("speech", "voice", "talk", "conversation", "sing", "narrat")):
        return "speech"
    if n in MUSIC or any(k in n for k in ("music", "instrument", "piano", "guitar", "violin", "string", "drum",
                                           "organ", "brass", "wind", "flute", "bass")):
        return "music"
    return "environmental"


def query_profile(query_mag: torch.Tensor) -> torch.Tensor:
    """Mean magnitude spectrum ``(F,)`` of the query ``(F, N)``, scaled to a maximum of 1."""
    p = query_mag.mean(-1)
    return p / p.max().clamp_min(EPS)


def stitching_reference(query_mel: torch.Tensor, mix_mel: torch.Tensor, tmask: np.ndarray) -> torch.Tensor:
    """Tile the query's mel frames ``(M, Nq)`` over the frames where ``tmask`` (``(N,)``) is positive,
    scaled to the mixture's level there and capped by it. Returns ``(M, N)``."""
    M, N = mix_mel.shape
    ref = torch.zeros_like(mix_mel)
    active = np.flatnonzero(tmask > 0)
    if active.size == 0 or query_mel.shape[-1] == 0:
        return ref
    idx = torch.from_numpy(np.arange(active.size) % query_mel.shape[-1])
    tiled = query_mel[:, idx]
    scale = mix_mel[:, active].mean() / tiled.mean().clamp_min(EPS)
    w = torch.from_numpy(tmask[active]).to(mix_mel.dtype)
    ref[:, active] = torch.minimum(tiled * scale, mix_mel[:, active]) * w
    return ref


def mel_to_linear_mask(ref_mel: torch.Tensor, mix_mel: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Ratio mask on linear bins ``(F, N)`` from mel ``ref / mix`` ratios spread by the filterbank."""
    ratio = (ref_mel / mix_mel.clamp_min(EPS)).clamp(0, 1)
    w = fb / fb.sum(0, keepdim=True).clamp_min(EPS)  # each linear bin: weights over mel bands
    return (w.T @ ratio).clamp(0, 1)


def initial_mask(ref_mel: torch.Tensor, mix_mel: torch.Tensor, fb: torch.Tensor, profile: torch.Tensor, *,
                 gamma_profile: float = 0.25, mask_floor: float = 0.08, activity: np.ndarray | None = None) -> torch.Tensor:
    """The initial linear mask ``(F, N)``: mel-to-linear ratio x profile**gamma, floored at
    ``mask_floor`` where the target is active (``activity`` per frame in [0, 1]; everywhere if None)."""
    m = mel_to_linear_mask(ref_mel, mix_mel, fb) * profile.clamp_min(EPS).pow(gamma_profile)[:, None]
    floor = mask_floor * (torch.ones(m.shape[-1]) if activity is None else torch.from_numpy(activity).float())
    return torch.maximum(m, floor[None, :].to(m.dtype)).clamp(0, 1)


@torch.no_grad()
def fitted_mask(net, mix: torch.Tensor, queries: list[torch.Tensor], negatives: list[torch.Tensor] | None = None,
                chunk_sec: float = 30.0, context_sec: float = 2.0, progress=None) -> torch.Tensor:
    """The mask network's target mask on the model grid (n_fft 512, hop 256) ``(257, N)``, on the CPU.

    ``mix (T,)`` and the queries ``(Tq,)`` are 16 kHz; the network runs on its own device. Several queries
    are averaged in the condition (:meth:`QueryNet.query_condition`); a negative query's mask ``m_neg``
    turns the mask into ``m * m / (m + m_neg)``. Long mixtures run in chunks of ``chunk_sec`` with
    ``context_sec`` on each side (:func:`engines.audio.chunking.run_chunked`, bounded memory).
    A mask on another STFT grid: :func:`engines.audio.grid.to_grid`.
    """
    from engines.audio.chunking import run_chunked

    dev = next(net.parameters()).device

    def cond_of(qs):
        return torch.stack([net.query_condition(q.reshape(1, -1).to(dev))[0] for q in qs]).mean(0)

    def frames_of(qs):  # several clips: the cross-attention reads all their frames
        f = [net.query_frames(q.reshape(1, -1).to(dev)) for q in qs]
        return None if f[0] is None else torch.cat(f, dim=-1)

    cond, qf = cond_of(queries), frames_of(queries)
    ncond = cond_of(negatives) if negatives else None
    nqf = frames_of(negatives) if negatives else None
    mixn, _ = rms_normalise(mix.reshape(1, -1).to(dev))

    def piece(x: torch.Tensor) -> torch.Tensor:
        m = net.mix_mask(x, cond, qf)[0]
        if ncond is not None:
            mn = net.mix_mask(x, ncond, nqf)[0]
            m = m * m / (m + mn).clamp_min(1e-4)
        return m

    chunk = max(1, int(chunk_sec * SR) // MODEL_HOP) * MODEL_HOP
    ctx = max(1, int(context_sec * SR) // MODEL_HOP) * MODEL_HOP
    return run_chunked(piece, mixn, chunk, context=ctx, hop=MODEL_HOP, progress=progress).cpu()


def fitted_reference(mask: torch.Tensor, mix_mag: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Reference mel ``(M, N)`` = mel of the mask-net estimate ``mask * |X|``."""
    return fb @ (mask * mix_mag)


def class_profile(group: str, n_freq: int, sr: int = SR, query_prof: torch.Tensor | None = None) -> torch.Tensor:
    """Class-aware frequency emphasis ``(n_freq,)`` in [0, 1]: formant band for speech, the query's
    own harmonic profile for music, flat for environmental sounds."""
    f = torch.linspace(0, sr / 2, n_freq)
    if group == "speech":
        return (0.35 + 0.65 * torch.exp(-0.5 * ((torch.log(f.clamp_min(50)) - np.log(1200)) / 0.9) ** 2)).clamp(0, 1)
    if group == "music" and query_prof is not None:
        return (0.3 + 0.7 * query_prof.sqrt()).clamp(0, 1)
    return torch.ones(n_freq)


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """1-D Gaussian smoothing (``sigma`` in frames; 0 = none): ``scipy.ndimage.gaussian_filter1d`` with edge
    padding and a kernel radius of ``ceil(3 sigma)`` (the former hand-written convolution's kernel)."""
    if sigma <= 0:
        return x
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma, mode="nearest", radius=int(np.ceil(3 * sigma)))


def semantic_weights(sim: np.ndarray, smoothing: float) -> np.ndarray:
    """Per-frame similarity ``(N,)`` -> smoothed weights in [0, 1] (min-max over the clip)."""
    s = gaussian_smooth(np.asarray(sim, dtype=np.float64), smoothing)
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi - lo > 1e-9 else np.ones_like(s)


def default_fb(n_fft: int, n_mels: int) -> torch.Tensor:
    return mel_fb(SR, n_fft, n_mels)


__all__ = ["class_group", "query_profile", "stitching_reference", "mel_to_linear_mask", "initial_mask",
           "fitted_mask", "fitted_reference", "class_profile", "semantic_weights", "gaussian_smooth",
           "MODEL_NFFT", "MODEL_HOP"]
