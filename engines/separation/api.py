"""Query separation API: the engine contract (:class:`SeparationEngine`, :class:`SeparationResult`) and the
former functions ``separate(mix, query, ...)`` / ``write_outputs`` as thin wrappers over it.

``SeparationEngine.load(checkpoint, device=..., embedder=..., ast_model=...)`` loads the embedder and the
built-in QueryNet once (on ``device``); ``engine.run({"mix": ..., "query": ..., "negative": ..., "gt": ...},
config)`` separates one job; ``result.save(out_dir)`` writes target.wav, residual.wav, event.json, the
class-named query and the PNGs all-or-nothing. Processing happens at 16 kHz mono; the final mask is mapped
onto the mixture's own rate and channels (:func:`engines.audio.grid.to_grid`), so ``target`` and
``residual`` have the mixture's shape and ``residual == mixture - target`` exactly.
"""
from __future__ import annotations

import importlib.util
import io as _io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence, Union

import numpy as np
import torch

from engines.audio import grid
from engines.audio import io as aio
from engines.audio import limits
from engines.audio.errors import AudioError, SilentAudioError, TooLongError, TooShortError  # noqa: F401
from engines.audio.spectral import stft
from engines.base import Engine, Result

from . import detection as det
from . import presence as presmod
from . import reference as refmod
from .config import DEFAULT_AST, Config, SeparationConfig  # noqa: F401 - SeparationConfig: the former name
from .embedders import BuiltinEmbedder, Embedder, load_embedder
from .features import MODEL_HOP, MODEL_NFFT, SR, mel_fb
from .mask import apply_mask, optimise_mask

logger = logging.getLogger(__name__)

AudioIn = Union[str, os.PathLike, bytes, np.ndarray, tuple]
#: the longest mixture at import time; the limit enforced is ``limits.max_seconds()`` (env AUDIO_STUDIO_MAX_SECONDS)
MAX_MIX_SECONDS = limits.DEFAULT_MAX_SECONDS
MIN_MIX_SECONDS = limits.MIN_SECONDS["separate"]
MIN_QUERY_SECONDS = 0.25


class QueryTooLongError(AudioError):
    """The query is longer than the mixture."""


