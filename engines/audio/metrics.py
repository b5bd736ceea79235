"""Separation metrics on numpy waveforms (any shape; flattened).

Conventions follow the bench scorer: ``sdr`` is the MDX utterance-level SDR, ``si_sdr`` is
scale-invariant SDR on zero-mean signals (an all-zero estimate gets -50 dB).
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-10


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    est = np.asarray(est, dtype=np.float64).reshape(-1)
    n = min(ref.size, est.size)
    return ref[:n], est[:n]


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """10 log10(sum s^2 / sum (s - s_hat)^2) in dB."""
    ref, est = _pair(ref, est)
    return float(10 * np.log10((np.sum(ref**2) + _EPS) / (np.sum((ref - est) ** 2) + _EPS)))


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB) on zero-mean signals."""
    ref, est = _pair(ref, est)
    ref = ref - ref.mean()
    est = est - est.mean()
    if not np.any(est):
        return -50.0
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + _EPS)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10((np.sum(target**2) + _EPS) / (np.sum(noise**2) + _EPS)))


def spectral_convergence(ref: np.ndarray, est: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """|| |S_ref| - |S_est| ||_F / || |S_ref| ||_F (0 is perfect)."""
    import torch

    from .spectral import stft

    ref, est = _pair(ref, est)
    r = stft(torch.from_numpy(ref), n_fft, hop).abs()
    e = stft(torch.from_numpy(est), n_fft, hop).abs()
    return float(torch.linalg.norm(r - e) / (torch.linalg.norm(r) + _EPS))


def cross_correlation(ref: np.ndarray, est: np.ndarray) -> float:
    """Zero-lag normalised cross-correlation (Pearson's r) in [-1, 1]."""
    ref, est = _pair(ref, est)
    ref = ref - ref.mean()
    est = est - est.mean()
    den = np.sqrt(np.sum(ref**2) * np.sum(est**2))
    return float(np.dot(ref, est) / den) if den > 0 else 0.0


def energy_ratio(ref: np.ndarray, est: np.ndarray) -> float:
    """Energy of the estimate over energy of the reference (1 is perfect loudness)."""
    ref, est = _pair(ref, est)
    return float(np.sum(est**2) / (np.sum(ref**2) + _EPS))


def quality_label(si_sdr_db: float) -> str:
    """The original system's labels: > 10 dB excellent, > 5 good, > 0 fair, else poor."""
    if si_sdr_db > 10:
        return "excellent"
    if si_sdr_db > 5:
        return "good"
    if si_sdr_db > 0:
        return "fair"
    return "poor"


def evaluate(ref: np.ndarray, est: np.ndarray, mix: np.ndarray | None = None) -> dict:
    """All metrics at once; with ``mix`` also the improvements ``si_sdri`` / ``sdri``."""
    out = {
        "si_sdr": si_sdr(ref, est),
        "sdr": sdr(ref, est),
        "spectral_convergence": spectral_convergence(ref, est),
        "cross_correlation": cross_correlation(ref, est),
        "energy_ratio": energy_ratio(ref, est),
    }
    out["quality"] = quality_label(out["si_sdr"])
    if mix is not None:
        out["si_sdri"] = out["si_sdr"] - si_sdr(ref, mix)
        out["sdri"] = out["sdr"] - sdr(ref, mix)
    return out
