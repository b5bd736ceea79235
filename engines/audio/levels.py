"""Levels: RMS, peak, the output peak limit, RMS normalisation and loudness (ITU-R BS.1770 via pyloudnorm).

One place for what every engine and the corpus renderer used to write for themselves. Arrays are numpy,
any shape (levels are taken over all samples); results keep float32.
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: the peak every engine's output is kept under (16-bit files never clip)
OUTPUT_PEAK = 0.999
#: level of silence in dB (instead of -inf)
FLOOR_DB = -240.0
_EPS = 1e-12


def rms(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean square of ``x`` (optionally over the samples where ``mask`` is true along the last axis)."""
    x = np.asarray(x, dtype=np.float64)
    if mask is not None:
        x = x[..., mask]
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def db(gain: float) -> float:
    """Amplitude ratio -> dB (silence gives :data:`FLOOR_DB`)."""
    return float(20.0 * np.log10(gain)) if gain > 0 else FLOOR_DB


def gain(db_value: float) -> float:
    """dB -> amplitude ratio."""
    return float(10.0 ** (db_value / 20.0))


def rms_db(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMS level in dBFS (silence gives about :data:`FLOOR_DB`)."""
    return float(20.0 * np.log10(rms(x, mask) + _EPS))


def peak(x: np.ndarray) -> float:
    """Absolute peak (0 for empty input)."""
    x = np.asarray(x)
    return float(np.max(np.abs(x))) if x.size else 0.0


def peak_factor(*arrays: np.ndarray, ceiling: float = OUTPUT_PEAK) -> float:
    """The one gain (<= 1) that brings the largest peak among ``arrays`` to at most ``ceiling``: 1.0 when it already
    is (the factor of :func:`limit_peak`, for a writer that applies it one array at a time)."""
    p = max(peak(a) for a in arrays)
    if p > ceiling:
        logger.debug("Peak %.3f over %.3f: scaled by %.3f", p, ceiling, ceiling / p)
        return ceiling / p
    return 1.0


def limit_peak(x: np.ndarray, ceiling: float = OUTPUT_PEAK, *others: np.ndarray):
    """Scale ``x`` (and ``others`` by the same factor, e.g. the other stems of one mixture) down so the
    largest peak among them is at most ``ceiling``; a no-op when it already is.

    Returns ``x`` alone, or the tuple ``(x, *others)`` when ``others`` are given.
    """
    arrays = (x, *others)
    g = peak_factor(*arrays, ceiling=ceiling)
    if g != 1.0:
        arrays = tuple((np.asarray(a) * g).astype(np.float32) for a in arrays)
    return arrays[0] if not others else arrays


def normalize_rms(x: np.ndarray, target_db: float, peak_limit: float | None = 0.99) -> np.ndarray:
    """Scale ``x`` to ``target_db`` dBFS RMS, then down if its peak would exceed ``peak_limit`` (``None``:
    no limit). Silent input is returned unchanged."""
    x = np.asarray(x)
    r = rms(x)
    if r < 1e-9:
        return x.astype(np.float32)
    y = x * (gain(target_db) / r)
    if peak_limit is not None:
        y = limit_peak(y, peak_limit)
    return np.asarray(y, dtype=np.float32)


def rms_gain(x: np.ndarray, target_db: float, max_gain_db: float | None = None) -> float:
    """The gain that brings ``x`` to ``target_db`` dBFS RMS (1 for silence), at most ``max_gain_db``."""
    r = rms(x)
    if r < 1e-9:
        return 1.0
    g = gain(target_db) / r
    if max_gain_db is not None:
        g = min(g, gain(max_gain_db))
    return float(g)


def lufs(x: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770, pyloudnorm) of ``(T,)`` or ``(C, T)``; clips shorter
    than the 400 ms gate, or silent ones, fall back to RMS dBFS - 0.691 (the K-weighting offset)."""
    import pyloudnorm

    x = np.asarray(x, dtype=np.float64)
    data = x.T if x.ndim == 2 else x
    if data.shape[0] >= int(0.4 * sr) + 1:
        with np.errstate(divide="ignore"):
            val = float(pyloudnorm.Meter(int(sr)).integrated_loudness(data))
        if np.isfinite(val):
            return val
    return rms_db(x) - 0.691


def match_loudness(x: np.ndarray, sr: int, target_lufs: float,
                   max_gain_db: float = 24.0) -> tuple[np.ndarray, float]:
    """Scale ``x`` to ``target_lufs``; returns ``(audio, gain_db)`` (gain clamped to +-``max_gain_db``)."""
    g_db = float(np.clip(target_lufs - lufs(x, sr), -max_gain_db, max_gain_db))
    return (np.asarray(x, dtype=np.float32) * gain(g_db)).astype(np.float32), g_db
