"""Fusing two songs: ``Engine.load(...).run({"a": A, "b": B}, Config(...)) -> FusionResult`` (what the CLI
and the studio call; ``fuse(a, b, **options)`` is the same as one call, for tests and benchmarks).

Pipeline: load both at the codec's rate (mono) -> beat tracking -> B time-stretched to A's tempo and
shifted so its downbeats fall on A's -> optional pitch shift of B to A's key -> B's loudness (LUFS)
matched to A's -> B looped/trimmed to A's length -> encode -> complementary masks (temporal segments
follow A's bars or beats) with short crossfades at segment edges -> ``direct`` (masked sum) or
``learned`` (the cascade transformer) -> decode -> clip protection.

The result carries a region map (which source holds which latent channel/frame; channels are
frequency bands for the built-in codec) for plotting, the segments in seconds, the aligned sources
and every decision (tempo, key, gains) as JSON; :meth:`FusionResult.save` writes ``fusion.wav`` and
``fusion.json`` (the studio adds ``a.wav`` and ``b_aligned.wav`` with :meth:`FusionResult.source_files`).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Union

import numpy as np
import torch

from engines import base
from engines.audio import io, levels
from engines.audio import limits
from . import align
from .codec import Codec, get_codec
from .config import MASK_TYPES, MODES, SEGMENT_UNITS, Config, split_hz, split_label
from .masking import DESCRIPTIONS, complementary_masks, describe
from .targets import A, B, BOTH, NEITHER, complementarity

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, tuple]

__all__ = ["Config", "FusionEngine", "FusionResult", "fuse", "complementarity", "MASK_TYPES", "MODES",
           "SEGMENT_UNITS", "A", "B", "BOTH", "NEITHER"]


def _empty_map() -> np.ndarray:
    return np.zeros((0, 0), dtype=np.int8)


@dataclass
class FusionResult(base.Result):
    """Everything a caller (CLI, studio tab, benchmark) needs.

    Attributes:
        audio: ``{"fusion": (1, T)}`` float32 mono, peak <= 0.999 (:attr:`fusion` is the ``(T,)`` signal).
        sample_rate: its rate (the codec's).
        mode, mask_type: what was run.
        region_map: int8 ``(channels, frames)`` on the latent grid: 0 = A, 1 = B, 2 = both, -1 = neither.
        region_times: ``(frames,)`` frame times in seconds; region_freqs: ``(channels,)`` band centres
            in Hz (built-in codec) or channel indices (EnCodec).
        segments: ``[{"start", "end", "source"}]`` time spans (s) of the time-varying masks (``source``
            is "A", "B", "A low / B high" ...).
        a, b: the two sources as they were fused (after alignment), float32 ``(T,)``.
        sources: the input files (``{"a": path, "b": path}``) when the inputs were files.
        params: options and decisions (tempo, stretch rate, offset, key, semitones, LUFS, gains, model).
        timings: wall seconds per stage, ``total`` and ``rtf`` (total / duration); ``cpu`` and
            ``cpu_rtf``: the process's CPU time (less sensitive to other load on a shared machine).
    """

    JSON_NAME: ClassVar[str] = "fusion.json"

    mode: str = "direct"
    mask_type: str = "temporal"
    region_map: np.ndarray = field(default_factory=_empty_map)
    region_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    region_freqs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    segments: list = field(default_factory=list)
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    sources: dict = field(default_factory=dict)

    @property
    def fusion(self) -> np.ndarray:
        """The fusion, float32 ``(T,)``."""
        return self.audio["fusion"][0]

    def share(self) -> dict:
        """Share of the latent grid held by each source (``A``, ``B``, ``both``, ``neither``)."""
        n = self.region_map.size or 1
        return {k: round(float((self.region_map == v).sum()) / n, 4)
                for k, v in (("A", A), ("B", B), ("both", BOTH), ("neither", NEITHER))}

    def info(self) -> dict:
        return {**self.sources, "duration_s": round(self.duration, 3), "mode": self.mode,
                "mask_type": self.mask_type, "description": DESCRIPTIONS[self.mask_type],
                "regions": {"share": self.share(), "segments": self.segments,
                            "legend": {"0": "A", "1": "B", "2": "both", "-1": "neither"}}}

    def source_files(self, subtype: str = "PCM_16") -> dict[str, Callable[[Path], None]]:
        """``{"a.wav": writer, "b_aligned.wav": writer}``: the two sources as fused, for
        ``save(..., extra=result.source_files())`` (the studio's players)."""
        out = {}
        for name, y in (("a.wav", self.a), ("b_aligned.wav", self.b)):
            if y is not None:
                out[name] = (lambda path, y=y: io.save(path, np.asarray(y, dtype=np.float32), int(self.sample_rate),
                                                       subtype=subtype))
        return out


# ------------------------------------------------------------------------------------------ engine
class FusionEngine(base.Engine):
    """A/B fusion: two songs in, one arrangement out. Holds the codecs and (lazily, for ``learned``) the
    cascade, on one device; the studio caches one per model (``ctx.engines``), the CLI builds one per run."""

    NAME = "fusion"
    INPUTS = ("a", "b")
    Config = Config

    def __init__(self, model: str | None = None, checkpoint: str | None = None, codec: str | Codec = "builtin",
                 device: str = "auto"):
        from engines.device import resolve

        self.model_name = checkpoint or model
        self.device = resolve(device)
        self._codecs: dict[str, Codec] = {}
        self.codec = self.codec_for(codec)
        self._codecs.setdefault(self.codec.name, self.codec)
        self._model = None
        self._model_meta: dict = {}

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, device: str = "auto",
             codec: str | Codec = "builtin", **options) -> "FusionEngine":
        """An engine for the cascade ``name_or_path`` (registry name or checkpoint path; ``None``: the
        default ``fusion`` model, loaded on the first ``learned`` run or by :meth:`load_model`) on ``device``."""
        unknown = sorted(set(options) - {"model", "checkpoint"})
        if unknown:
            raise TypeError(f"FusionEngine.load got unknown options: {', '.join(unknown)}")
        path = name_or_path if name_or_path is not None else options.get("checkpoint") or options.get("model")
        return cls(model=None if path is None else str(path), codec=codec, device=device)

    def codec_for(self, codec: str | Codec) -> Codec:
        """The codec ``codec`` (a name/folder, built once per engine, or a :class:`Codec`) on the engine's device."""
        if isinstance(codec, Codec):
            return codec.to(self.device)
        if codec not in self._codecs:
            self._codecs[codec] = get_codec(codec).to(self.device)
        return self._codecs[codec]

    def load_model(self, codec: Codec | None = None):
        """The cascade (registry name, path, or the default ``fusion`` model) on the engine's device; refuses
        a model trained on another codec than ``codec`` (default: the engine's)."""
        codec = codec or self.codec
        if self._model is None:
            from engines import registry
            from engines.checkpoint import load_model
            from .model import CascadeFusion

            path = registry.resolve(self.model_name, "fusion")
            model = load_model(path, expected=CascadeFusion)
            meta = getattr(model, "checkpoint_metadata", {})
            self._model = model.to(self.device).eval()
            self._model_meta = {"file": path.name, **{k: meta.get(k) for k in ("name", "codec", "trained_on")}}
        want = self._model_meta.get("codec") or "builtin"
        if want != codec.name:
            raise ValueError(f"The fusion model '{self._model_meta['file']}' was trained on the '{want}' codec, "
                             f"not '{codec.name}'; pass --codec {want}.")
        return self._model

    def fuse(self, a: Source, b: Source, *, progress: Callable[[float, str], None] | None = None,
             **options) -> "FusionResult":
        """``run({"a": a, "b": b}, Config(**options))`` (the old call, kept for benchmarks and tests)."""
        return self.run({"a": a, "b": b}, None, progress, **options)

    def _run(self, inputs: dict, cfg: Config, progress) -> "FusionResult":
        return _fuse(self, inputs["a"], inputs["b"], cfg, progress)


#: shortest song B (it is looped to A's length); song A needs ``limits.MIN_SECONDS["fuse"]``
MIN_B_SECONDS = 0.25


def _load(src: Source, sr: int, what: str, max_seconds: float | None, min_seconds: float) -> np.ndarray:
    """One song as float32 mono ``(T,)`` at ``sr``: a path, bytes or ``(array, rate)`` through :func:`engines.audio.io.load`
    (the checks every input gets; ``what`` names in-memory input in messages), then refused when silent."""
    audio, _ = io.load(src, sr=sr, mono=True, max_seconds=max_seconds, min_seconds=min_seconds, what=what)
    audio = audio[0].astype(np.float32)
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


#: band edges (Hz) of ``--spectral_unit octaves``: the bass below 250 Hz is one band (the codec's 93.75 Hz bands
#: cannot split it cleanly: 0.985 clean on the corpus's dev pairs against 0.968 with a 125 Hz edge), then octaves
#: up to 8 kHz, the last band runs to Nyquist
OCTAVE_EDGES = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
#: the largest per-song gain of ``--balance`` (dB, half on each song)
BALANCE_MAX_DB = 12.0
#: ``--balance`` levels the parts only when A's share of the output energy lies outside this range
BALANCE_RANGE = (0.3, 0.7)
#: a stem mashup's lead part below this share of its own song's energy (an instrumental's "vocals") is bleed:
#: the readout warns, and ``--balance`` does not boost it
LEAD_MIN_SHARE = 0.05


def balance_gains(ea: float, eb: float) -> tuple[float, float, dict]:
    """The ``--balance`` rule on the energies of A's and B's parts of an output: when A's share lies outside
    :data:`BALANCE_RANGE`, A and B get opposite gains (half the dB each, at most :data:`BALANCE_MAX_DB` in all)
    that bring it to one half. Returns the amplitude gains ``ga, gb`` and the decisions."""
    share = ea / (ea + eb) if ea + eb > 0 else 0.5
    info = {"a_share_before": round(share, 4), "a_gain_db": 0.0, "b_gain_db": 0.0, "a_share_after": round(share, 4)}
    if ea <= 0 or eb <= 0 or BALANCE_RANGE[0] <= share <= BALANCE_RANGE[1]:
        return 1.0, 1.0, info
    d = float(np.clip(10 * np.log10(ea / eb), -BALANCE_MAX_DB, BALANCE_MAX_DB))  # A louder by d dB
    ga, gb = 10 ** (-d / 40), 10 ** (d / 40)
    after = ea * ga**2 / (ea * ga**2 + eb * gb**2)
    info.update(a_gain_db=round(-d / 2, 2), b_gain_db=round(d / 2, 2), a_share_after=round(after, 4))
    return ga, gb, info


def _balance(za: torch.Tensor, zb: torch.Tensor, s_in: torch.Tensor, s_tgt: torch.Tensor):
    """Level the two songs' parts of a masked fusion (:func:`balance_gains` on the masked latent energy: the
    output's, the built-in codec being orthogonal). Returns ``za, zb, decisions``."""
    ga, gb, info = balance_gains(float((s_in * za).pow(2).sum()), float((s_tgt * zb).pow(2).sum()))
    return za * ga, zb * gb, info


def _vocal_engine(eng, stems: int = 2):
    """The vocal engine (``engines.vocals``, its public API) this fusion engine uses for stem mashups, loaded once
    per fusion engine and model (so the studio's engine cache, which holds the fusion engine, is the only cache):
    the default vocal model; with ``stems=4`` and a two-stem default, the first registered four-stem model (the
    default of those first), or the default when none is registered (the caller then says what is missing)."""
    from engines import registry

    name = None
    if stems >= 4:
        four = [e for e in registry.entries("vocals") if int(e.get("stems", 2)) >= 4]
        if four and int(registry.default("vocals").get("stems", 2)) < 4:  # ``four`` non-empty: a default exists
            name = sorted(four, key=lambda e: not e.get("default"))[0]["name"]
    cache = eng.__dict__.setdefault("_vocal_engines", {})
    key = (name, str(registry._dir(None)))  # noqa: SLF001 - the models folder is part of the key
    if key not in cache:
        from engines.vocals import Engine as VocalsEngine

        cache[key] = VocalsEngine.load(name, device=str(eng.device))
    return cache[key]


def _stem_parts(eng, ya: np.ndarray, yb: np.ndarray, sr: int, cfg: Config):
    """The two parts of a stem mashup (``mask_type stems``): both aligned songs separated by the vocal engine;
    ``vocals_from`` supplies its vocals (``stem_split vocals``) or its vocals + other (``rhythm``: the other song
    keeps drums + bass), the other song the rest. The lead part is levelled so that its ratio to the backing
    equals the one it had in its own song (at most 12 dB). Returns ``(part from A, part from B, decisions)``."""
    from engines.vocals import Config as VocalsConfig

    four = cfg.stem_split == "rhythm"
    venv = _vocal_engine(eng, 4 if four else 2)
    vcfg = VocalsConfig(stems=4) if four and getattr(venv, "max_stems", 2) >= 4 else VocalsConfig()
    stems = {}
    for name, y in (("a", ya), ("b", yb)):
        res = venv.run((np.asarray(y, dtype=np.float32), sr), vcfg)
        stems[name] = {k: np.asarray(v, dtype=np.float32).mean(0)[: len(y)] for k, v in res.audio.items()}
    lead_song = cfg.vocals_from
    back_song = "b" if lead_song == "a" else "a"
    if cfg.stem_split == "rhythm":
        have = set(stems["a"])
        if not {"drums", "bass"} <= have:
            raise ValueError("--stem_split rhythm needs a four-stem vocal model (drums, bass, other, vocals); "
                             f"the vocal engine gives {', '.join(sorted(have))}. Use --stem_split vocals.")
        lead_names, back_names = ("vocals", "other"), ("drums", "bass")
    else:
        lead_names, back_names = ("vocals",), tuple(k for k in stems["a"] if k != "vocals")

    def part(song, names):
        return np.sum([stems[song][k] for k in names], axis=0).astype(np.float32)

    lead, back = part(lead_song, lead_names), part(back_song, back_names)
    own_back = part(lead_song, back_names)
    song = ya if lead_song == "a" else yb
    lead_share = float(np.sum(lead.astype(np.float64) ** 2) / max(np.sum(np.asarray(song, np.float64) ** 2), 1e-20))
    gain_db = float(np.clip(levels.rms_db(back) - levels.rms_db(own_back), -12.0, 12.0))
    lead = lead * np.float32(10 ** (gain_db / 20))
    parts = {lead_song: lead, back_song: back}
    info = {"split": cfg.stem_split, "lead_from": lead_song.upper(), "lead": "+".join(lead_names),
            "backing_from": back_song.upper(), "backing": "+".join(back_names), "lead_gain_db": round(gain_db, 2),
            "lead_energy_share": round(lead_share, 4),  # of its own song: ~0 for an instrumental (no vocals)
            "model": getattr(venv, "model_name", None) or "default"}
    if cfg.balance and lead_share >= LEAD_MIN_SHARE:  # keep both songs audible (a near-empty lead is not boosted)
        energy = {k: float(np.sum(v.astype(np.float64) ** 2)) for k, v in parts.items()}
        ga, gb, info["balance"] = balance_gains(energy["a"], energy["b"])
        parts = {"a": parts["a"] * np.float32(ga), "b": parts["b"] * np.float32(gb)}
    return parts["a"], parts["b"], info


_CAMELOT_MAJOR = {0: 8, 7: 9, 2: 10, 9: 11, 4: 12, 11: 1, 6: 2, 1: 3, 8: 4, 3: 5, 10: 6, 5: 7}


def camelot(key) -> str:
    """Camelot wheel code of a key (:class:`align.KeyInfo`): C major = 8B, A minor = 8A."""
    if key.mode == "minor":
        return f"{_CAMELOT_MAJOR[(key.tonic + 3) % 12]}A"
    return f"{_CAMELOT_MAJOR[key.tonic % 12]}B"


def camelot_distance(k1, k2) -> int:
    """Steps between two keys on the Camelot wheel: hour steps (circular) + 1 when major/minor differ (0 = same
    key, 1 = a neighbour: the usual "harmonic mixing" match)."""
    c1, c2 = camelot(k1), camelot(k2)
    d = abs(int(c1[:-1]) - int(c2[:-1])) % 12
    return min(d, 12 - d) + (c1[-1] != c2[-1])


def mashability(params: dict, ka, kb, cfg: Config) -> dict:
    """The mashability readout of a run (``fusion.json``, the Fuse tab): the tempo ratio chosen and its x0.5 /
    x2 alternatives, the Camelot key distance, the loudness difference and which song supplies which part."""
    out: dict = {}
    t = params.get("tempo")
    if t:
        rate = float(t.get("rate") or align.tempo_ratio(t["b_bpm"], t["a_bpm"]))
        raw = t["a_bpm"] / max(t["b_bpm"], 1e-9)
        cands = [raw * k for k in (0.25, 0.5, 1.0, 2.0, 4.0)]
        cands = sorted(c for c in cands if 0.25 <= c <= 4.0 and abs(np.log2(c / rate)) > 0.1)
        out["tempo"] = {"a_bpm": t["a_bpm"], "b_bpm": t["b_bpm"], "rate": round(rate, 4),
                        "stretch_pct": round(100 * abs(rate - 1), 1), "applied": bool(cfg.match_tempo),
                        "alternatives": [{"rate": round(c, 4), "b_bpm_after": round(t["b_bpm"] * c, 2),
                                          "stretch_pct": round(100 * abs(c - 1), 1)} for c in cands]}
    out["key"] = {"a": ka.name, "b": kb.name, "camelot_a": camelot(ka), "camelot_b": camelot(kb),
                  "camelot_distance": camelot_distance(ka, kb), "b_semitones": (params.get("key") or {}).get("b_semitones", 0)}
    if "loudness" in params:
        out["loudness_difference_db"] = round(-params["loudness"]["b_gain_db"], 2)
    m = cfg.mask_type
    if m == "stems":
        st = params.get("stems", {})
        parts = {st.get("lead_from", "?"): st.get("lead"), st.get("backing_from", "?"): st.get("backing")}
        if st.get("lead_energy_share", 1.0) < LEAD_MIN_SHARE:
            out["warning"] = (f"song {st.get('lead_from')} has almost no {st.get('lead')} "
                              f"({st['lead_energy_share']:.1%} of its energy): the mashup will sound like one song")
    elif m in ("frequency", "hybrid"):
        hz = params.get("split_hz")
        low, high = (f"below {hz:.0f} Hz", f"above {hz:.0f} Hz") if hz is not None else ("low band", "high band")
        parts = {"A": low + (" on odd segments" if m == "hybrid" else ""),
                 "B": high + (" on even segments" if m == "hybrid" else "")}
    else:
        parts = {"none": {"A": "everything", "B": "everything"},
                 "temporal": {"A": "segments 1, 3, 5...", "B": "segments 2, 4, 6..."},
                 "spectral": {"A": f"random {cfg.spectral_unit}", "B": f"the other {cfg.spectral_unit}"},
                 "energy": {"A": "its loudest segments", "B": "A's quieter segments"}}[m]
    out["parts"] = parts
    bal = params.get("balance")
    if bal:
        out["energy_share_a"] = bal["a_share_after"]
    return out


def fuse(a: Source, b: Source, *, model: str | None = None, checkpoint: str | None = None,
         codec: str | Codec = "builtin", engine: FusionEngine | None = None, device: str = "auto",
         progress: Callable[[float, str], None] | None = None, **options) -> FusionResult:
    """Fuse song ``a`` (the input: its tempo, length and bar grid lead) with song ``b`` (the target): one
    ``FusionEngine(...).run`` (``engine`` reuses one).

    Args:
        a, b: path, bytes, or ``(samples, rate)`` (any rate, any channels; downmixed to mono).
        model / checkpoint: registry name or checkpoint path of the cascade (``learned`` only).
        codec: ``builtin`` or an EnCodec hub id / local folder.
        options: the fields of :class:`engines.fusion.Config` (``mask_type``, ``mode``, ``segment_unit``,
            ``segment_length``, ``mask_*``, ``match_*``, ``crossfade_ms``, ``energy_smoothing_ms``,
            ``beats_per_bar``, ``seed``, ``max_seconds``).
        progress: ``progress(fraction, message)`` callback.

    Raises:
        ValueError: an option outside its range ("Invalid setting: ..."), before any work;
        AudioError subclasses for unreadable, silent, too short or too long songs.
    """
    if isinstance(codec, Codec) or codec != "builtin":
        options.setdefault("codec", codec.name if isinstance(codec, Codec) else codec)
    cfg = Config.from_dict(options)  # refuses bad options before any model or file is touched
    eng = engine or FusionEngine(model=model, checkpoint=checkpoint,
                                 codec=codec if isinstance(codec, Codec) else cfg.codec, device=device)
    return eng.run({"a": a, "b": b}, cfg, progress)


def _fuse(eng: FusionEngine, a: Source, b: Source, cfg: Config, progress) -> FusionResult:
    """The pipeline of the module docstring with the options of ``cfg``."""
    mask_type, mode, segment_unit, segment_length = cfg.mask_type, cfg.mode, cfg.segment_unit, cfg.segment_length
    mask_temporal_segment, mask_freq_split = cfg.mask_temporal_segment, cfg.mask_freq_split
    mask_channel_keep, mask_energy_threshold = cfg.mask_channel_keep, cfg.mask_energy_threshold
    crossfade_ms, energy_smoothing_ms, seed = cfg.crossfade_ms, cfg.energy_smoothing_ms, cfg.seed
    max_seconds = limits.max_seconds() if cfg.max_seconds is None else min(float(cfg.max_seconds),
                                                                           limits.max_seconds())
    prog = progress or (lambda f, m: None)
    t_all, c_all = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    cdc = eng.codec_for(cfg.codec)
    dev = eng.device
    sr = cdc.sample_rate
    fr = cdc.frame_rate

    lap = base.lap_timer(timings)

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
                    "match_tempo": cfg.match_tempo, "match_key": cfg.match_key,
                    "match_loudness": cfg.match_loudness, "beats_per_bar": cfg.beats_per_bar,
                    "device": str(dev), "a_seconds": round(len(ya) / sr, 3), "b_seconds": round(len(yb) / sr, 3)}
    n = len(ya)
    info_a = None
    need_beats = cfg.match_tempo or (mask_type in ("temporal", "hybrid", "energy") and segment_unit != "frames")
    if need_beats:
        prog(0.1, "tracking beats")
        t0 = time.perf_counter()
        info_a = align.track_beats(ya, sr, cfg.beats_per_bar, downbeats_from=cfg.downbeats)
        info_b = align.track_beats(yb, sr, cfg.beats_per_bar, downbeats_from=cfg.downbeats)
        lap("beats", t0)
        tempo = {"a_bpm": round(info_a.tempo, 2), "b_bpm": round(info_b.tempo, 2), "rate": 1.0, "b_offset_s": 0.0,
                 "a_beats_per_bar": info_a.beats_per_bar, "b_beats_per_bar": info_b.beats_per_bar,
                 "a_first_downbeat_s": round(info_a.downbeats[0], 3) if info_a.downbeats else None,
                 "downbeats_from": info_a.downbeats_from}
        if cfg.match_tempo:
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
    t0 = time.perf_counter()
    ka, kb = align.estimate_key(ya, sr), align.estimate_key(yb, sr)
    lap("key", t0)
    if cfg.match_key or mask_type == "stems":  # a stem mashup always sings in A's key
        prog(0.3, "matching key")
        t0 = time.perf_counter()
        steps = align.key_shift(kb, ka)
        yb = _fit_length(align.pitch_shift(yb, sr, steps), n)
        params["key"] = {"a": ka.to_dict(), "b": kb.to_dict(), "b_semitones": steps}
        lap("key", t0)
    if cfg.match_loudness:
        t0 = time.perf_counter()
        la = levels.lufs(ya, sr)
        yb, gain = levels.match_loudness(yb, sr, la)
        params["loudness"] = {"a_lufs": round(la, 2), "b_gain_db": round(gain, 2)}
        lap("loudness", t0)

    part_a, part_b = ya, yb
    if mask_type == "stems":
        prog(0.35, "separating stems")
        t0 = time.perf_counter()
        part_a, part_b, params["stems"] = _stem_parts(eng, ya, yb, sr, cfg)
        lap("stems", t0)

    prog(0.5, "encoding")
    t0 = time.perf_counter()
    with torch.no_grad():
        za = cdc.encode(torch.from_numpy(np.ascontiguousarray(part_a, dtype=np.float32))[None, None].to(dev))
        zb = cdc.encode(torch.from_numpy(np.ascontiguousarray(part_b, dtype=np.float32))[None, None].to(dev))
    lap("encode", t0)
    N = za.shape[-1]
    bounds = None
    if mask_type in ("temporal", "hybrid", "energy"):
        bounds = _segment_bounds(info_a, segment_unit, segment_length, fr, N)
        params["segment_bounds_s"] = [round(x / fr, 3) for x in bounds] if bounds else None
    freqs_t = cdc.channel_frequencies()
    split_channels, groups = None, None
    if freqs_t is not None:
        fq = freqs_t.cpu().numpy()
        if cfg.freq_scale == "log":
            split_channels = int((fq < split_hz(mask_freq_split, sr)).sum())
        if cfg.spectral_unit == "octaves":
            groups = np.searchsorted(np.asarray(OCTAVE_EDGES), fq, side="right")
    if mask_type in ("frequency", "hybrid"):
        params["split_hz"] = round(split_hz(mask_freq_split, sr, cfg.freq_scale if freqs_t is not None else "linear"), 1)
    g = torch.Generator().manual_seed(int(seed))
    m_in, m_tgt = complementary_masks(za, mask_type, temporal_segment=mask_temporal_segment, freq_split=mask_freq_split,
                                      channel_keep=mask_channel_keep, energy_threshold=mask_energy_threshold,
                                      segments=bounds, generator=g,
                                      energy_smoothing=max(int(round(energy_smoothing_ms / 1000.0 * fr)), 1),
                                      split_channels=split_channels, channel_groups=groups,
                                      energy_segments=bounds is not None)
    for line in describe(mask_type, temporal_segment=mask_temporal_segment, freq_split=mask_freq_split,
                         channel_keep=mask_channel_keep, energy_threshold=mask_energy_threshold, frame_rate=fr,
                         segments=bounds, split_label=split_label(mask_freq_split, sr, cfg.freq_scale)
                         if freqs_t is not None else None):
        logger.info(line)
    ramp = int(round(crossfade_ms / 1000.0 * fr))
    s_in, s_tgt = align.smooth_masks(m_in, m_tgt, ramp) if mask_type not in ("none", "stems") else (m_in, m_tgt)
    params["crossfade_frames"] = ramp
    if cfg.balance and mask_type not in ("none", "stems"):
        za, zb, params["balance"] = _balance(za, zb, s_in, s_tgt)

    prog(0.6, "fusing")
    t0 = time.perf_counter()
    with torch.no_grad():
        if mode == "learned":
            net = eng.load_model(cdc)
            params["model"] = eng._model_meta
            z = net.forward_chunked(za, zb, s_in, s_tgt)
        else:
            z = s_in * za + s_tgt * zb
    lap("fuse", t0)
    t0 = time.perf_counter()
    with torch.no_grad():
        y = cdc.decode(z, length=n)[0, 0].cpu().numpy().astype(np.float32)
    lap("decode", t0)
    if mask_type == "none":
        y = y * 0.5  # A + B at equal loudness: keep the level of one song
    y = levels.limit_peak(y)

    owner = np.full(m_in.shape[1:], NEITHER, dtype=np.int8)
    mi, mt = m_in[0].cpu().numpy() > 0.5, m_tgt[0].cpu().numpy() > 0.5
    owner[mi & ~mt], owner[mt & ~mi], owner[mi & mt] = A, B, BOTH
    freqs = cdc.channel_frequencies()
    freqs = freqs.cpu().numpy() if freqs is not None else np.arange(owner.shape[0], dtype=np.float32)
    timings["total"] = time.perf_counter() - t_all
    timings["rtf"] = timings["total"] / max(n / sr, 1e-9)
    timings["cpu"] = time.process_time() - c_all  # CPU seconds of this process (all threads)
    timings["cpu_rtf"] = timings["cpu"] / max(n / sr, 1e-9)
    params["mashability"] = mashability(params, ka, kb, cfg)
    prog(1.0, "done")
    sources = {k: str(v) for k, v in (("a", a), ("b", b)) if isinstance(v, (str, os.PathLike))}
    return FusionResult(audio={"fusion": y}, sample_rate=sr, mode=mode, mask_type=mask_type, region_map=owner,
                        region_times=np.arange(owner.shape[1]) / fr, region_freqs=freqs,
                        segments=_segments_from_map(owner, mask_type, fr), a=ya, b=yb.astype(np.float32),
                        sources=sources, params=params, timings=timings)
