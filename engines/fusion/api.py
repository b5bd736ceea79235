"""Fusing two songs: ``fuse(a, b, ...) -> FusionResult`` (what the CLI and the studio call).

Pipeline: load both at the codec's rate (mono) -> beat tracking -> B time-stretched to A's tempo and
shifted so its downbeats fall on A's -> optional pitch shift of B to A's key -> B's loudness (LUFS)
matched to A's -> B looped/trimmed to A's length -> encode -> complementary masks (temporal segments
follow A's bars or beats) with short crossfades at segment edges -> ``direct`` (masked sum) or
``learned`` (the cascade transformer) -> decode -> clip protection.

The result carries a region map (which source holds which latent channel/frame; channels are
frequency bands for the built-in codec) for plotting, the segments in seconds, the aligned sources
and every decision (tempo, key, gains) as JSON.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from engines.audio import io
from engines.audio import limits
from engines.audio.errors import TooLongError, TooShortError
from . import align
from .codec import Codec, MDCTCodec, get_codec
from .masking import MASK_TYPES, DESCRIPTIONS, complementary_masks, describe

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, tuple]
MODES = ("direct", "learned")
SEGMENT_UNITS = ("bars", "beats", "frames")
A, B, BOTH, NEITHER = 0, 1, 2, -1


@dataclass
class FusionResult:
    """Everything a caller (CLI, studio tab, benchmark) needs.

    Attributes:
        audio: the fusion, float32 ``(T,)`` mono, peak <= 0.999.
        sample_rate: its rate (the codec's).
        mode, mask_type: what was run.
        region_map: int8 ``(channels, frames)`` on the latent grid: 0 = A, 1 = B, 2 = both, -1 = neither.
        region_times: ``(frames,)`` frame times in seconds; region_freqs: ``(channels,)`` band centres
            in Hz (built-in codec) or channel indices (EnCodec).
        segments: ``[{"start", "end", "source"}]`` time spans (s) of the time-varying masks (``source``
            is "A", "B", "A low / B high" ...).
        a, b: the two sources as they were fused (after alignment), float32 ``(T,)``.
        params: options and decisions (tempo, stretch rate, offset, key, semitones, LUFS, gains, model).
        timings: wall seconds per stage, ``total`` and ``rtf`` (total / duration); ``cpu`` and
            ``cpu_rtf``: the process's CPU time (less sensitive to other load on a shared machine).
    """

    audio: np.ndarray
    sample_rate: int
    mode: str
    mask_type: str
    region_map: np.ndarray
    region_times: np.ndarray
    region_freqs: np.ndarray
    segments: list = field(default_factory=list)
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def share(self) -> dict:
        """Share of the latent grid held by each source (``A``, ``B``, ``both``, ``neither``)."""
        n = self.region_map.size or 1
        return {k: round(float((self.region_map == v).sum()) / n, 4)
                for k, v in (("A", A), ("B", B), ("both", BOTH), ("neither", NEITHER))}

    def to_json(self) -> dict:
        return {"sample_rate": self.sample_rate, "duration_s": round(self.duration, 3), "mode": self.mode,
                "mask_type": self.mask_type, "description": DESCRIPTIONS[self.mask_type],
                "params": self.params, "regions": {"share": self.share(), "segments": self.segments,
                                                    "legend": {"0": "A", "1": "B", "2": "both", "-1": "neither"}},
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


# ------------------------------------------------------------------------------------------ engine
class FusionEngine:
    """Holds the codec and (lazily) the learned model; cache one per studio (``ctx.engines``)."""

    def __init__(self, model: str | None = None, checkpoint: str | None = None, codec: str | Codec = "builtin"):
        self.model_name = checkpoint or model
        self.codec = codec if isinstance(codec, Codec) else get_codec(codec)
        self._model = None
        self._model_meta: dict = {}

    def load_model(self):
        """The cascade (registry name, path, or the default ``fusion`` model)."""
        if self._model is None:
            from engines import registry
            from engines.checkpoint import load_model
            from .model import CascadeFusion

            path = registry.resolve(self.model_name, "fusion")
            model = load_model(path, expected=CascadeFusion)
            meta = getattr(model, "checkpoint_metadata", {})
            want = meta.get("codec", "builtin")
            if want != self.codec.name:
                raise ValueError(f"The fusion model '{path.name}' was trained on the '{want}' codec, "
                                 f"not '{self.codec.name}'; pass --codec {want}.")
            self._model, self._model_meta = model, {"file": path.name, **{k: meta.get(k) for k in
                                                                          ("name", "codec", "trained_on")}}
        return self._model

    def fuse(self, a: Source, b: Source, **options) -> FusionResult:
        return fuse(a, b, engine=self, **options)


#: shortest song B (it is looped to A's length); song A needs ``limits.MIN_SECONDS["fuse"]``
MIN_B_SECONDS = 0.25


def _load(src: Source, sr: int, what: str, max_seconds: float | None, min_seconds: float) -> np.ndarray:
    if isinstance(src, tuple):
        audio, rate = src
        audio = np.asarray(audio, dtype=np.float32)
        audio = audio[None] if audio.ndim == 1 else audio
        if audio.shape[0] > audio.shape[-1]:
            audio = audio.T
        seconds = audio.shape[-1] / max(int(rate), 1)
        if max_seconds is not None and seconds > max_seconds:
            raise TooLongError(f"{what} is {seconds:.1f} s long; the limit is {max_seconds:g} s.")
        if seconds < min_seconds:
            raise TooShortError(f"{what} is {seconds:.2f} s long; at least {min_seconds:g} s is needed.")
        audio = io.to_channels(audio, 1)
        if int(rate) != sr:
            audio = io.resample(audio, int(rate), sr)
    else:
        audio, _ = io.load(src, sr=sr, mono=True, max_seconds=max_seconds, min_seconds=min_seconds)
    audio = audio[0].astype(np.float32)
    if not np.isfinite(audio).all():
        raise ValueError(f"{what} contains NaN or infinite samples.")
    io.check_not_silent(audio, what)
    return audio


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Loop or trim ``y`` to ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    reps = int(np.ceil(n / max(len(y), 1)))
    return np.tile(y, reps)[:n]


def _segment_bounds(info: align.BeatInfo | None, unit: str, length: int, frame_rate: float,
                    num_frames: int) -> list[int] | None:
    if info is None or unit == "frames":
        return None
    times = info.downbeats if unit == "bars" else info.beats
    times = list(times)[::max(int(length), 1)]
    bounds = sorted({int(round(t * frame_rate)) for t in times if 0 < round(t * frame_rate) < num_frames})
    return bounds or None


def _segments_from_map(owner: np.ndarray, mask_type: str, frame_rate: float) -> list[dict]:
    if mask_type not in ("temporal", "energy", "hybrid"):
        return []
    if mask_type == "hybrid":
        col = np.where(owner[0] == A, A, np.where(owner[-1] == B, B, NEITHER))
        names = {A: "A low", B: "B high", NEITHER: "silent"}
    else:
        col = owner[0]
        names = {A: "A", B: "B", BOTH: "both", NEITHER: "silent"}
    out, start = [], 0
    for i in range(1, len(col) + 1):
        if i == len(col) or col[i] != col[start]:
            out.append({"start": round(start / frame_rate, 3), "end": round(i / frame_rate, 3),
                        "source": names.get(int(col[start]), "?")})
            start = i
    return out


def fuse(a: Source, b: Source, *, mask_type: str = "temporal", mode: str = "direct", model: str | None = None,
         checkpoint: str | None = None, codec: str | Codec = "builtin", engine: FusionEngine | None = None,
         segment_unit: str = "bars", segment_length: int = 1, mask_temporal_segment: int = 150,
         mask_freq_split: float = 0.3, mask_channel_keep: float = 0.5, mask_energy_threshold: float = 0.7,
         match_tempo: bool = True, match_key: bool = False, match_loudness: bool = True,
         crossfade_ms: float = 20.0, energy_smoothing_ms: float = 100.0, beats_per_bar: int = 0, seed: int = 0, max_seconds: float | None = None,
         progress: Callable[[float, str], None] | None = None) -> FusionResult:
    """Fuse song ``a`` (the input: its tempo, length and bar grid lead) with song ``b`` (the target).

    Args:
        a, b: path, bytes, or ``(samples, rate)`` (any rate, any channels; downmixed to mono).
        mask_type: ``none | temporal | frequency | spectral | energy | hybrid``.
        mode: ``direct`` (masked sum of the latents, no network) or ``learned`` (cascade transformer).
        model / checkpoint: registry name or checkpoint path of the cascade (default: the ``fusion``
            default model); only for ``learned``.
        codec: ``builtin`` or an EnCodec hub id / local folder.
        segment_unit / segment_length: temporal segments of ``segment_length`` bars or beats of A;
            ``frames`` uses ``mask_temporal_segment`` frames (the original).
        mask_*: the masking options (see :mod:`engines.fusion.masking`).
        match_tempo / match_key / match_loudness: alignment steps (key matching is off by default).
        crossfade_ms: crossfade length at segment edges (0 = hard switches).
        beats_per_bar: bar length in beats for the downbeat grid (0 = pick 3 or 4 per song).
        energy_smoothing_ms: moving average of the frame energies before the energy threshold.
        max_seconds: longest song accepted (``None``: ``limits.max_seconds()``; a larger value is capped to it).
        progress: ``progress(fraction, message)`` callback.

    Raises:
        ValueError: an option outside its range (:data:`engines.audio.limits.OPTIONS`), before any work;
        AudioError subclasses for unreadable, silent, too short or too long songs.
    """
    limits.check("fuse", segment_length=segment_length, mask_temporal_segment=mask_temporal_segment,
                 mask_freq_split=mask_freq_split, mask_channel_keep=mask_channel_keep,
                 mask_energy_threshold=mask_energy_threshold, crossfade_ms=crossfade_ms,
                 energy_smoothing_ms=energy_smoothing_ms, beats_per_bar=beats_per_bar, seed=seed)
    max_seconds = limits.max_seconds() if max_seconds is None else min(float(max_seconds), limits.max_seconds())
    if mask_type not in MASK_TYPES:
        raise ValueError(f"Unknown mask_type '{mask_type}'; choose one of {', '.join(MASK_TYPES)}.")
    if mode not in MODES:
        raise ValueError(f"Unknown mode '{mode}'; choose direct or learned.")
    if segment_unit not in SEGMENT_UNITS:
        raise ValueError(f"Unknown segment unit '{segment_unit}'; choose bars, beats or frames.")
    prog = progress or (lambda f, m: None)
    t_all, c_all = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    eng = engine or FusionEngine(model=model, checkpoint=checkpoint, codec=codec)
    cdc = eng.codec
    sr = cdc.sample_rate
    fr = cdc.frame_rate

    def lap(name, t0):
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    prog(0.0, "loading")
    ya = _load(a, sr, "Song A", max_seconds, limits.MIN_SECONDS["fuse"])
    yb = _load(b, sr, "Song B", max_seconds, MIN_B_SECONDS)
    lap("load", t0)
    params: dict = {"mask_type": mask_type, "mode": mode, "codec": cdc.name, "sample_rate": sr,
                    "frame_rate": round(fr, 4), "segment_unit": segment_unit, "segment_length": segment_length,
                    "mask_temporal_segment": mask_temporal_segment, "mask_freq_split": mask_freq_split,
                    "mask_channel_keep": mask_channel_keep, "mask_energy_threshold": mask_energy_threshold,
                    "crossfade_ms": crossfade_ms, "energy_smoothing_ms": energy_smoothing_ms, "seed": seed,
                    "a_seconds": round(len(ya) / sr, 3), "b_seconds": round(len(yb) / sr, 3)}
    n = len(ya)
    info_a = None
    need_beats = match_tempo or (mask_type in ("temporal", "hybrid") and segment_unit != "frames")
    if need_beats:
        prog(0.1, "tracking beats")
        t0 = time.perf_counter()
        info_a = align.track_beats(ya, sr, beats_per_bar)
        info_b = align.track_beats(yb, sr, beats_per_bar)
        lap("beats", t0)
        tempo = {"a_bpm": round(info_a.tempo, 2), "b_bpm": round(info_b.tempo, 2), "rate": 1.0, "b_offset_s": 0.0,
                 "a_beats_per_bar": info_a.beats_per_bar, "b_beats_per_bar": info_b.beats_per_bar,
                 "a_first_downbeat_s": round(info_a.downbeats[0], 3) if info_a.downbeats else None}
        if match_tempo:
            t0 = time.perf_counter()
            rate = align.tempo_ratio(info_b.tempo, info_a.tempo)
            need = int(np.ceil((n + 4 * 60.0 / max(info_b.tempo, 1) * info_b.beats_per_bar * sr) * rate)) + sr
            yb = align.time_stretch(yb[:need], rate)
            offset = 0.0
            if info_a.downbeats and info_b.downbeats:
                bar = 60.0 / info_a.tempo * info_a.beats_per_bar
                offset = float((info_b.downbeats[0] / rate - info_a.downbeats[0]) % bar)
                yb = yb[int(round(offset * sr)):]
            tempo.update(rate=round(rate, 4), b_offset_s=round(offset, 4), b_bpm_after=round(info_b.tempo * rate, 2))
            lap("stretch", t0)
        params["tempo"] = tempo
    yb = _fit_length(yb, n)
    if match_key:
        prog(0.3, "matching key")
        t0 = time.perf_counter()
        ka, kb = align.estimate_key(ya, sr), align.estimate_key(yb, sr)
        steps = align.key_shift(kb, ka)
        yb = _fit_length(align.pitch_shift(yb, sr, steps), n)
        params["key"] = {"a": ka.to_dict(), "b": kb.to_dict(), "b_semitones": steps}
        lap("key", t0)
    if match_loudness:
        t0 = time.perf_counter()
        la = align.loudness_lufs(ya, sr)
        yb, gain = align.match_loudness(yb, sr, la)
        params["loudness"] = {"a_lufs": round(la, 2), "b_gain_db": round(gain, 2)}
        lap("loudness", t0)

    prog(0.5, "encoding")
    t0 = time.perf_counter()
    with torch.no_grad():
        za = cdc.encode(torch.from_numpy(ya)[None, None])
        zb = cdc.encode(torch.from_numpy(np.ascontiguousarray(yb))[None, None])
    lap("encode", t0)
    N = za.shape[-1]
    bounds = None
    if mask_type in ("temporal", "hybrid"):
        bounds = _segment_bounds(info_a, segment_unit, segment_length, fr, N)
        params["segment_bounds_s"] = [round(x / fr, 3) for x in bounds] if bounds else None
    g = torch.Generator().manual_seed(int(seed))
    m_in, m_tgt = complementary_masks(za, mask_type, temporal_segment=mask_temporal_segment, freq_split=mask_freq_split,
                                      channel_keep=mask_channel_keep, energy_threshold=mask_energy_threshold,
                                      segments=bounds, generator=g,
                                      energy_smoothing=max(int(round(energy_smoothing_ms / 1000.0 * fr)), 1))
    for line in describe(mask_type, temporal_segment=mask_temporal_segment, freq_split=mask_freq_split,
                         channel_keep=mask_channel_keep, energy_threshold=mask_energy_threshold, frame_rate=fr,
                         segments=bounds):
        logger.info(line)
    ramp = int(round(crossfade_ms / 1000.0 * fr))
    s_in, s_tgt = align.smooth_masks(m_in, m_tgt, ramp) if mask_type != "none" else (m_in, m_tgt)
    params["crossfade_frames"] = ramp

    prog(0.6, "fusing")
    t0 = time.perf_counter()
    with torch.no_grad():
        if mode == "learned":
            net = eng.load_model()
            params["model"] = eng._model_meta
            z = net.forward_chunked(za, zb, s_in, s_tgt)
        else:
            z = s_in * za + s_tgt * zb
    lap("fuse", t0)
    t0 = time.perf_counter()
    with torch.no_grad():
        y = cdc.decode(z, length=n)[0, 0].numpy().astype(np.float32)
    lap("decode", t0)
    if mask_type == "none":
        y = y * 0.5  # A + B at equal loudness: keep the level of one song
    y = io.protect_against_clipping(y)

    owner = np.full(m_in.shape[1:], NEITHER, dtype=np.int8)
    mi, mt = m_in[0].numpy() > 0.5, m_tgt[0].numpy() > 0.5
    owner[mi & ~mt], owner[mt & ~mi], owner[mi & mt] = A, B, BOTH
    freqs = cdc.channel_frequencies()
    freqs = freqs.numpy() if freqs is not None else np.arange(owner.shape[0], dtype=np.float32)
    timings["total"] = time.perf_counter() - t_all
    timings["rtf"] = timings["total"] / max(n / sr, 1e-9)
    timings["cpu"] = time.process_time() - c_all  # CPU seconds of this process (all threads)
    timings["cpu_rtf"] = timings["cpu"] / max(n / sr, 1e-9)
    prog(1.0, "done")
    return FusionResult(audio=y, sample_rate=sr, mode=mode, mask_type=mask_type, region_map=owner,
                        region_times=np.arange(owner.shape[1]) / fr, region_freqs=freqs,
                        segments=_segments_from_map(owner, mask_type, fr), a=ya, b=yb.astype(np.float32),
                        params=params, timings=timings)


# ------------------------------------------------------------------------------------------ metrics
def complementarity(result: FusionResult, n_fft: int = 1024, hop: int = 256, block_seconds: float = 1.0,
                    min_cells: int = 8) -> dict:
    """The issue's complementarity of a fusion: over the regions the mask defines, the energy-weighted
    share of regions where the output's magnitude spectrogram is closer (cosine) to the source
    assigned there than to the other one.

    Regions: the latent ownership map is carried onto an STFT grid (``n_fft``/``hop``; latent channels
    to frequency bands for the built-in codec, all frequencies for codecs without band channels);
    time is cut into the mask's segments (time-varying masks) or ``block_seconds`` blocks (static
    masks); each (block, owner) cell set with at least ``min_cells`` cells is one region. The weight
    is the output's energy in the region. ``none`` has no regions (returns ``None`` share).
    """
    from engines.audio.spectral import stft

    if result.mask_type == "none":
        return {"complementarity": None, "regions": 0}
    sr = result.sample_rate
    mags = [stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), n_fft, hop).abs().numpy()
            for x in (result.audio, result.a, result.b)]
    Y, SA, SB = mags
    F_, T_ = Y.shape
    owner = result.region_map
    C, N = owner.shape
    fr = N / max(result.region_times[-1] + (result.region_times[1] - result.region_times[0] if N > 1 else 1), 1e-9)
    t_idx = np.clip(np.round(np.arange(T_) * hop / sr * fr).astype(int), 0, N - 1)
    f_hz = np.arange(F_) * sr / n_fft
    if result.params.get("codec") == "builtin":
        band = np.clip((f_hz / (sr / 2 / C)).astype(int), 0, C - 1)
        grid = owner[band][:, t_idx]
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
    wins = total = 0.0
    n_regions = 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        g = grid[:, lo:hi]
        for who, other in ((A, B), (B, A)):
            cells = g == who
            if cells.sum() < min_cells:
                continue
            y = Y[:, lo:hi][cells]
            s_as = (SA if who == A else SB)[:, lo:hi][cells]
            s_ot = (SB if who == A else SA)[:, lo:hi][cells]
            cos = lambda u, v: float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))  # noqa: E731
            w = float(np.sum(y**2))
            if w <= 0:
                continue
            n_regions += 1
            total += w
            wins += w * (cos(y, s_as) > cos(y, s_ot))
    return {"complementarity": (wins / total) if total > 0 else None, "regions": n_regions}
