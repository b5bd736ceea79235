"""Averaging vocal models (an ensemble registry entry, :func:`engines.registry.members`).

The members run one after another on the same song; their vocals are combined with the entry's weights and
the accompaniment is the mixture minus the result (the two stems still sum to the mixture exactly). Combining
two models that fail differently (the seed's 25-frame mask CNN and the band-split separator) beat both on the
corpus dev split (docs/vocals.md). Two ways (the entry's ``combine``):

* ``mean``: the weighted mean of the waveforms;
* ``geometric``: per STFT bin the weighted geometric mean of the members' magnitudes, with the mixture's phase
  (a soft "and": a bin is voice only where every member hears voice; the better of the two on the songs with a
  real recorded bed).

A member that works at a lower rate than the song (the CNN at 22050 Hz) has nothing above its Nyquist
frequency: there its weight goes to the full-band members, so the result does not halve (``mean``) or
silence (``geometric``) the voice's top octave. For ``mean``::

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
#: how members' vocals are combined (a registry entry's ``combine``)
COMBINE = ("mean", "geometric")
#: a band-limited member's share of a bin falls from 1 to 0 between these fractions of its Nyquist frequency
#: (soxr HQ passes 91 % of the band)
ROLL_OFF = (0.88, 0.95)


def blend(vocals: list[np.ndarray], weights: list[float], rates: list[int], sr: int,
          chunk_seconds: float = 30.0, combine: str = "mean", mix: np.ndarray | None = None) -> np.ndarray:
    """The members' vocals, each ``(C, T)`` float32 at ``sr`` made at model rates ``rates``, combined (``mean``
    or ``geometric``, which needs the mixture ``mix`` ``(C, T)`` for its phase).

    ``weights`` are normalised to sum to 1. Returns a new ``(C, T)`` float32 array (the inputs are not changed).
    """
    if combine not in COMBINE:
        raise ValueError(f"Invalid setting: combine = {combine!r}; choose one of {', '.join(COMBINE)}.")
    if not vocals or len(vocals) != len(weights) or len(vocals) != len(rates):
        raise ValueError("blend needs one weight and one model rate per member's vocals.")
    if any(v.shape != vocals[0].shape for v in vocals):
        raise ValueError(f"The members' vocals differ in shape: {[v.shape for v in vocals]}.")
    w = np.asarray(weights, np.float64)
    if not np.all(w > 0):
        raise ValueError(f"Ensemble weights must be > 0, got {weights}.")
    w = w / w.sum()
    if combine == "geometric":
        if mix is None or mix.shape != vocals[0].shape:
            raise ValueError("The geometric combination needs the mixture, shaped like the vocals.")
        return _geometric(vocals, w, rates, sr, mix, chunk_seconds)
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


def bin_weights(w: np.ndarray, rates: list[int], sr: int, n_fft: int) -> np.ndarray:
    """``(M, n_fft // 2 + 1)``: each member's weight per STFT bin, 0 above a band-limited member's Nyquist
    (:data:`ROLL_OFF`), normalised over the members per bin."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    cover = []
    for r in rates:
        if r >= sr:
            cover.append(np.ones_like(freqs))
            continue
        lo, hi = ROLL_OFF[0] * r / 2, ROLL_OFF[1] * r / 2
        cover.append(np.clip((hi - freqs) / (hi - lo), 0.0, 1.0))
    W = np.asarray(w)[:, None] * np.stack(cover)
    total = W.sum(0, keepdims=True)
    if np.any(total <= 0):  # no member reaches the top bins (every one band-limited): the least limited takes them
        W[int(np.argmax(rates))] = np.where(total[0] <= 0, 1.0, W[int(np.argmax(rates))])
        total = W.sum(0, keepdims=True)
    return W / total


def _geometric(vocals, w, rates, sr, mix, chunk_seconds) -> np.ndarray:
    import torch

    from engines.audio import spectral

    n_fft = 2048 if sr >= 32000 else 1024
    hop = n_fft // 4
    W = torch.from_numpy(bin_weights(w, rates, sr, n_fft)).float()[:, :, None]  # (M, F, 1)
    T = mix.shape[-1]
    out = np.empty_like(mix, dtype=np.float32)
    spans = chunking.context_spans(T, max(hop, int(chunk_seconds * sr)), 2 * n_fft, align=hop)
    for sp in spans:
        X = spectral.stft(torch.from_numpy(np.ascontiguousarray(mix[:, sp.lo:sp.hi])), n_fft, hop)
        logmag = 0
        for k, v in enumerate(vocals):
            S = spectral.stft(torch.from_numpy(np.ascontiguousarray(v[:, sp.lo:sp.hi])), n_fft, hop)
            logmag = logmag + W[k] * torch.log(S.abs().clamp_min(1e-8))
        Y = torch.exp(logmag) * X / X.abs().clamp_min(1e-8)
        y = spectral.istft(Y, n_fft, hop, length=sp.hi - sp.lo).numpy()
        out[:, sp.start:sp.end] = y[:, sp.start - sp.lo:sp.end - sp.lo]
    return out


__all__ = ["blend", "bin_weights", "COMBINE", "CONTEXT_SECONDS"]
