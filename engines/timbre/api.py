"""Timbre transfer API: waveform (path, bytes or array) in, the same notes on another instrument out.

    from engines.timbre import Config, Engine
    engine = Engine.load()                                    # the registered default, on device="auto"
    res = engine.run({"input": "piano.wav"}, target="violin")  # or run("piano.wav", Config.preset("refined"))
    res.audio["violin"]  # (1, T) float32 at res.sample_rate (the input's rate and length)
    res.save("out/")     # out/violin.wav, as the CLI and the studio write it

Steps: load -> mono, 22050 Hz, -20 dBFS RMS -> features (STFT+CQT) -> model (windows of 287
frames, 30% overlap, batched autoregressive decoding) -> target magnitude -> phase (the input's
as is, or refined by Griffin-Lim) -> iSTFT -> input level, input rate, input length.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engines import base
from engines import device as devices
from engines.audio import io as audio_io
from engines.audio import levels, limits, spectral

from . import features as F
from .config import PHASE_MODES, Config
from .high_band import HighBand, extend_band
from .model import OverlapAdd, TimbreTransfer, instrument_index, window_plan
from .synth_model import TimbreSynth

logger = logging.getLogger(__name__)

KIND = "timbre"
Progress = Callable[[float, str], None]
__all__ = ["Config", "PHASE_MODES", "TimbreEngine", "TimbreResult", "extend_band", "load_engine", "transfer"]


@dataclass
class TimbreResult(base.Result):
    """What :meth:`TimbreEngine.run` returns (everything the studio plots).

    Attributes:
        audio: ``{target: (1, T) float32}`` at ``sample_rate`` (the input's rate and length); :attr:`wave` is
            that array.
        sample_rate: output rate (the input's).
        timings: seconds per stage (``load``, ``analyse``, ``generate``, ``resynth``, ``total``).
        params: the config and the model that made it.
        target: ``"violin"`` or ``"piano"``.
        source_probs: the model's instrument probabilities for the input, e.g. ``{"piano": 0.97, "violin": 0.03}``.
        input_db / output_db: ``(513, N)`` dB magnitude spectrograms (22050 Hz, n_fft 1024, hop 256).
        frame_times: ``(N,)`` seconds of the spectrogram frames.
        style: ``"prototype"`` (the model's stored class style) or the style reference's name.
        model: the checkpoint's file name.
        phase: the phase mode used.
        device: where the model ran.

    :meth:`save` writes ``<target>.wav`` (16-bit), the one file the CLI and the studio write; no JSON file
    (the CLI prints :meth:`summary` as one line).
    """

    target: str = "violin"
    source_probs: dict[str, float] = field(default_factory=dict)
    input_db: np.ndarray | None = None
    output_db: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    style: str = "prototype"
    model: str = ""
    phase: str = "input"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    @property
    def wave(self) -> np.ndarray:
        """The output ``(1, T)``."""
        return self.audio[self.target]

    @property
    def seconds(self) -> float:
        """Processing time (``timings["total"]``)."""
        return float(self.timings.get("total", 0.0))

    @property
    def warning(self) -> str | None:
        """A one-line note for people (e.g. a polyphonic input given to a monophonic model), or ``None``."""
        return self.extra.get("warning")

    def info(self) -> dict[str, Any]:
        out = {"target": self.target, "input_instrument": dict(self.source_probs), "style": self.style,
               "model": self.model, "phase": self.phase, "device": self.device}
        return {**out, **{k: self.extra[k] for k in ("polyphony", "warning") if k in self.extra}}

    def summary(self, output: str | os.PathLike | None = None) -> dict[str, Any]:
        """The CLI's JSON line."""
        out = {"output": None if output is None else str(output), "target": self.target,
               "sample_rate": int(self.sample_rate), "seconds": round(self.seconds, 3), "rtf": round(self.rtf, 3),
               "model": self.model, "style": self.style, "input_instrument": dict(self.source_probs),
               "phase": self.phase, "device": self.device}
        return {**out, **{k: self.extra[k] for k in ("polyphony", "warning") if k in self.extra}}


def _like_input(y: np.ndarray, mono: np.ndarray, rate: int, high_band: HighBand | None = None,
                target: str | None = None) -> np.ndarray:
    """The model-rate output ``y`` (T',) made like the input ``mono`` (T,) at ``rate``: resampled, cut or padded to
    its length, the band above the model's filled (``high_band``'s curves for ``target`` where the model has them:
    :meth:`HighBand.apply`; else from the input: :func:`extend_band`), the same loudness as the input, under the
    common output peak. Both decoders (spectral and synthesis) finish through it."""
    if rate != F.SAMPLE_RATE:
        y = audio_io.resample(y[None], F.SAMPLE_RATE, rate)[0]
    y = np.pad(y, (0, max(0, len(mono) - len(y))))[: len(mono)]
    if rate > F.SAMPLE_RATE:
        if high_band is not None and target in high_band.gain_db:
            y = high_band.apply(y, rate, target)
        else:
            y = extend_band(y, mono, rate)
    y = (y * (levels.rms(mono) / (levels.rms(y) + 1e-12))).astype(np.float32)
    return levels.limit_peak(y, levels.OUTPUT_PEAK)


def _unit_phase(stft: torch.Tensor) -> torch.Tensor:
    """The unit-modulus phase of a complex STFT (1 where the magnitude is ~0)."""
    ph = stft / stft.abs().clamp_min(1e-8)
    return torch.where(stft.abs() > 1e-8, ph, torch.ones_like(ph))


class TimbreEngine(base.Engine):
    """A loaded model; reuse it for many transfers (the studio keeps one in its engine cache).

    Inputs: ``input`` (the recording) and optionally ``style_ref`` (a clip of the target instrument whose
    style replaces the stored one); each a path, bytes or ``(array, sr)``.
    """

    NAME = "timbre"
    INPUTS = ("input", "style_ref")
    OPTIONAL_INPUTS = ("style_ref",)
    Config = Config

    #: fraction of the model's log-magnitude floor (1e-4) kept in the output magnitude
    floor: float = 1.0
    #: clips longer than this many frames (~47.5 s) are processed in chunks of about this many frames, so
    #: memory stays bounded whatever the length (the model's windows and their overlap-add are the same)
    chunk_frames: int = 4096
    #: frames of audio context on each side of a chunk for its features (the CQT's longest filter is ~44 frames)
    feature_margin: int = 64

    def __init__(self, model: TimbreTransfer, name: str = "model", threads: int | None = None,
                 device: str | torch.device = "cpu"):
        self.device = devices.resolve(device)
        self.model = model.to(self.device).eval()
        self.name = name
        #: the synthesis model's band-replication curves (checkpoint metadata ``high_band``), if it has them
        hb = getattr(model, "checkpoint_metadata", {}).get("high_band")
        self.high_band = HighBand.from_json(hb) if hb is not None else None
        #: the thread count used when a run's config leaves ``threads`` unset
        self.threads = limits.check_threads(threads)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, device: str = "auto",
             checkpoint: str | os.PathLike | None = None, threads: int | None = None) -> "TimbreEngine":
        """From a registry name or a file (``name_or_path``, or ``checkpoint``), else the registered default,
        on ``device`` (``auto``: CUDA when available)."""
        from engines import registry
        from engines.checkpoint import load_model

        dev = devices.resolve(device)
        path = registry.resolve(checkpoint if checkpoint is not None else name_or_path, KIND)
        return cls(load_model(path, expected=TimbreTransfer), Path(path).name, threads, dev)

    # --------------------------------------------------------------------------- helpers
    def _analyse(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(raw features (2, 597, N), complex STFT (513, N))`` of a 22050 Hz mono clip (on the CPU)."""
        raw = F.features(wav)
        stft = torch.complex(raw[0, :F.N_STFT], raw[1, :F.N_STFT])
        return raw, stft

    @staticmethod
    def _prep(src, sr: int | None, what: str) -> tuple[np.ndarray, int, np.ndarray, float]:
        """-> (original mono (T,), rate, 22050 Hz -20 dBFS clip, gain). ``src``: a path, bytes, an array
        (with ``sr``) or ``(array, sr)``."""
        audio, rate = audio_io.load(src, mono=True, rate=sr, max_seconds=limits.max_seconds(), what=what)
        mono = audio[0]
        audio_io.check_not_silent(mono[None], what)
        min_s = limits.MIN_SECONDS["timbre"]
        if mono.shape[-1] < min_s * rate:
            from engines.audio.errors import TooShortError

            raise TooShortError(f"{what} is too short ({mono.shape[-1] / rate:.3f} s; at least {min_s:g} s).")
        wav = audio_io.resample(mono[None], rate, F.SAMPLE_RATE)[0] if rate != F.SAMPLE_RATE else mono
        gain = F.rms_gain(wav)
        return mono, rate, (wav * gain).astype(np.float32), gain

    def style_from(self, ref, sr: int | None = None) -> torch.Tensor:
        """Class-level style ``(S,)`` of a reference clip (path, bytes, array with ``sr`` or ``(array, sr)``)."""
        _, _, wav, _ = self._prep(ref, sr, "The style reference")
        if F.n_frames(len(wav)) <= self.chunk_frames:
            return self.model.embed_style(self._analyse(wav)[0].to(self.device))
        total, count = None, 0
        for _, wins, _ in self._window_batches(wav):  # mean over every window, a chunk at a time
            e = self.model.style_encoder(self.model.prepare(wins))[1].sum(0)
            total, count = (e if total is None else total + e), count + len(wins)
        return total / count

    # --------------------------------------------------------------------------- chunked (long clips)
    def _plan(self, n: int) -> tuple[list[int], int, int]:
        """The model's windows over ``n`` frames: ``(starts, length, hop)`` (as ``TimbreTransfer._windows``)."""
        starts, L, hop, _ = window_plan(n, self.model.window, self.model.overlap)
        return starts, L, hop

    def _raw_frames(self, wav: np.ndarray, f0: int, f1: int) -> torch.Tensor:
        """Raw features ``(2, 597, f1 - f0)`` of frames ``f0 .. f1`` of ``wav``, from those samples plus
        :attr:`feature_margin` frames of context on each side (so they match the whole clip's features)."""
        a = max(0, f0 - self.feature_margin) * F.HOP
        b = min(len(wav), (f1 + self.feature_margin) * F.HOP)
        j0 = f0 - a // F.HOP
        return F.features(wav[a:b])[..., j0:j0 + (f1 - f0)]

    def _window_batches(self, wav: np.ndarray):
        """Yield ``(starts, windows (W, 2, 597, L) on the device, L)``: the model's windows, at most
        ~:attr:`chunk_frames` frames at a time."""
        starts, L, hop = self._plan(F.n_frames(len(wav)))
        per = max(1, (self.chunk_frames - L) // hop + 1)
        for i in range(0, len(starts), per):
            st = starts[i:i + per]
            raw = self._raw_frames(wav, st[0], st[-1] + L)
            yield st, torch.stack([raw[..., s - st[0]:s - st[0] + L] for s in st]).to(self.device), L

    def _logmag_chunked(self, wav: np.ndarray, style: torch.Tensor, prog: Progress) -> torch.Tensor:
        """Like ``TimbreTransfer.transfer_logmag`` on the whole clip, a chunk of windows at a time -> ``(513, N)``
        (the same windows and the same :class:`~engines.timbre.model.OverlapAdd`)."""
        m = self.model
        n = F.n_frames(len(wav))
        starts, L, _, fade = window_plan(n, m.window, m.overlap)
        oa = OverlapAdd(n, L, fade, F.N_STFT, device=self.device)
        done = 0
        for st, wins, _ in self._window_batches(wav):
            oa.add(st, m.generate_windows(wins, style))
            done += len(st)
            prog(0.25 + 0.5 * done / len(starts), f"generated {done}/{len(starts)} windows")
        return oa.result()

    def _resynth_chunked(self, wav: np.ndarray, mag: torch.Tensor, phase: str, gl_iters: int,
                         gain: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Waveform ``(T,)`` of ``mag (513, N)`` with the input's phase (refined by Griffin-Lim), chunk by chunk
        (each with context frames that are dropped); also the input and output dB spectrograms.

        Not :func:`engines.audio.chunking.run_chunked`: its pieces map samples to samples (or samples to frames);
        this maps frames of ``mag`` together with the samples of ``wav`` to samples."""
        n, T = mag.shape[-1], len(wav)
        ctx = 64 if phase == "griffinlim" else 8
        y = np.empty(T, np.float32)
        in_db = np.empty((F.N_STFT, n), np.float32)
        out_db = np.empty((F.N_STFT, n), np.float32)
        for g0 in range(0, n, self.chunk_frames):
            g1 = min(n, g0 + self.chunk_frames)
            a, b = max(0, g0 - ctx), min(n, g1 + ctx)
            s0, s1 = a * F.HOP, (T if b == n else (b - 1) * F.HOP)
            stft = F.stft_complex(torch.from_numpy(np.ascontiguousarray(wav[s0:s1])))  # frames a .. b
            out = self._resynth(mag[:, a:b], _unit_phase(stft), phase, gl_iters, s1 - s0)
            t0, t1 = g0 * F.HOP, (T if g1 == n else g1 * F.HOP)
            y[t0:t1] = out[t0 - s0:t1 - s0].numpy()
            in_db[:, g0:g1] = (20 * torch.log10(stft[:, g0 - a:g1 - a].abs() / gain + 1e-5)).numpy()
            out_db[:, g0:g1] = (20 * torch.log10(mag[:, g0:g1] / gain + 1e-5)).numpy()
        return y / np.float32(gain), in_db, out_db

    @staticmethod
    def _resynth(mag: torch.Tensor, ph: torch.Tensor, phase: str, gl_iters: int, length: int) -> torch.Tensor:
        """``length`` samples of ``mag`` with the phase ``ph`` (as is, or refined by Griffin-Lim)."""
        if phase == "griffinlim":
            return F.griffin_lim(mag, ph, length, n_iter=gl_iters)
        return spectral.istft(mag * ph, F.N_FFT, F.HOP, length)

    # --------------------------------------------------------------------------- the contract
    @property
    def monophonic(self) -> bool:
        """True for a synthesis model (one fundamental per frame: polyphonic inputs are warned about)."""
        return isinstance(self.model, TimbreSynth)

    def _run(self, inputs: dict[str, Any], config: Config, progress: Progress | None) -> TimbreResult:
        if isinstance(self.model, TimbreSynth):
            return self._run_synth(inputs, config, progress)
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        lap = base.lap_timer(timings)

        tgt = instrument_index(config.target)
        phase, gl_iters = config.phase, config.gl_iters
        prog = progress or (lambda f, m: None)
        src, style_ref = inputs["input"], inputs.get("style_ref")
        old_threads = torch.get_num_threads()
        try:
            limits.set_threads(config.threads if config.threads is not None else self.threads)
            with torch.no_grad():
                prog(0.0, "loading")
                mono, rate, wav, gain = self._prep(src, None, "The input")
                t = lap("load", t0)
                prog(0.1, "analysing")
                chunked = F.n_frames(len(wav)) > self.chunk_frames
                if chunked:  # long clip: features a chunk at a time; classify the middle window (as classify does)
                    starts, L, _ = self._plan(F.n_frames(len(wav)))
                    mid = starts[max(0, (len(starts) - 1) // 2)]
                    probs = self.model.classify(self._raw_frames(wav, mid, mid + L).to(self.device))
                else:
                    raw, stft = self._analyse(wav)
                    raw_dev = raw.to(self.device)
                    probs = self.model.classify(raw_dev)
                if style_ref is not None:
                    style = self.style_from(style_ref)
                    style_name = Path(style_ref).name if isinstance(style_ref, (str, os.PathLike)) else "reference"
                else:
                    style, style_name = self.model.style_of(tgt), "prototype"
                t = lap("analyse", t)
                prog(0.25, f"generating {F.INSTRUMENTS[tgt]} frames")
                # the frame-by-frame decoder runs many tiny ops: one thread is faster than two
                n_thr = torch.get_num_threads()
                if self.device.type == "cpu":
                    limits.set_threads(1)
                try:
                    logmag = self._logmag_chunked(wav, style, prog) if chunked else \
                        self.model.transfer_logmag(raw_dev, style)
                finally:
                    torch.set_num_threads(n_thr)
                logmag = logmag.cpu()
                t = lap("generate", t)
                # keep (part of) the model's 1e-4 magnitude floor: a spectrum with exact zeros between
                # the partials sounds and scores worse than one with a faint noise floor
                mag = logmag.exp_().sub_((1.0 - self.floor) * F.LOG_EPS).clamp_min_(0.0)
                del logmag
                prog(0.75, "resynthesising")
                if chunked:
                    y, in_db, out_db = self._resynth_chunked(wav, mag, phase, gl_iters, gain)
                    del mag
                else:
                    out = self._resynth(mag, _unit_phase(stft), phase, gl_iters, len(wav))
                    y = out.numpy().astype(np.float32) / gain
                    in_db = (20 * torch.log10(stft.abs() / gain + 1e-5)).numpy().astype(np.float32)
                    out_db = (20 * torch.log10(mag / gain + 1e-5)).numpy().astype(np.float32)
                y = _like_input(y, mono, rate, self.high_band, F.INSTRUMENTS[tgt])
                lap("resynth", t)
        finally:
            torch.set_num_threads(old_threads)
        timings["total"] = time.perf_counter() - t0
        prog(1.0, "done")
        return TimbreResult(
            audio={F.INSTRUMENTS[tgt]: y[None]}, sample_rate=rate, timings=timings,
            params={**config.to_dict(), "model": self.name, "device": str(self.device)},
            target=F.INSTRUMENTS[tgt], source_probs={k: float(p) for k, p in zip(F.INSTRUMENTS, probs.cpu())},
            input_db=in_db, output_db=out_db, frame_times=np.arange(in_db.shape[-1]) * F.HOP / F.SAMPLE_RATE,
            style=style_name, model=self.name, phase=phase, device=str(self.device))

    # --------------------------------------------------------------------------- synthesis models
    def _controls_chunked(self, wav: np.ndarray, f0: torch.Tensor, loud: torch.Tensor, style: torch.Tensor,
                          prog: Progress) -> torch.Tensor:
        """Like ``TimbreSynth.transfer_controls`` on the whole clip, a chunk of windows at a time -> ``(N, C)``."""
        m = self.model
        n = F.n_frames(len(wav))
        starts, L, _, fade = window_plan(n, m.window, m.overlap)
        oa = None
        done = 0
        for st, wins, _ in self._window_batches(wav):
            fw = torch.stack([f0[s:s + L] for s in st]).to(self.device)
            lw = torch.stack([loud[s:s + L] for s in st]).to(self.device)
            out = m.controls_windows(wins, fw, lw, style)
            if oa is None:
                oa = OverlapAdd(n, L, fade, out.shape[-1], device=self.device)
            oa.add(st, out)
            done += len(st)
            prog(0.25 + 0.5 * done / len(starts), f"decoded {done}/{len(starts)} windows")
        return oa.result().t()

    def _run_synth(self, inputs: dict[str, Any], config: Config, progress: Progress | None) -> TimbreResult:
        """The synthesis path: pitch + loudness + content -> controls -> harmonic-plus-noise synthesiser.
        ``phase``/``gl_iters`` do not apply (the synthesiser makes its own phase)."""
        from . import pitch

        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        lap = base.lap_timer(timings)

        tgt = instrument_index(config.target)
        prog = progress or (lambda f, m: None)
        src, style_ref = inputs["input"], inputs.get("style_ref")
        old_threads = torch.get_num_threads()
        m = self.model
        try:
            limits.set_threads(config.threads if config.threads is not None else self.threads)
            with torch.no_grad():
                prog(0.0, "loading")
                mono, rate, wav, gain = self._prep(src, None, "The input")
                t = lap("load", t0)
                prog(0.1, "analysing")
                n = F.n_frames(len(wav))
                f0_np, loud_np, voiced = pitch.track(wav, n)
                poly = pitch.polyphony(wav, f0_np, voiced)
                f0, loud = torch.from_numpy(f0_np), m.dynamics(f0_np, loud_np)
                chunked = n > self.chunk_frames
                if chunked:
                    starts, L, _ = self._plan(n)
                    mid = starts[max(0, (len(starts) - 1) // 2)]
                    probs = m.classify(self._raw_frames(wav, mid, mid + L).to(self.device))
                else:
                    raw_dev = F.features(wav).to(self.device)
                    probs = m.classify(raw_dev)
                if style_ref is not None:
                    style = self.style_from(style_ref)
                    style_name = Path(style_ref).name if isinstance(style_ref, (str, os.PathLike)) else "reference"
                else:
                    style, style_name = m.style_of(tgt), "prototype"
                t = lap("analyse", t)
                prog(0.25, f"decoding {F.INSTRUMENTS[tgt]} controls")
                controls = self._controls_chunked(wav, f0, loud, style, prog) if chunked else \
                    m.transfer_controls(raw_dev, f0.to(self.device), loud.to(self.device), style)
                t = lap("generate", t)
                prog(0.75, "synthesising")
                f0_out = f0 if not config.vibrato else torch.from_numpy(
                    pitch.vibrato(f0_np, pitch.note_features(f0_np, loud_np)[:, 2], config.vibrato))
                out = m.render(controls, f0_out.to(controls.device), tgt, len(wav)).cpu()
                in_db = (20 * torch.log10(F.stft_complex(torch.from_numpy(wav)).abs() / gain + 1e-5)).numpy()
                out_db = (20 * torch.log10(F.stft_complex(out).abs() / gain + 1e-5)).numpy()
                y = out.numpy().astype(np.float32) / gain
                y = _like_input(y, mono, rate, self.high_band, F.INSTRUMENTS[tgt])
                lap("resynth", t)
        finally:
            torch.set_num_threads(old_threads)
        timings["total"] = time.perf_counter() - t0
        extra: dict[str, Any] = {"polyphony": round(poly, 3)}
        if poly > pitch.POLY_FRAMES:
            extra["warning"] = (f"The input looks polyphonic ({poly:.0%} of its loud frames hold more than one note): "
                                "this model is monophonic and plays only the strongest pitch.")
            logger.warning(extra["warning"])
        prog(1.0, "done")
        return TimbreResult(
            audio={F.INSTRUMENTS[tgt]: y[None]}, sample_rate=rate, timings=timings,
            params={**config.to_dict(), "model": self.name, "device": str(self.device)},
            target=F.INSTRUMENTS[tgt], source_probs={k: float(p) for k, p in zip(F.INSTRUMENTS, probs.cpu())},
            input_db=in_db.astype(np.float32), output_db=out_db.astype(np.float32),
            frame_times=np.arange(in_db.shape[-1]) * F.HOP / F.SAMPLE_RATE, style=style_name, model=self.name,
            phase="synthesised", device=str(self.device), extra=extra)

    def transfer(self, src, target: str | None = None, *, sr: int | None = None, style_ref=None,
                 style_ref_sr: int | None = None, phase: str | None = None, gl_iters: int | None = None,
                 config: Config | str | dict | None = None, progress: Progress | None = None) -> TimbreResult:
        """:meth:`run` with the old keyword arguments: play ``src`` (path, bytes, or a ``(T,)``/``(C, T)`` array
        with ``sr``) as ``target``; ``None`` keeps the config's value (its defaults: :class:`Config`)."""
        overrides = {k: v for k, v in (("target", target), ("phase", phase), ("gl_iters", gl_iters)) if v is not None}
        inputs = {"input": (src, sr) if isinstance(src, np.ndarray) and sr is not None else src,
                  "style_ref": (style_ref, style_ref_sr) if isinstance(style_ref, np.ndarray) and style_ref_sr
                  is not None else style_ref}
        return self.run(inputs, config, progress, **overrides)


def load_engine(model: str | None = None, checkpoint: str | os.PathLike | None = None,
                threads: int | None = None, device: str = "auto") -> TimbreEngine:
    """Load a timbre engine (registry name, checkpoint path or the default): :meth:`TimbreEngine.load`."""
    return TimbreEngine.load(model, checkpoint=checkpoint, threads=threads, device=device)


def transfer(src, target: str | None = None, *, sr: int | None = None, style_ref=None, model: str | None = None,
             checkpoint: str | os.PathLike | None = None, phase: str | None = None, gl_iters: int | None = None,
             engine: TimbreEngine | None = None, progress: Progress | None = None) -> TimbreResult:
    """One-shot :meth:`TimbreEngine.transfer` (loads the model unless ``engine`` is given)."""
    eng = engine or load_engine(model, checkpoint)
    return eng.transfer(src, target, sr=sr, style_ref=style_ref, phase=phase, gl_iters=gl_iters, progress=progress)