@dataclass
class SeparationResult(Result):
    """Everything the CLI writes and the studio shows: ``audio = {"target", "residual"}`` (``(C, T)`` at
    ``sample_rate``, ``residual = mixture - target``) plus the analysis below."""

    JSON_NAME: ClassVar[str | None] = "event.json"

    mixture: np.ndarray | None = None  # (C, T)
    query: np.ndarray | None = None    # (Tq,) 16 kHz mono, trimmed (the first query)
    query_trimmed: bool = False
    query_class: str = ""
    query_class_index: int = 0
    class_probs: dict = field(default_factory=dict)  # top-5 {class: prob} of the query
    embedder: str = ""
    reference: str = ""
    found: bool = False
    #: the not-found decision: ``score`` (calibrated presence probability, or None under the dB rule),
    #: ``threshold`` / ``threshold_db``, ``rule``, ``features``; None with the stitching reference
    presence: dict | None = None
    segments: list = field(default_factory=list)
    windows: dict = field(default_factory=dict)      # starts, class_scores, cosine, active, class_threshold
    mask: np.ndarray | None = None     # (F, N) final mask on the 16 kHz analysis grid
    mix_mel: np.ndarray | None = None  # (M, N) analysis mel of the mixture
    ref_mel: np.ndarray | None = None  # (M, N) reference mel
    target_mel: np.ndarray | None = None  # (M, N) mel of the estimate
    time_mask: np.ndarray | None = None   # (N,) detection time mask
    losses: list = field(default_factory=list)
    metrics: dict | None = None
    warnings: list = field(default_factory=list)
    #: the files of the last :meth:`save` (``event.json``'s ``outputs``)
    outputs: list = field(default_factory=list)

    @property
    def target(self) -> np.ndarray:
        return self.audio["target"]

    @property
    def residual(self) -> np.ndarray:
        return self.audio["residual"]

    @property
    def sr(self) -> int:
        return self.sample_rate

    def presence_text(self) -> str:
        """``presence score 0.12 (threshold 0.50)``, ``estimated target -31.2 dB (threshold -25 dB)``, or ``""``."""
        p = self.presence or {}
        if p.get("score") is not None:
            return f"presence score {p['score']:.2f} (threshold {p['threshold']:.2f})"
        if p.get("features"):
            return (f"estimated target {p['features']['est_db']:.1f} dB (threshold {p['threshold_db']:g} dB)")
        return ""

    def event(self) -> dict:
        """The ``event.json`` content (without the common keys of :meth:`to_json`)."""
        return {
            "found": self.found,
            "message": None if self.found else "not found: the query does not occur in the mixture" + (
                f" (presence score {self.presence['score']:.2f} < {self.presence['threshold']:.2f})"
                if self.presence and self.presence.get("score") is not None else ""),
            "presence": self.presence,
            "query_class": self.query_class, "query_class_index": self.query_class_index,
            "class_probs": self.class_probs, "embedder": self.embedder, "reference": self.reference,
            "segments": self.segments, "n_segments": len(self.segments),
            "windows": {k: (np.asarray(v).round(4).tolist() if isinstance(v, np.ndarray) else v)
                        for k, v in self.windows.items()},
            "sample_rate": self.sr, "channels": int(self.target.shape[0]), "duration_s": round(self.duration, 3),
            "query_trimmed": self.query_trimmed,
            "mask_activity": round(float((self.mask > 0.5).mean()), 4),
            "opt_losses": [round(v, 5) for v in self.losses],
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "params": self.params, "metrics": self.metrics, "warnings": self.warnings,
        }

    def info(self) -> dict:
        ev = self.event()
        if self.outputs:
            ev["outputs"] = list(self.outputs)
        return ev

    def save(self, out_dir: str | os.PathLike, *, inputs: Sequence[str | os.PathLike | None] = (),
             save_renamed_query: bool = True, save_trimmed_query: bool = False, save_visualizations: bool = True,
             fmt: str = "wav", subtype: str = "FLOAT", extras: bool = True,
             extra: dict[str, Callable[[Path], None]] | None = None) -> dict[str, Path]:
        """Write every output into ``out_dir`` all-or-nothing (one :class:`engines.atomic.OutputStage`).

        Files: ``target.wav``, ``residual.wav`` (float: ``residual == mixture - target`` exactly),
        ``event.json``, ``{class}.wav`` (the query at 16 kHz), ``{class}_comparison.png``,
        ``{class}_timeline.png``, ``query_trimmed.wav`` (when trimmed and asked). No output replaces an
        input (``inputs`` and every file this process loaded): a collision publishes nothing.
        Returns ``{name: path}``.
        """
        t = time.perf_counter()
        inputs = [p for p in inputs if p]
        cls = safe_name(self.query_class)
        writers: dict[str, Callable[[Path], None]] = {}
        if save_renamed_query:
            writers[f"{cls}.wav"] = lambda p: aio.save(p, self.query, SR, "PCM_16", protect=inputs)
        if save_trimmed_query and self.query_trimmed:
            writers["query_trimmed.wav"] = lambda p: aio.save(p, self.query, SR, "PCM_16", protect=inputs)
        if extras and save_visualizations and importlib.util.find_spec("matplotlib") is None:
            self.warnings.append("matplotlib is not installed: the PNGs were not written.")
            logger.warning(self.warnings[-1])
            save_visualizations = False
        if extras and save_visualizations:
            from . import plots

            # drawn before the stage opens: a failing figure publishes nothing and leaves nothing behind
            for name, draw in ((f"{cls}_comparison.png", plots.comparison_png), (f"{cls}_timeline.png",
                                                                                 plots.timeline_png)):
                buf = _io.BytesIO()
                draw(self, buf)
                writers[name] = (lambda data: lambda p: Path(p).write_bytes(data))(buf.getvalue())
        writers.update(extra or {})
        self.timings["write"] = time.perf_counter() - t
        self.outputs = list(self.file_names(fmt).values()) + list(writers) + ["event.json"]
        return super().save(out_dir, inputs=inputs, fmt=fmt, subtype=subtype, extras=False, extra=writers)


