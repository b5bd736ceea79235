"""Averaging vocal models (an ensemble registry entry, :func:`engines.registry.members`).

The members run one after another on the same song; their vocals are averaged with the entry's weights and
the accompaniment is the mixture minus that mean (the two stems still sum to the mixture exactly). Averaging
two models that fail differently (the seed's 25-frame mask CNN and the band-split separator) beat both on the
corpus dev split (docs/vocals.md).

A member that works at a lower rate than the song (the CNN at 22050 Hz) has nothing above its Nyquist
frequency: there its weight goes to the full-band members, so the mean does not halve the voice's top octave::

    out = sum_i w_i V_i + sum_{i band-limited} w_i (F - lowpass_i(F))

with ``F`` the full-band members' own weighted mean and ``lowpass_i`` a round trip through member ``i``'s
rate (the same soxr filter that band-limited its output), computed in chunks with context (bounded memory).
"""
from __future__ import annotations

import math

import numpy as np

from engines.audio import chunking
from engines.audio import io as audio_io

#: samples of context each side of a chunk for the resampling round trip (soxr HQ's filter is far shorter)
CONTEXT_SECONDS = 0.25


def blend(vocals: list[np.ndarray], weights: list[float], rates: list[int], sr: int,
          chunk_seconds: float = 30.0) -> np.ndarray:
    """Weighted mean of the members' vocals, each ``(C, T)`` float32 at ``sr``, made at model rates ``rates``.

    ``weights`` are normalised to sum to 1. Returns a new ``(C, T)`` float32 array (the inputs are not changed).
    """
    if not vocals or len(vocals) != len(weights) or len(vocals) != len(rates):
        raise ValueError("blend needs one weight and one model rate per member's vocals.")
    if any(v.shape != vocals[0].shape for v in vocals):
        raise ValueError(f"The members' vocals differ in shape: {[v.shape for v in vocals]}.")
    w = np.asarray(weights, np.float64)
    if not np.all(w > 0):
        raise ValueError(f"Ensemble weights must be > 0, got {weights}.")
    w = w / w.sum()
    top = max(rates)
    full = [i for i, r in enumerate(rates) if r == top]
    limited = [i for i, r in enumerate(rates) if r < top and r < sr]
    out = np.zeros_like(vocals[0], dtype=np.float32)
    for v, wi in zip(vocals, w):
        out += np.float32(wi) * v
    if not limited:
        return out
    wf = w[full] / w[full].sum()
    T = out.shape[-1]
    # pieces start on whole periods of every round trip's rate ratio (44100 -> 22050: even samples), so a piece is
    # resampled on the same sample grid as the whole song would be
    align = int(np.lcm.reduce([sr // math.gcd(sr, rates[i]) for i in limited]))
    spans = chunking.context_spans(T, max(1, int(chunk_seconds * sr)), int(CONTEXT_SECONDS * sr), align=align)
    for sp in spans:
        F = sum(np.float32(a) * vocals[i][:, sp.lo:sp.hi] for a, i in zip(wf, full))
        a, b = sp.start - sp.lo, sp.end - sp.lo
        for i in limited:
            low = audio_io.resample(audio_io.resample(F, sr, rates[i]), rates[i], sr)
            n = F.shape[-1]
            low = low[:, :n] if low.shape[-1] >= n else np.pad(low, ((0, 0), (0, n - low.shape[-1])))
            out[:, sp.start:sp.end] += np.float32(w[i]) * (F[:, a:b] - low[:, a:b])
    return out


__all__ = ["blend", "CONTEXT_SECONDS"]
