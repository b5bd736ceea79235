"""The band above the 22050 Hz models' Nyquist, for inputs at higher rates (24, 44.1, 48 kHz).

The timbre models work at 22050 Hz, so their output holds nothing above ~11 kHz; at the input's rate the
band above ``cutoff`` is filled in one of two ways:

* :class:`HighBand` (synthesis models that carry it in their checkpoint's metadata): **band replication
  from the output itself**. Each bin above ``cutoff`` takes the output's own complex STFT value ``width``
  Hz (or a multiple of it) lower, times a gain per frequency and *target instrument* fitted on that
  instrument's training recordings (:func:`fit`: the median over frames of the log ratio between a bin and
  the bin it is copied from). The band then follows the new instrument's envelope (a bowed sustain, a
  struck decay), not the input's, and has the target instrument's spectral slope up there.
* :func:`extend_band` (the spectral models, or a checkpoint without curves): the *input's* own high band,
  scaled per frame to follow the output's level just below the cutoff.

Both fade in over ``FADE`` Hz above the cutoff and run in bounded blocks
(:func:`engines.audio.chunking.run_chunked`, context mode; the result equals one pass).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import torch

from engines.audio import io as audio_io
from engines.audio import spectral

#: the replicated band's defaults (chosen on the dev pairs of the timbre corpus: docs/timbre.md)
CUTOFF = 10000.0
WIDTH = 1500.0
#: cross-fade width above the cutoff, Hz
FADE = 500.0
#: curves are fitted at this rate (the timbre corpus' rate); clips at higher rates are resampled to it
FIT_RATE = 24000
#: the share of the fit rate's Nyquist the fitted curve is trusted up to at higher rates: above it lies the roll-off
#: of whatever made the fit clips at that rate (the corpus violin falls ~15 dB between 11 and 12 kHz)
EDGE = 0.9
#: frames quieter than this many dB under a clip's loudest frame are not fitted on
FIT_RANGE_DB = 50.0
#: at most this many frames per instrument go into a fit (a fixed-seed sample beyond)
FIT_MAX_FRAMES = 200_000
#: a checkpoint's curve may have at most this many points, each within +-GAIN_LIMIT_DB
MAX_POINTS = 2048
GAIN_LIMIT_DB = 80.0


def _n_fft(rate: int) -> int:
    return 1024 if rate <= 24000 else 2048


def _sources(freqs: np.ndarray, cutoff: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, sources)``: the bin indices at or above ``cutoff`` and, for each, the bin it is copied from
    (``width`` Hz lower, repeated until it lies below the cutoff)."""
    step = freqs[1] - freqs[0]
    c = int(math.ceil(cutoff / step - 1e-9))
    w = max(1, int(round(width / step)))
    tgt = np.arange(c, len(freqs))
    src = tgt - w * np.ceil((tgt - c + 1) / w).astype(int)
    return tgt, np.maximum(src, 0)