class SeparationEngine(Engine):
    """Query separation: the embedder (built-in or AST) and the built-in QueryNet, loaded once on a device."""

    NAME = "separate"
    INPUTS = ("mix", "query", "negative", "gt")
    OPTIONAL_INPUTS = ("negative", "gt")
    Config = Config

    def __init__(self, embedder: Embedder, net=None, device: str | torch.device | None = None):
        self.embedder, self.net = embedder, net
        self.device = torch.device(device) if device is not None else _device_of((embedder, net))

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, device: str = "auto", embedder: str = "auto",
             ast_model: str = DEFAULT_AST, need_net: bool = True, config: Config | None = None) -> "SeparationEngine":
        """The embedder ``embedder`` (``auto``: AST when its weights are local, else built-in) and, when
        ``need_net`` (the fitted reference), the built-in model ``name_or_path`` (registry name or path;
        ``None``: the default), on ``device``. ``config`` takes those four from a :class:`Config`."""
        from engines.device import resolve

        if config is not None:
            name_or_path, embedder, ast_model = config.checkpoint, config.embedder, config.ast_model
            need_net = config.reference == "fitted"
        dev = resolve(device)
        emb = load_embedder(embedder, ast_model=ast_model, checkpoint=name_or_path, device=dev)
        net = None
        if need_net:
            net = emb.net if isinstance(emb, BuiltinEmbedder) else BuiltinEmbedder.load(name_or_path, device=dev).net
        return cls(emb, net, dev)

    @property
    def models(self) -> tuple:
        return self.embedder, self.net

    def _run(self, inputs: dict[str, Any], config: Config, progress=None) -> SeparationResult:
        return _run_with_threads(inputs["mix"], inputs["query"], config, inputs.get("gt"), inputs.get("negative"),
                                 None, None, lambda: self.models, progress, self.device)


def get_models(embedder: str = "auto", ast_model: str = DEFAULT_AST, checkpoint: str | None = None,
               need_net: bool = True, device: str = "cpu") -> tuple[Embedder, Any]:
    """``(embedder, net)`` of :meth:`SeparationEngine.load` (for ``separate(..., models=)``; not cached:
    the studio's engine cache is the only cache)."""
    return SeparationEngine.load(checkpoint, device=device, embedder=embedder, ast_model=ast_model,
                                 need_net=need_net).models


def _load(src: AudioIn, what: str, sr: int | None = None) -> tuple[np.ndarray, int]:
    """(C, T) float32 and rate from a path, bytes, ``(audio, sr)`` tuple or array (then ``sr`` needed)."""
    return aio.load(src, rate=sr, max_seconds=limits.max_seconds(), what=what)


def _mono16(a: np.ndarray, sr: int) -> np.ndarray:
    return aio.resample(aio.to_channels(a, 1), sr, SR)[0]


def trim_query(q: np.ndarray, embedder: Embedder, max_sec: float = 3.0) -> tuple[np.ndarray, bool]:
    """Keep the ``max_sec`` span of ``q (T,)`` whose 1-s windows are closest to the clip's mean
    embedding (its most typical part). Returns ``(clip, trimmed)``."""
    n = int(max_sec * SR)
    if q.shape[-1] <= n:
        return q, False
    x = torch.from_numpy(q)
    w, starts = det.frame_windows(x, 1.0, 0.25)
    e, _ = det.embed_windows(embedder, w)
    sim = (e @ torch.nn.functional.normalize(e.mean(0), dim=0)).numpy()
    per = int(round((max_sec - 1.0) / 0.25)) + 1
    best, best_s = -1e9, 0.0
    for i in range(0, max(1, len(starts) - per + 1)):
        s = float(sim[i:i + per].mean())
        if s > best:
            best, best_s = s, starts[i]
    a = int(best_s * SR)
    return q[a:a + n], True


