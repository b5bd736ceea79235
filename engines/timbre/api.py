"""Timbre transfer API: waveform (path or array) in, the same notes on another instrument out.

    from engines.timbre.api import transfer
    res = transfer("piano.wav", target="violin")      # TimbreResult
    res.audio  # (1, T) float32 at res.sample_rate (the input's rate and length)

Steps: load -> mono, 22050 Hz, -20 dBFS RMS -> features (STFT+CQT) -> model (windows of 287
frames, 30% overlap, batched autoregressive decoding) -> target magnitude -> phase (the input's
phase refined by Griffin-Lim, or the input's as is) -> iSTFT -> input level, input rate, input length.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engines.audio import io as audio_io

from . import features as F
from .model import TimbreTransfer, instrument_index

logger = logging.getLogger(__name__)

KIND = "timbre"
PHASE_MODES = ("griffinlim", "input")
Progress = Callable[[float, str], None]


@dataclass
class TimbreResult:
    """What :func:`transfer` returns (everything the studio plots).

    Attributes:
        audio: ``(1, T)`` float32 output at ``sample_rate`` (the input's rate and length).
        sample_rate: output rate (the input's).
        target: ``"violin"`` or ``"piano"``.
        source_probs: the model's instrument probabilities for the input, e.g. ``{"piano": 0.97, "violin": 0.03}``.
        input_db / output_db: ``(513, N)`` dB magnitude spectrograms (22050 Hz, n_fft 1024, hop 256).
        frame_times: ``(N,)`` seconds of the spectrogram frames.
        style: ``"prototype"`` (the model's stored class style) or the style reference's name.
        model: the checkpoint's file name.
        phase: the phase mode used.
        seconds: processing time; rtf: ``seconds / duration``.
    """

    audio: np.ndarray
    sample_rate: int
    target: str
    source_probs: dict[str, float]
    input_db: np.ndarray
    output_db: np.ndarray
    frame_times: np.ndarray
    style: str
    model: str
    phase: str
    seconds: float
    rtf: float
    extra: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


class TimbreEngine:
    """A loaded model; reuse it for many transfers (the studio keeps one in its engine cache)."""

    #: fraction of the model's log-magnitude floor (1e-4) kept in the output magnitude
    floor: float = 1.0

    def __init__(self, model: TimbreTransfer, name: str = "model", threads: int | None = None):
        self.model = model.eval()
        self.name = name
        self.threads = threads

    @classmethod
    def load(cls, model: str | None = None, checkpoint: str | os.PathLike | None = None,
             threads: int | None = None) -> "TimbreEngine":
        """From a registry name (``model``), a file (``checkpoint``), or the registered default."""
        from engines import registry
        from engines.checkpoint import load_model

        path = registry.resolve(checkpoint if checkpoint is not None else model, KIND)
        return cls(load_model(path, expected=TimbreTransfer), Path(path).name, threads)

    # --------------------------------------------------------------------------- helpers
    def _analyse(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(raw features (2, 597, N), complex STFT (513, N))`` of a 22050 Hz mono clip."""
        raw = F.features(wav)
        stft = torch.complex(raw[0, :F.N_STFT], raw[1, :F.N_STFT])
        return raw, stft

    @staticmethod
    def _prep(src, sr: int | None, what: str) -> tuple[np.ndarray, int, np.ndarray, float]:
        """-> (original mono (T,), rate, 22050 Hz -20 dBFS clip, gain)."""
        if isinstance(src, np.ndarray):
            if sr is None:
                raise ValueError(f"{what}: pass sr= with a numpy array.")
            a = np.asarray(src, dtype=np.float32)
            a = a[None] if a.ndim == 1 else a
            if not np.all(np.isfinite(a)):
                from engines.audio.errors import NonFiniteError

                raise NonFiniteError(f"{what} contains NaN or infinite samples.")
            mono, rate = a.mean(0), int(sr)
        else:
            audio, rate = audio_io.load(src, mono=True)
            mono = audio[0]
        audio_io.check_not_silent(mono[None], what)
        if mono.shape[-1] < 0.05 * rate:
            from engines.audio.errors import TooShortError

            raise TooShortError(f"{what} is too short ({mono.shape[-1] / rate:.3f} s; at least 0.05 s).")
        wav = audio_io.resample(mono[None], rate, F.SAMPLE_RATE)[0] if rate != F.SAMPLE_RATE else mono
        wav, gain = F.normalize_rms(wav)
        return mono, rate, wav, gain

    def style_from(self, ref, sr: int | None = None) -> torch.Tensor:
        """Class-level style ``(S,)`` of a reference clip (path or array)."""
        _, _, wav, _ = self._prep(ref, sr, "The style reference")
        return self.model.embed_style(self._analyse(wav)[0])

    # --------------------------------------------------------------------------- transfer
    def transfer(self, src, target: str = "violin", *, sr: int | None = None, style_ref=None,
                 style_ref_sr: int | None = None, phase: str = "input", gl_iters: int = 32,
                 progress: Progress | None = None) -> TimbreResult:
        """Play ``src`` (path, bytes or ``(T,)``/``(C, T)`` array with ``sr``) as ``target``.

        Args:
            target: ``"violin"`` or ``"piano"``.
            style_ref: optional clip of the target instrument whose style replaces the stored one.
            phase: ``"input"`` (the input's phase, default) or ``"griffinlim"`` (that phase refined by ``gl_iters`` Griffin-Lim iterations).
            progress: ``progress(fraction, message)``.
        """
        t0 = time.time()
        tgt = instrument_index(target)
        if phase not in PHASE_MODES:
            raise ValueError(f"Unknown phase mode '{phase}' (choose {', '.join(PHASE_MODES)}).")
        prog = progress or (lambda f, m: None)
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                prog(0.0, "loading")
                mono, rate, wav, gain = self._prep(src, sr, "The input")
                prog(0.1, "analysing")
                raw, stft = self._analyse(wav)
                probs = self.model.classify(raw)
                if style_ref is not None:
                    style = self.style_from(style_ref, style_ref_sr)
                    style_name = Path(style_ref).name if isinstance(style_ref, (str, os.PathLike)) else "reference"
                else:
                    style, style_name = self.model.style_of(tgt), "prototype"
                prog(0.25, f"generating {F.INSTRUMENTS[tgt]} frames")
                # the frame-by-frame decoder runs many tiny ops: one thread is faster than two
                n_thr = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    logmag = self.model.transfer_logmag(raw, style)
                finally:
                    torch.set_num_threads(n_thr)
                # keep (part of) the model's 1e-4 magnitude floor: a spectrum with exact zeros between
                # the partials sounds and scores worse than one with a faint noise floor
                mag = (torch.exp(logmag) - (1.0 - self.floor) * F.LOG_EPS).clamp_min(0.0)
                prog(0.75, "resynthesising")
                ph = stft / stft.abs().clamp_min(1e-8)
                ph = torch.where(stft.abs() > 1e-8, ph, torch.ones_like(ph))
                if phase == "griffinlim":
                    out = F.griffin_lim(mag, ph, len(wav), n_iter=gl_iters)
                else:
                    from engines.audio import spectral

                    out = spectral.istft(mag * ph, F.N_FFT, F.HOP, len(wav))
                y = out.numpy().astype(np.float32) / gain
                if rate != F.SAMPLE_RATE:
                    y = audio_io.resample(y[None], F.SAMPLE_RATE, rate)[0]
                y = np.pad(y, (0, max(0, len(mono) - len(y))))[: len(mono)]
                if rate > F.SAMPLE_RATE:
                    y = extend_band(y, mono, rate)
                # same loudness as the input
                r_in, r_out = np.sqrt(np.mean(mono ** 2)), np.sqrt(np.mean(y ** 2)) + 1e-12
                y = (y * (r_in / r_out)).astype(np.float32)
                peak = float(np.abs(y).max()) if y.size else 0.0
                if peak > 0.999:
                    y *= 0.999 / peak
                in_db = (20 * torch.log10(stft.abs() / gain + 1e-5)).numpy().astype(np.float32)
                out_db = (20 * torch.log10(mag / gain + 1e-5)).numpy().astype(np.float32)
        finally:
            torch.set_num_threads(old_threads)
        secs = time.time() - t0
        prog(1.0, "done")
        dur = len(mono) / rate
        return TimbreResult(
            audio=y[None], sample_rate=rate, target=F.INSTRUMENTS[tgt],
            source_probs={k: float(p) for k, p in zip(F.INSTRUMENTS, probs)},
            input_db=in_db, output_db=out_db,
            frame_times=np.arange(in_db.shape[-1]) * F.HOP / F.SAMPLE_RATE,
            style=style_name, model=self.name, phase=phase, seconds=secs, rtf=secs / max(dur, 1e-9))


def extend_band(y: np.ndarray, x: np.ndarray, rate: int, cutoff: float = 10500.0,
                ref_band: tuple[float, float] = (8500.0, 10300.0)) -> np.ndarray:
    """Fill the band the 22050 Hz model cannot produce (above ``cutoff``) when the input rate is higher.

    The input's own high band is used, scaled per frame so that its level follows the output's level
    in ``ref_band`` relative to the input's (so it decays or sustains with the new instrument).
    ``y``, ``x``: ``(T,)`` at ``rate``; returns ``(T,)``.
    """
    from engines.audio import spectral

    n_fft = 1024 if rate <= 24000 else 2048
    hop = n_fft // 4
    Y = spectral.stft(torch.from_numpy(np.ascontiguousarray(y)), n_fft, hop)
    X = spectral.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), n_fft, hop)
    f = torch.fft.rfftfreq(n_fft, 1.0 / rate)
    band = (f >= ref_band[0]) & (f < ref_band[1])
    g = (Y.abs()[band].pow(2).mean(0) / X.abs()[band].pow(2).mean(0).clamp_min(1e-12)).sqrt().clamp(0.0, 10.0)
    hi = f >= cutoff
    fade = ((f - cutoff) / 500.0).clamp(0, 1)[:, None]  # 500 Hz cross-fade
    Y = torch.where(hi[:, None], (1 - fade) * Y + fade * X * g[None], Y)
    return spectral.istft(Y, n_fft, hop, len(y)).numpy().astype(np.float32)


def load_engine(model: str | None = None, checkpoint: str | os.PathLike | None = None,
                threads: int | None = None) -> TimbreEngine:
    """Load a timbre engine (registry name, checkpoint path or the default)."""
    return TimbreEngine.load(model, checkpoint, threads)


def transfer(src, target: str = "violin", *, sr: int | None = None, style_ref=None, model: str | None = None,
             checkpoint: str | os.PathLike | None = None, phase: str = "input", gl_iters: int = 32,
             engine: TimbreEngine | None = None, progress: Progress | None = None) -> TimbreResult:
    """One-shot :meth:`TimbreEngine.transfer` (loads the model unless ``engine`` is given)."""
    eng = engine or load_engine(model, checkpoint)
    return eng.transfer(src, target, sr=sr, style_ref=style_ref, phase=phase, gl_iters=gl_iters, progress=progress)
