"""Small signal helpers of the corpus renderer: levels, resampling, noise, quantising and writing.

Files are written as 16-bit PCM WAV. Where stems must sum exactly to a mixture, the stems are
quantised to integers first (:func:`quantize_stems`) and the mixture is written as their integer
sum, so that ``mixture == sum(stems)`` holds exactly after reading the files back as float.
"""
from __future__ import annotations

import logging
import os
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

EPS = 1e-12
INT16_SCALE = 32768.0


from engines.audio.levels import gain as db_to_gain  # noqa: E402,F401 - the one set of level helpers
from engines.audio.levels import normalize_rms, peak, rms, rms_db  # noqa: E402,F401


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (deterministic, float32)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    y = resample_poly(np.asarray(x, dtype=np.float64), sr_out // g, sr_in // g, axis=-1)
    return y.astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch goes up with it), by resampling."""
    if abs(factor - 1.0) < 1e-3:
        return np.asarray(x, dtype=np.float32)
    n_out = max(1, int(round(x.shape[-1] / factor)))
    t = np.linspace(0.0, x.shape[-1] - 1, n_out)
    return np.interp(t, np.arange(x.shape[-1]), x).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad)


def fade(x: np.ndarray, sr: int, fade_in: float = 0.005, fade_out: float = 0.02) -> np.ndarray:
    """Apply short linear fades (in place on a copy)."""
    y = np.array(x, dtype=np.float32, copy=True)
    n_in = min(y.shape[-1], int(fade_in * sr))
    n_out = min(y.shape[-1], int(fade_out * sr))
    if n_in > 0:
        y[..., :n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)
    if n_out > 0:
        y[..., -n_out:] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)
    return y


def trim_silence(x: np.ndarray, threshold_db: float = -50.0, sr: int = 16000) -> np.ndarray:
    """Drop leading/trailing samples quieter than ``threshold_db`` relative to the peak."""
    if x.size == 0:
        return x
    env = np.abs(x)
    thr = peak(x) * db_to_gain(threshold_db)
    idx = np.nonzero(env > thr)[0]
    if idx.size == 0:
        return x[:0]
    pad = int(0.01 * sr)
    return x[max(0, idx[0] - pad): idx[-1] + pad]


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with a ``1/f**exponent`` power spectrum (0 white, 1 pink, 2 brown), unit RMS."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec = spec / (f ** (exponent / 2.0))
    y = np.fft.irfft(spec, n)
    y -= y.mean()
    return (y / (np.std(y) + EPS)).astype(np.float32)


def active_mask(x: np.ndarray, sr: int, threshold_db: float = -40.0, win: float = 0.05) -> np.ndarray:
    """Boolean per-sample mask of where ``x`` is active (frame RMS within ``threshold_db`` of max)."""
    n = x.shape[-1]
    hop = max(1, int(win * sr))
    n_frames = int(np.ceil(n / hop))
    padded = fit_length(np.asarray(x, dtype=np.float64), n_frames * hop).reshape(n_frames, hop)
    fr = np.sqrt(np.mean(padded ** 2, axis=1))
    if fr.max() <= 0:
        return np.zeros(n, dtype=bool)
    on = fr > fr.max() * db_to_gain(threshold_db)
    return np.repeat(on, hop)[:n]


def quantize(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1) to int32 sample values of 16-bit PCM (rounded, clipped)."""
    q = np.round(np.asarray(x, dtype=np.float64) * INT16_SCALE)
    return np.clip(q, -32768, 32767).astype(np.int32)


def quantize_stems(stems: dict[str, np.ndarray], peak_target: float = 0.89) -> tuple[dict[str, np.ndarray], float]:
    """Scale stems together so their sum peaks at ``peak_target`` and quantise each to int32.

    The common gain also keeps every single stem (and every partial sum that is written) below full
    scale. Returns ``(int_stems, gain)``; sums of the returned arrays are exact integer sums.
    """
    total = sum(stems.values())
    biggest = max([peak(total)] + [peak(s) for s in stems.values()])
    gain = peak_target / biggest if biggest > 0 else 1.0
    return {k: quantize(v * gain) for k, v in stems.items()}, float(gain)


def _as_channels_last(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        return a
    return a.T  # (C, T) -> (T, C)


def write_pcm16(path: str | os.PathLike, audio: np.ndarray, sr: int) -> None:
    """Write audio as 16-bit PCM WAV, atomically (:func:`engines.atomic.atomic_path`).

    ``audio`` is either int32/int16 sample values (written exactly) or float in [-1, 1) (quantised
    by :func:`quantize`). Shape ``(T,)`` or ``(C, T)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(audio)
    if not np.issubdtype(a.dtype, np.integer):
        a = quantize(a)
    if a.min(initial=0) < -32768 or a.max(initial=0) > 32767:
        raise ValueError(f"{path.name}: integer samples out of 16-bit range")
    data = _as_channels_last(a.astype(np.int16))
    from engines.atomic import atomic_path

    with atomic_path(path) as tmp:
        sf.write(tmp, data, int(sr), subtype="PCM_16", format="WAV")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV as float32 ``(C, T)`` and its sample rate (PCM_16 reads exactly as int/32768)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T.copy(), int(sr)


def read_any(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Read any audio file libsndfile can decode (WAV, OGG/Vorbis) as mono float32 at ``sr``."""
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    return resample(mono, int(file_sr), int(sr))