#: mixtures with more STFT frames than this (at their own rate) are reconstructed in chunks (bounded memory)
RECON_CHUNK_FRAMES = 8192


def _reconstruct(mix_a: np.ndarray, m: torch.Tensor, n_fft0: int, hop0: int, sr0: int,
                 chunk_frames: int | None = None) -> np.ndarray:
    """Apply the 16 kHz-grid mask ``m (F, N)`` to the mixture ``(C, T)`` at its own rate -> target ``(C, T)``.

    Long mixtures go a chunk of ``chunk_frames`` frames at a time (:func:`engines.audio.chunking.run_chunked`,
    context mode), each with context frames on both sides (dropped), so memory stays bounded and the result
    equals the one-pass STFT -> mask -> iSTFT."""
    from engines.audio.chunking import run_chunked

    chunk_frames = chunk_frames or RECON_CHUNK_FRAMES
    T = mix_a.shape[-1]
    n0 = T // hop0 + 1
    x = torch.from_numpy(np.ascontiguousarray(mix_a))
    if n0 <= chunk_frames:
        X0 = stft(x, n_fft0, hop0)
        m0 = grid.to_grid(m, n_fft0, X0.shape[-1], rate=sr0, mask_rate=SR)
        return apply_mask(X0, m0, n_fft0, hop0, T).numpy()

    def piece(xc: torch.Tensor, lo: int) -> torch.Tensor:
        a = lo // hop0  # pieces start on a frame: chunk and context are whole hops
        n = xc.shape[-1]
        mc = grid.to_grid(m, n_fft0, n0, rate=sr0, mask_rate=SR, frames=(a, a + n // hop0 + 1))
        return apply_mask(stft(xc, n_fft0, hop0), mc, n_fft0, hop0, n)

    ctx = (-(-n_fft0 // hop0) + 2) * hop0
    return run_chunked(piece, x, chunk_frames * hop0, context=ctx, with_offset=True).numpy()


def separate(mix: AudioIn, query: AudioIn | Sequence[AudioIn], *, config: Config | None = None,
             gt: AudioIn | None = None, negative: AudioIn | None = None, mix_sr: int | None = None,
             query_sr: int | None = None, models: tuple | None = None,
             progress: Callable[[float, str], None] | None = None, **overrides) -> SeparationResult:
    """Extract the sound of ``query`` from ``mix`` (a wrapper over :class:`SeparationEngine`).

    Args:
        mix: path, bytes, ``(audio, sr)`` or a numpy array (with ``mix_sr``); any rate and channels.
        query: one such clip or a list of clips (several examples of the wanted sound).
        config: a :class:`Config` (defaults: the balanced settings); ``overrides`` replace fields.
        gt: optional ground-truth target: adds ``metrics`` (SI-SDR, SDR, spectral convergence,
            cross-correlation, energy ratio, quality label, improvements over the mixture).
        negative: optional clip of a sound to keep out of the target.
        models: ``(embedder, net)`` (e.g. ``SeparationEngine.models``); otherwise loaded after the inputs
            are checked, on the CPU.
        progress: ``progress(fraction, message)``.

    Raises:
        AudioError subclasses (unreadable/silent/too short/too long input, query longer than the
        mixture), ValueError (bad settings), CheckpointError (missing model).
    """
    cfg = config or Config()
    if overrides:
        cfg = cfg.replace(**overrides)
    if models is not None:
        load_models, device = (lambda: models), _device_of(models)
    else:
        load_models, device = (lambda: get_models(cfg.embedder, cfg.ast_model, cfg.checkpoint,
                                                  need_net=cfg.reference == "fitted")), torch.device("cpu")
    return _run_with_threads(mix, query, cfg, gt, negative, mix_sr, query_sr, load_models, progress, device)


def _device_of(models: tuple) -> torch.device:
    net = models[1] if len(models) > 1 else None
    if net is None and isinstance(models[0], BuiltinEmbedder):
        net = models[0].net
    try:
        return next(net.parameters()).device if net is not None else torch.device("cpu")
    except StopIteration:
        return torch.device("cpu")


def _run_with_threads(mix, query, cfg: Config, gt, negative, mix_sr, query_sr, models, progress,
                      device) -> SeparationResult:
    prog = progress or (lambda f, m: None)
    old_threads = torch.get_num_threads()
    n = threads_to_use(cfg.threads)
    limits.set_threads(n)
    try:
        if models is None:
            raise ValueError("No models given.")
        res = _pipeline(mix, query, cfg, gt, negative, mix_sr, query_sr, models, prog, device)
        res.params["threads_used"] = n
        return res
    finally:
        limits.set_threads(old_threads)


def threads_to_use(requested: int) -> int:
    """``requested`` CPU threads, but one when the machine is already busy (load average >= cores):
    oversubscribed OpenMP threads made every stage ~10x slower on the shared 2-core machine."""
    cores = os.cpu_count() or 1
    n = max(1, min(int(requested), cores))
    try:
        if n > 1 and os.getloadavg()[0] >= cores:
            logger.info("CPU busy (load %.1f on %d cores): using 1 thread", os.getloadavg()[0], cores)
            n = 1
    except OSError:
        pass
    return n


def _pipeline(mix, query, cfg: Config, gt, negative, mix_sr, query_sr, models: Callable[[], tuple], prog,
              device=None) -> "SeparationResult":
    """The separation of one job; ``models()`` gives ``(embedder, net)`` once the inputs are checked."""
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    prog(0.0, "loading audio")
    mix_a, sr0 = _load(mix, "The mixture", mix_sr)
    dur = mix_a.shape[-1] / sr0
    if dur > limits.max_seconds():
        raise TooLongError(f"The mixture is {dur:.1f} s long; the limit is {limits.max_seconds():g} s.")
    if dur < MIN_MIX_SECONDS:
        raise TooShortError(f"The mixture is {dur:.2f} s long; at least {MIN_MIX_SECONDS:g} s is needed.")
    aio.check_not_silent(mix_a, "The mixture")
    queries_in = list(query) if isinstance(query, (list, tuple)) and not (
        len(query) == 2 and isinstance(query[1], (int, np.integer))) else [query]
    if not queries_in:
        raise ValueError("Give at least one query clip.")
    qs16 = []
    for i, qsrc in enumerate(queries_in):
        what = "The query" if len(queries_in) == 1 else f"Query {i + 1}"
        qa, qsr = _load(qsrc, what, query_sr)
        aio.check_not_silent(qa, what)
        qd = qa.shape[-1] / qsr
        if qd > dur:
            raise QueryTooLongError(f"{what} ({qd:.2f} s) is longer than the mixture ({dur:.2f} s); "
                                    "use a short clip of the wanted sound.")
        if qd < MIN_QUERY_SECONDS:
            raise TooShortError(f"{what} is {qd:.2f} s long; at least {MIN_QUERY_SECONDS:g} s is needed.")
        qs16.append(_mono16(qa, qsr))
    neg16 = None
    if negative is not None:
        na, nsr = _load(negative, "The negative query", query_sr)
        aio.check_not_silent(na, "The negative query")
        neg16 = _mono16(na, nsr)
    x16 = _mono16(mix_a, sr0)
    timings["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    prog(0.1, "loading models")
    embedder, net = models()
    if cfg.reference == "fitted" and net is None:
        raise ValueError("The fitted reference needs the built-in model; pass models=(embedder, net).")
    timings["models"] = time.perf_counter() - t
    logger.info("embedder: %s, reference: %s", embedder.name, cfg.reference)

    # ---- query: trim, embed, classify
    t = time.perf_counter()
    trimmed_any = False
    q_clips = []
    for q in qs16:
        q2, tr = trim_query(q, embedder, cfg.max_query_sec)
        trimmed_any |= tr
        q_clips.append(q2)
    embs, probs = [], []
    for q in q_clips:
        e, p = embedder.embed(torch.from_numpy(q)[None])
        embs.append(e[0])
        probs.append(p[0])
    q_emb = torch.nn.functional.normalize(torch.stack(embs).mean(0), dim=0)
    q_prob = torch.stack(probs).mean(0)
    cls_idx = int(q_prob.argmax())
    names = embedder.class_names
    cls_name = names[cls_idx] if cls_idx < len(names) else f"class_{cls_idx}"
    top = torch.topk(q_prob, min(5, q_prob.numel()))
    class_probs = {names[int(i)]: round(float(v), 4) for v, i in zip(top.values, top.indices)}
    neg_emb = None
    if neg16 is not None:
        neg_emb = embedder.embed(torch.from_numpy(neg16)[None])[0][0]
    timings["query"] = time.perf_counter() - t

    # ---- detection
    t = time.perf_counter()
    prog(0.25, "detecting the query in the mixture")
    x = torch.from_numpy(x16)
    d = det.detect(embedder, x, q_emb, cls_idx, window_sec=cfg.window_sec, hop_sec=cfg.hop_sec,
                   cls_threshold=cfg.cls_threshold, cls_percentile=cfg.cls_percentile,
                   use_cosine_gate=cfg.use_cosine_gate, cosine_threshold=cfg.cosine_threshold,
                   min_dur_ms=cfg.min_dur_ms, merge_gap_ms=cfg.merge_gap_ms,
                   segment_padding_ms=cfg.segment_padding_ms, negative_emb=neg_emb)
    timings["detection"] = time.perf_counter() - t

    # ---- analysis STFT, reference, initial mask
    t = time.perf_counter()
    prog(0.45, "building the reference")
    X = stft(x, cfg.nfft, cfg.hop)
    mag = X.abs()
    F_, N = mag.shape
    fb = mel_fb(SR, cfg.nfft, cfg.n_mels)
    mix_mel = fb @ mag
    tmask = det.time_mask(d.segments, N, cfg.hop, sharpening=cfg.time_mask_sharpening)
    q_mag = stft(torch.from_numpy(q_clips[0]), cfg.nfft, cfg.hop).abs()
    profile = refmod.query_profile(q_mag)
    est_db = None
    if cfg.reference == "fitted":
        m_net = refmod.fitted_mask(net, x, [torch.from_numpy(q) for q in q_clips],
                                   [torch.from_numpy(neg16)] if neg16 is not None else None)
        if (cfg.nfft, cfg.hop) != (MODEL_NFFT, MODEL_HOP):
            m_net = grid.to_grid(m_net, cfg.nfft, N)
        est_db = float(10 * torch.log10((m_net * mag).pow(2).sum() / mag.pow(2).sum().clamp_min(1e-12) + 1e-12))
        activity = np.power(m_net.amax(0).numpy().astype(np.float64), cfg.time_mask_sharpening)
        ref_mel = refmod.fitted_reference(m_net, mag, fb)
        init = m_net.clone()
        floor_t = torch.from_numpy(cfg.mask_floor * activity * (activity > 0.5)).float()[None]
    else:
        activity = tmask
        ref_mel = refmod.stitching_reference(fb @ q_mag, mix_mel, tmask)
        init = refmod.initial_mask(ref_mel, mix_mel, fb, profile, gamma_profile=cfg.gamma_profile,
                                   mask_floor=cfg.mask_floor, activity=tmask)
        floor_t = torch.from_numpy(cfg.mask_floor * tmask).float()[None]

    if cfg.use_embedding_masking:
        try:
            sim = embedder.frame_similarity(x, q_emb, N).numpy()
        except NotImplementedError:
            sim = np.interp(np.arange(N) * cfg.hop / SR, d.starts + cfg.window_sec / 2, d.cosine)
        wts = refmod.semantic_weights(sim, cfg.similarity_smoothing)
        prof = refmod.class_profile(refmod.class_group(cls_name), F_, query_prof=profile)
        sem = torch.from_numpy(wts).float()[None] * prof[:, None]
        init = (1 - cfg.semantic_blending) * init + cfg.semantic_blending * init * sem
    if cfg.use_spectrogram_features:
        if embedder.has_patches:
            sim2 = embedder.patch_similarity(x, q_emb, (F_, N))
            w2 = (sim2 - sim2.min()) / (sim2.max() - sim2.min()).clamp_min(1e-9)
            init = (1 - cfg.semantic_blending) * init + cfg.semantic_blending * init * w2
        else:
            warnings.append("--use_spectrogram_features needs the AST embedder (patch embeddings); skipped.")
    timings["reference"] = time.perf_counter() - t

    # ---- optimisation
    t = time.perf_counter()
    prog(0.6, "optimising the mask")
    if cfg.reference == "fitted" and not cfg.refine_net_mask:
        # the mask net's mask is the estimate as it is: on held-out corpus triples the original's
        # stages after it (optimisation towards its own masked mel, mask_floor) did not help
        # (optimisation ~0 dB, floor -0.13 dB); --refine_net_mask runs them
        m = init.clamp(0, 1)
        losses: list[float] = []
    else:
        opt = optimise_mask(init, mag, ref_mel, fb, steps=cfg.opt_steps, lr=cfg.lr, lambda_tv=cfg.lambda_tv,
                            lambda_sat=cfg.lambda_sat, floor=floor_t)
        m, losses = opt.mask, opt.losses
    if cfg.reference == "stitch":
        m = m * torch.from_numpy(np.maximum(tmask, 0)).float()[None]
    # not found: (fitted) the calibrated presence score of the mask net's estimate and the detection windows
    # (engines/separation/presence.py) below the model's threshold (--presence_threshold), or for a model without
    # a calibration, the estimated target energy below --not_found_db; (stitch) no segment
    presence = None
    if cfg.reference == "fitted" and est_db is not None:
        feats = presmod.features(m_net, mag, d.cosine, d.class_scores,
                                 _estimate_features(embedder, X, m_net, cfg, q_emb, cls_idx))
        calib = getattr(net, "presence", None)
        if calib:
            p_ = presmod.score(feats, calib)
            thr = float(cfg.presence_threshold if cfg.presence_threshold is not None else calib["threshold"])
            found = p_ >= thr
            presence = {"score": round(p_, 4), "threshold": round(thr, 4), "rule": "calibrated presence score",
                        "features": feats}
        else:
            db = float(cfg.not_found_db)
            found = est_db > db
            presence = {"score": None, "threshold_db": db, "rule": "estimated target energy (dB re mixture)",
                        "features": feats}
    else:
        found = bool(d.segments)
    if not found:
        m = torch.zeros_like(m)
        msg = "not found: the query does not occur in the mixture (target is silent, residual = mixture)"
        if presence and presence["score"] is not None:
            msg += f"; presence score {presence['score']:.2f} < {presence['threshold']:.2f}"
        warnings.append(msg)
        logger.warning(msg)
    if not cfg.soft_masking:
        m = (m >= 0.5).float()
    timings["optimise"] = time.perf_counter() - t

    # ---- reconstruction at the mixture's rate and channels
    t = time.perf_counter()
    prog(0.85, "reconstructing")
    if sr0 == SR and mix_a.shape[0] == 1 and found:
        tgt = apply_mask(X, m, cfg.nfft, cfg.hop, x.shape[-1]).numpy()[None]
    elif found:
        n_fft0 = max(64, int(round(cfg.nfft * sr0 / SR / 2)) * 2)
        hop0 = max(1, int(round(cfg.hop * sr0 / SR)))
        tgt = _reconstruct(mix_a, m, n_fft0, hop0, sr0)
    else:
        tgt = np.zeros_like(mix_a)
    tgt = tgt.astype(np.float32)
    residual = (mix_a - tgt).astype(np.float32)
    target_mel = (fb @ (m * mag)).numpy()
    timings["reconstruct"] = time.perf_counter() - t

    metrics = None
    if gt is not None:
        t = time.perf_counter()
        ga, gsr = _load(gt, "The ground truth", mix_sr)
        g = aio.resample(aio.to_channels(ga, tgt.shape[0]), gsr, sr0)
        metrics = {k: (round(v, 4) if isinstance(v, float) else v)
                   for k, v in _evaluate(g, tgt, mix_a).items()}
        timings["metrics"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    prog(1.0, "done")
    params = cfg.to_dict()
    params["n_queries"] = len(q_clips)
    params["negative_query"] = negative is not None
    params["device"] = str(device) if device is not None else "cpu"
    return SeparationResult(
        audio={"target": tgt, "residual": residual}, sample_rate=sr0, mixture=mix_a, query=q_clips[0],
        query_trimmed=trimmed_any,
        query_class=cls_name, query_class_index=cls_idx, class_probs=class_probs, embedder=embedder.name,
        reference=cfg.reference, found=found, presence=presence, segments=d.segments,
        windows={"starts": d.starts, "class_scores": d.class_scores, "cosine": d.cosine,
                 "active": d.active.astype(int), "class_threshold": round(d.class_threshold, 5),
                 "window_sec": cfg.window_sec, "estimated_target_db": None if est_db is None else round(est_db, 2)},
        mask=m.numpy(), mix_mel=mix_mel.numpy(), ref_mel=ref_mel.numpy(), target_mel=target_mel,
        time_mask=tmask, losses=losses, timings=timings, params=params, metrics=metrics, warnings=warnings)


def _estimate_features(embedder, X: torch.Tensor, m: torch.Tensor, cfg: Config, q_emb: torch.Tensor,
                       cls_idx: int) -> dict:
    """The embedder's view of the mask net's estimate ``m * X`` (16 kHz) in the detection windows
    (:func:`engines.separation.presence.estimate_features`)."""
    est = apply_mask(X, m, cfg.nfft, cfg.hop, (X.shape[-1] - 1) * cfg.hop)
    w, _ = det.frame_windows(est, cfg.window_sec, cfg.hop_sec)
    e, p = det.embed_windows(embedder, w)
    return presmod.estimate_features((e @ q_emb.reshape(-1)).numpy(), p[:, cls_idx].numpy(),
                                     w.pow(2).sum(-1).numpy())


def _evaluate(gt: np.ndarray, est: np.ndarray, mix: np.ndarray) -> dict:
    from engines.audio.metrics import evaluate

    n = min(gt.shape[-1], est.shape[-1])
    return evaluate(gt[..., :n].mean(0), est[..., :n].mean(0), mix[..., :n].mean(0))


def safe_name(name: str) -> str:
    """The class name as a file name (lower case; :func:`engines.atomic.safe_name`)."""
    from engines.atomic import safe_name as _safe

    return _safe(name.strip().lower().replace(".", "_"), "query")


def write_outputs(result: SeparationResult, out_dir: str | os.PathLike, *, save_renamed_query: bool = True,
                  save_trimmed_query: bool = False, save_visualizations: bool = True,
                  protect: Sequence[str | os.PathLike] = ()) -> dict[str, Path]:
    """The former writer: :meth:`SeparationResult.save` (``protect``: the job's input files)."""
    return result.save(out_dir, inputs=protect, save_renamed_query=save_renamed_query,
                       save_trimmed_query=save_trimmed_query, save_visualizations=save_visualizations)


__all__ = ["Config", "SeparationConfig", "SeparationEngine", "SeparationResult", "QueryTooLongError", "separate",
           "write_outputs", "get_models", "trim_query", "safe_name"]