@dataclass(frozen=True)
class HighBand:
    """Per-instrument gain curves for band replication above ``cutoff`` (see the module docstring).

    ``hz``: the curve's frequencies (ascending, at or above ``cutoff``); ``gain_db[instrument]``: the gain at
    each, dB; past the last point the spectrum goes on falling at ``slope_db_per_khz[instrument]`` (a tilt, never
    rising: a bin copied ``d`` kHz up gets ``tilt * d`` dB). ``edge_hz``:
    at rates above ``fit_rate`` the curve is used only up to here (above it lies the fit clips' own roll-off) and
    the slope goes on from it.
    """

    hz: tuple[float, ...]
    gain_db: Mapping[str, tuple[float, ...]]
    slope_db_per_khz: Mapping[str, float]
    cutoff: float = CUTOFF
    width: float = WIDTH
    fit_rate: int = FIT_RATE
    edge_hz: float | None = None
    info: Mapping[str, object] = field(default_factory=dict)

    def gains(self, instrument: str, freqs: np.ndarray, rate: int | None = None) -> np.ndarray:
        """Gain (linear) at ``freqs`` (Hz) for ``instrument`` at the output ``rate`` (default: the fit rate)."""
        hz, g = np.asarray(self.hz), np.asarray(self.gain_db[instrument])
        if rate is not None and rate > self.fit_rate and self.edge_hz is not None and (hz <= self.edge_hz).sum() >= 2:
            keep = hz <= self.edge_hz
            hz, g = hz[keep], g[keep]
        freqs = np.asarray(freqs, dtype=np.float64)
        # past the curve: the spectrum goes on falling at the tilt, and a bin is copied from (f - cutoff) // width + 1
        # widths lower, so its gain is the tilt times that distance
        distance_khz = self.width * (np.floor(np.maximum(freqs - self.cutoff, 0.0) / self.width) + 1) / 1000.0
        db = np.where(freqs <= hz[-1], np.interp(freqs, hz, g),
                      min(self.slope_db_per_khz[instrument], 0.0) * distance_khz)
        return 10.0 ** (np.clip(db, -120.0, GAIN_LIMIT_DB) / 20.0)

    def apply(self, y: np.ndarray, rate: int, instrument: str, block_seconds: float = 60.0) -> np.ndarray:
        """``y (T,)`` at ``rate`` with the band above the cutoff replicated for ``instrument`` -> ``(T,)``."""
        from engines.audio.chunking import run_chunked

        if rate / 2 <= self.cutoff:
            return np.asarray(y, np.float32)
        n_fft = _n_fft(rate)
        hop = n_fft // 4
        freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
        tgt, src = _sources(freqs, self.cutoff, self.width)
        gain = torch.from_numpy(self.gains(instrument, freqs[tgt], rate).astype(np.float32))[:, None]
        fade = torch.from_numpy(np.clip((freqs[tgt] - self.cutoff) / FADE, 0, 1).astype(np.float32))[:, None]
        tgt_t, src_t = torch.from_numpy(tgt), torch.from_numpy(src)

        def piece(p: torch.Tensor) -> torch.Tensor:
            Y = spectral.stft(p, n_fft, hop)
            Y[tgt_t] = (1 - fade) * Y[tgt_t] + fade * gain * Y[src_t]
            return spectral.istft(Y, n_fft, hop, p.shape[-1])

        block = max(int(block_seconds * rate) // hop, 1) * hop
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        return run_chunked(piece, x, block, context=4 * n_fft).numpy()

    # ------------------------------------------------------------------ checkpoint metadata
    def to_json(self) -> dict:
        return {"cutoff": self.cutoff, "width": self.width, "fit_rate": int(self.fit_rate),
                "edge_hz": None if self.edge_hz is None else float(self.edge_hz),
                "hz": [round(float(f), 3) for f in self.hz],
                "gain_db": {k: [round(float(v), 3) for v in g] for k, g in self.gain_db.items()},
                "slope_db_per_khz": {k: round(float(v), 4) for k, v in self.slope_db_per_khz.items()},
                "info": dict(self.info)}

    @classmethod
    def from_json(cls, d: object) -> "HighBand":
        """From :meth:`to_json`'s dict; a malformed one (a hostile checkpoint) raises ``ValueError``."""
        def num(v, lo, hi, what):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"high_band: {what} must be a number in [{lo}, {hi}], got {v!r}")
            return float(v)

        if not isinstance(d, dict):
            raise ValueError("high_band: not a JSON object")
        cutoff = num(d.get("cutoff"), 1000.0, 96000.0, "cutoff")
        width = num(d.get("width"), 10.0, 20000.0, "width")
        hz, gains, slopes = d.get("hz"), d.get("gain_db"), d.get("slope_db_per_khz")
        if not isinstance(hz, list) or not 2 <= len(hz) <= MAX_POINTS:
            raise ValueError(f"high_band: hz must be a list of 2..{MAX_POINTS} frequencies")
        hz = [num(f, cutoff, 96000.0, "a curve frequency") for f in hz]
        if any(b <= a for a, b in zip(hz, hz[1:])):
            raise ValueError("high_band: hz must be ascending")
        if not isinstance(gains, dict) or not gains or not isinstance(slopes, dict) or set(slopes) != set(gains):
            raise ValueError("high_band: gain_db and slope_db_per_khz must name the same instruments")
        out_g = {}
        for k, g in gains.items():
            if not isinstance(k, str) or len(k) > 32 or not isinstance(g, list) or len(g) != len(hz):
                raise ValueError("high_band: one gain list per instrument, as long as hz")
            out_g[k] = tuple(num(v, -GAIN_LIMIT_DB, GAIN_LIMIT_DB, "a gain (dB)") for v in g)
        out_s = {k: num(v, -1000.0, 1000.0, "a slope (dB/kHz)") for k, v in slopes.items()}
        fit_rate = int(num(d.get("fit_rate", FIT_RATE), 8000, 384000, "fit_rate"))
        edge = d.get("edge_hz")
        edge = None if edge is None else num(edge, cutoff, 96000.0, "edge_hz")
        info = d.get("info", {})
        return cls(tuple(hz), out_g, out_s, cutoff, width, fit_rate, edge, info if isinstance(info, dict) else {})


def fit(clips: Mapping[str, Iterable[tuple[np.ndarray, int]]], cutoff: float = CUTOFF, width: float = WIDTH,
        seed: int = 0) -> HighBand:
    """Fit :class:`HighBand` curves from each instrument's recordings ``{instrument: [(wave (T,), rate), ...]}``.

    Clips are taken at :data:`FIT_RATE` (resampled down from higher rates; clips below it hold nothing up
    there and are skipped). Per bin above ``cutoff``: the median, over the frames within
    :data:`FIT_RANGE_DB` of each clip's loudest, of ``log |X(f)| - log |X(source bin)|`` (the L1-best constant
    gain on log magnitudes, as the bench's MR-STFT and the training loss measure them). The slope past the
    curve the spectrum goes on at a tilt (dB per kHz, never rising): the least-squares fit of ``gain = tilt x the
    distance to the source bin`` over the curve's part below :data:`EDGE` of the fit rate's Nyquist. An instrument with no usable clip gets no curve (its
    outputs keep :func:`extend_band`); ``ValueError`` when no instrument has one.
    """
    n_fft = _n_fft(FIT_RATE)
    hop = n_fft // 4
    freqs = np.fft.rfftfreq(n_fft, 1.0 / FIT_RATE)
    tgt, src = _sources(freqs, cutoff, width)
    edge = EDGE * FIT_RATE / 2
    rng = np.random.default_rng(seed)
    gains, slopes, counts = {}, {}, {}
    for inst, items in clips.items():
        ratios, n_clips = [], 0
        for wave, rate in items:
            if rate < FIT_RATE:
                continue
            x = np.asarray(wave, np.float32).reshape(-1)
            if rate != FIT_RATE:
                x = audio_io.resample(x[None], rate, FIT_RATE)[0]
            X = spectral.stft(torch.from_numpy(np.ascontiguousarray(x)), n_fft, hop).abs().numpy()
            energy = 10 * np.log10((X.astype(np.float64) ** 2).sum(0) + 1e-20)
            keep = energy > energy.max() - FIT_RANGE_DB
            if energy.max() < -100 or not keep.any():
                continue
            L = np.log(np.maximum(X[:, keep], 1e-7))
            ratios.append((L[tgt] - L[src]).astype(np.float32))
            n_clips += 1
        if not ratios:
            continue
        R = np.concatenate(ratios, axis=1)
        if R.shape[1] > FIT_MAX_FRAMES:
            R = R[:, np.sort(rng.choice(R.shape[1], FIT_MAX_FRAMES, replace=False))]
        db = np.median(R, axis=1) * 20 / np.log(10)
        gains[inst] = tuple(float(v) for v in np.clip(db, -GAIN_LIMIT_DB, GAIN_LIMIT_DB))
        trusted = freqs[tgt] <= edge  # the tilt: gain = tilt x distance to the source bin (least squares)
        dist = (freqs[tgt] - freqs[src])[trusted] / 1000.0
        slopes[inst] = float(min((db[trusted] * dist).sum() / max((dist ** 2).sum(), 1e-9), 0.0))
        counts[inst] = {"clips": n_clips, "frames": int(R.shape[1])}
    if not gains:
        raise ValueError(f"high_band: no clip at {FIT_RATE} Hz or more to fit on")
    return HighBand(tuple(float(f) for f in freqs[tgt]), gains, slopes, cutoff, width, FIT_RATE, edge,
                    {"n_fft": n_fft, "fitted_on": counts})


def extend_band(y: np.ndarray, x: np.ndarray, rate: int, cutoff: float = 10500.0,
                ref_band: tuple[float, float] = (8500.0, 10300.0), block_seconds: float = 60.0) -> np.ndarray:
    """Fill the band the 22050 Hz model cannot produce (above ``cutoff``) from the input, when its rate is higher.

    The input's own high band is used, scaled per frame so that its level follows the output's level
    in ``ref_band`` relative to the input's (so it decays or sustains with the new instrument).
    ``y``, ``x``: ``(T,)`` at ``rate``; returns ``(T,)``. Signals longer than ``block_seconds`` are done
    in blocks with context on both sides (:func:`engines.audio.chunking.run_chunked`, context mode; the gain is
    per frame, so the result is the same).
    """
    from engines.audio.chunking import run_chunked

    n_fft = _n_fft(rate)
    hop = n_fft // 4
    block = max(int(block_seconds * rate) // hop, 1) * hop
    ctx = 4 * n_fft  # a multiple of hop, as the block: the blocks' frames fall on the whole signal's frame grid

    def piece(p: torch.Tensor) -> torch.Tensor:  # p: (2, t) = output, input
        return torch.from_numpy(_extend_band(p[0].numpy(), p[1].numpy(), rate, cutoff, ref_band, n_fft, hop))

    both = torch.from_numpy(np.stack([np.asarray(y, np.float32), np.asarray(x, np.float32)]))
    return run_chunked(piece, both, block, context=ctx).numpy()


def _extend_band(y: np.ndarray, x: np.ndarray, rate: int, cutoff: float, ref_band: tuple[float, float],
                 n_fft: int, hop: int) -> np.ndarray:
    Y = spectral.stft(torch.from_numpy(np.ascontiguousarray(y)), n_fft, hop)
    X = spectral.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), n_fft, hop)
    f = torch.fft.rfftfreq(n_fft, 1.0 / rate)
    band = (f >= ref_band[0]) & (f < ref_band[1])
    g = (Y.abs()[band].pow(2).mean(0) / X.abs()[band].pow(2).mean(0).clamp_min(1e-12)).sqrt().clamp(0.0, 10.0)
    hi = f >= cutoff
    fade = ((f - cutoff) / FADE).clamp(0, 1)[:, None]
    Y = torch.where(hi[:, None], (1 - fade) * Y + fade * X * g[None], Y)
    return spectral.istft(Y, n_fft, hop, len(y)).numpy().astype(np.float32)


__all__ = ["CUTOFF", "EDGE", "FIT_RATE", "HighBand", "WIDTH", "extend_band", "fit"]
