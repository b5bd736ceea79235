"""Vocal isolation API: model loading, resampling, chunked streaming inference, batch/folder use.

The studio and the CLI call only this module::

    iso = VocalIsolator()                        # the registered default model, loaded once
    res = iso.isolate("song.wav", progress=cb)   # -> VocalsResult
    res.save("out/")                             # out/vocals.wav, out/accompaniment.wav
    isolate_to_files(["a.wav", "songs/"], "out") # out/<name>/vocals.wav ... (model loaded once)

Inference: every channel is resampled to 22050 Hz; the song is cut into chunks of
``chunk_seconds`` (plus a margin of context on each side, so the result equals whole-song
processing); each chunk's frames go through the network in one batched, time-convolutional pass
(every frame still sees exactly its own 25-frame window); the mask multiplies the mixture STFT,
the iSTFT gives the vocals, resampled back to the input rate. ``accompaniment = mixture - vocals``
exactly, at the input's rate and channel count.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from engines.atomic import OutputError, OutputStage, check_names, safe_name
from engines.audio import io as audio_io
from engines.audio import limits
from engines.audio import spectral
from engines.audio.errors import AudioError, TooLongError, TooShortError
from engines.checkpoint import load_model
from engines.registry import resolve

from .features import HParams, features, rms_gain
from .model import VocalMaskCNN

#: the two output stems, in the order they are written
STEMS = ("vocals", "accompaniment")

logger = logging.getLogger(__name__)

KIND = "vocals"
#: Shortest song accepted, in seconds.
MIN_SECONDS = limits.MIN_SECONDS["vocals"]
#: Longest song accepted, in seconds (memory stays flat in the network; the waveforms are held).
#: The limit enforced is ``limits.max_seconds()`` (``$AUDIO_STUDIO_MAX_SECONDS``, the same for every engine).
MAX_SECONDS = limits.DEFAULT_MAX_SECONDS
#: Most mask columns kept in a result for plotting.
MAX_MASK_COLUMNS = 1500
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".m4a", ".opus"}

Progress = Callable[[float, str], None]


@dataclass
class VocalsResult:
    """What :meth:`VocalIsolator.separate` returns.

    Attributes:
        vocals / accompaniment: ``(C, T)`` float32 at ``sample_rate``; ``mixture == vocals + accompaniment``.
        sample_rate: the input's rate.
        mask: ``(513, M)`` float32, the channel-mean vocal mask (0..1), time-decimated for plotting.
        mask_frame_rate: columns of ``mask`` per second.
        model_name: registry name or checkpoint file used.
        binary_mask: whether the binary mask was applied.
        duration_s / elapsed_s / rtf: song length, processing time (after loading) and their ratio.
        source: the input path, when there was one.
    """

    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int
    mask: np.ndarray
    mask_frame_rate: float
    model_name: str
    binary_mask: bool
    duration_s: float
    elapsed_s: float
    rtf: float
    source: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.vocals.shape[0])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"vocals": self.vocals, "accompaniment": self.accompaniment}

    def save(self, out_dir: str | os.PathLike, *, subtype: str = "PCM_16", fmt: str = "wav",
             protect: Iterable[str | os.PathLike] = (),
             extra: dict[str, Callable[[Path], object]] | None = None) -> dict[str, Path]:
        """Write ``out_dir/vocals.<fmt>`` and ``out_dir/accompaniment.<fmt>`` all-or-nothing, never over an
        input (``protect``, the source and every file this process loaded; see :class:`engines.atomic.OutputStage`).
        ``extra``: more files published with the stems, ``{name: writer(path)}`` (the studio's mask and info).

        With a 16/24-bit subtype both stems are scaled by one common factor if either would clip,
        so that ``vocals + accompaniment`` still equals the (scaled) mixture.
        """
        out = Path(out_dir)
        protect = list(protect) + ([self.source] if self.source else [])
        v, a = self.vocals, self.accompaniment
        if subtype.upper() not in ("FLOAT",):
            peak = max(float(np.abs(v).max(initial=0)), float(np.abs(a).max(initial=0)))
            if peak > 0.999:
                logger.info("Stems would clip: both scaled by %.3f", 0.999 / peak)
                v, a = v * (0.999 / peak), a * (0.999 / peak)
        paths = {}
        extra = extra or {}
        with OutputStage(out, inputs=protect, names=[*(f"{n}.{fmt}" for n in STEMS), *extra]) as stage:
            for name, audio in (("vocals", v), ("accompaniment", a)):
                audio_io.save(stage.path(f"{name}.{fmt}"), audio, self.sample_rate, subtype, clip_protect=False)
                paths[name] = stage.final(f"{name}.{fmt}")
            for name, write in extra.items():
                write(stage.path(name))
                paths[name] = stage.final(name)
        return paths


def _check_audio(audio: np.ndarray, sr: int, what: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise AudioError(f"{what} must be shaped (channels, samples), got {audio.shape}.")
    if audio.shape[0] > audio_io.MAX_CHANNELS and audio.shape[1] <= audio_io.MAX_CHANNELS:
        audio = audio.T.copy()  # (T, C) given
    if not np.isfinite(audio).all():
        raise AudioError(f"{what} contains NaN or infinite samples.")
    if sr <= 0:
        raise AudioError(f"Invalid sample rate {sr}.")
    if audio.shape[1] / sr < MIN_SECONDS:
        raise TooShortError(f"{what} is {audio.shape[1] / sr:.2f} s long; at least {MIN_SECONDS:g} s is needed.")
    if audio.shape[1] / sr > limits.max_seconds():
        raise TooLongError(f"{what} is {audio.shape[1] / sr:.1f} s long; the limit is {limits.max_seconds():g} s.")
    audio_io.check_not_silent(audio, what)
    return audio


class VocalIsolator:
    """A loaded vocal model plus the inference settings; reuse it for many songs.

    Args:
        model: registry name, checkpoint path, or ``None`` for the registered default.
        chunk_seconds: length of one streamed chunk (memory use grows with it, not with the song).
        device: torch device (CPU by default).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, chunk_seconds: float = 30.0,
                 device: str = "cpu", net: VocalMaskCNN | None = None):
        if net is None:
            path = resolve(model, KIND)
            net = load_model(path, expected=VocalMaskCNN)
            self.model_name = str(model) if model is not None and not Path(str(model)).is_file() else path.stem
            self.path: Path | None = path
        else:
            self.model_name, self.path = "in-memory", None
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.hp = HParams.from_dict(net.hparams)
        limits.check("vocals", chunk_seconds=chunk_seconds)
        self.chunk_seconds = float(chunk_seconds)
        self.metadata = getattr(net, "checkpoint_metadata", {})

    # ------------------------------------------------------------------ core
    @torch.inference_mode()
    def predict_mask(self, feats: torch.Tensor, *, frame_by_frame: bool = False, sharpen: float = 1.0) -> torch.Tensor:
        """Vocal probability for every frame of ``feats``.

        Args:
            feats: normalised features ``(B, F, N)`` (edges are padded with zeros = silence).
            frame_by_frame: run one network call per frame on its own 25-frame window (the
                original's inference; slow, for comparison only).
            sharpen: multiplies the logits before the sigmoid (> 1 pushes the mask to 0/1).

        Returns:
            ``(B, F, N)`` probabilities in 0..1.
        """
        half = self.hp.context // 2
        x = torch.nn.functional.pad(feats, (half, half))
        if frame_by_frame:
            logits = torch.cat([self.net(x[..., i:i + self.hp.context]) for i in range(feats.shape[-1])], dim=-1)
        else:
            logits = self.net(x)
        return torch.sigmoid(logits * sharpen) if sharpen != 1.0 else torch.sigmoid(logits)

    def _separate_model_rate(self, wav: torch.Tensor, gain: float, *, binary: bool, sharpen: float,
                             frame_by_frame: bool, progress: Progress | None) -> tuple[torch.Tensor, np.ndarray, float]:
        """Vocals of ``wav`` ``(C, T)`` at the model rate, streamed in chunks; also the decimated mask."""
        hp = self.hp
        C, T = wav.shape
        hop = hp.hop_size
        n_frames = T // hop + 1
        chunk = max(int(self.chunk_seconds * hp.sample_rate) // hop, 32) * hop
        margin = (hp.context // 2 + hp.n_fft // hop + 2) * hop
        decim = max(1, int(np.ceil(n_frames / MAX_MASK_COLUMNS)))
        out = torch.empty_like(wav)
        mask_cols: list[np.ndarray] = []
        carry = None  # mask frames not yet decimated
        starts = list(range(0, T, chunk))
        for k, s in enumerate(starts):
            e = min(s + chunk, T)
            a, b = max(s - margin, 0), min(e + margin, T)
            seg = wav[:, a:b]
            spec = spectral.stft(seg, hp.n_fft, hop)
            feats = features(seg * gain, hp, None if hp.use_preemphasis else spec * gain)
            prob = self.predict_mask(feats, frame_by_frame=frame_by_frame, sharpen=sharpen)
            mask = (prob > 0.5).to(prob.dtype) if binary else prob
            est = spectral.istft(spec * mask, hp.n_fft, hop, length=b - a)
            out[:, s:e] = est[:, s - a:e - a]
            # frames whose centre lies in [s, e): global frame j <-> local frame j - a // hop
            j0, j1 = -(-s // hop), min(-(-e // hop), n_frames) if e < T else n_frames
            m = mask[..., j0 - a // hop:j1 - a // hop].mean(0).numpy()
            carry = m if carry is None else np.concatenate([carry, m], axis=1)
            usable = carry.shape[1] // decim * decim if e < T else carry.shape[1]
            if usable:
                cols = carry[:, :usable]
                n = -(-cols.shape[1] // decim)
                pad = n * decim - cols.shape[1]
                if pad:
                    cols = np.concatenate([cols, np.repeat(cols[:, -1:], pad, 1)], 1)
                mask_cols.append(cols.reshape(cols.shape[0], n, decim).mean(-1))
                carry = carry[:, usable:]
            if progress is not None:
                progress((k + 1) / len(starts), f"chunk {k + 1}/{len(starts)}")
        return out, np.concatenate(mask_cols, axis=1).astype(np.float32), hp.sample_rate / hop / decim

    def separate(self, audio: np.ndarray, sr: int, *, binary_mask: bool | None = None, sharpen: float | None = None,
                 progress: Progress | None = None, frame_by_frame: bool = False,
                 source: str | None = None) -> VocalsResult:
        """Isolate the vocals of ``audio`` ``(C, T)`` at rate ``sr``.

        Args:
            binary_mask: apply the thresholded mask; ``None`` uses the model's ``mask_at_eval``.
            sharpen: logit scale of the soft mask (1 = the network's probability); ``None`` uses the
                model's ``mask_sharpen`` (chosen on held-out songs, 1.0 unless stated).
            progress: ``progress(fraction, message)``.
        """
        limits.check("vocals", sharpen=sharpen)
        audio = _check_audio(audio, sr, f"'{source}'" if source else "The song")
        binary = self.hp.mask_at_eval if binary_mask is None else bool(binary_mask)
        sharpen = float(self.hp.mask_sharpen if sharpen is None else sharpen)
        t0 = time.perf_counter()
        msr = self.hp.sample_rate
        wav = torch.from_numpy(audio_io.resample(audio, sr, msr))
        gain = rms_gain(wav.numpy(), self.hp.input_rms_db)
        voc, mask, mask_rate = self._separate_model_rate(wav, gain, binary=binary, sharpen=sharpen,
                                                          frame_by_frame=frame_by_frame, progress=progress)
        del wav
        vocals = audio_io.resample(voc.numpy(), msr, sr)
        T = audio.shape[1]
        if vocals.shape[1] >= T:
            vocals = vocals[:, :T]
        else:
            vocals = np.pad(vocals, ((0, 0), (0, T - vocals.shape[1])))
        vocals = np.ascontiguousarray(vocals, dtype=np.float32)
        accompaniment = audio - vocals
        elapsed = time.perf_counter() - t0
        dur = T / sr
        return VocalsResult(vocals=vocals, accompaniment=accompaniment, sample_rate=sr, mask=mask,
                            mask_frame_rate=mask_rate, model_name=self.model_name, binary_mask=binary,
                            duration_s=dur, elapsed_s=elapsed, rtf=elapsed / dur, source=source)

    def isolate(self, src, sr: int | None = None, **kwargs) -> VocalsResult:
        """Like :meth:`separate`, from a path, bytes, a file object or an array (then ``sr`` is needed)."""
        limits.check("vocals", sharpen=kwargs.get("sharpen"))  # before reading the song
        if isinstance(src, np.ndarray):
            if sr is None:
                raise ValueError("Pass sr= with an array input.")
            return self.separate(src, sr, **kwargs)
        audio, rate = audio_io.load(src, max_seconds=limits.max_seconds(), min_seconds=MIN_SECONDS)
        source = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        return self.separate(audio, rate, source=source, **kwargs)


_CACHE: dict[str, VocalIsolator] = {}


def get_isolator(model: str | os.PathLike | None = None) -> VocalIsolator:
    """A cached :class:`VocalIsolator` per model (the studio can also keep its own)."""
    key = os.fspath(model) if model is not None else "<default>"
    if key not in _CACHE:
        _CACHE[key] = VocalIsolator(model)
    return _CACHE[key]


def isolate(src, sr: int | None = None, *, model: str | os.PathLike | None = None,
            binary_mask: bool | None = None, sharpen: float | None = None, progress: Progress | None = None) -> VocalsResult:
    """One-call isolation: ``isolate("song.wav").vocals``; the model is cached between calls."""
    return get_isolator(model).isolate(src, sr, binary_mask=binary_mask, sharpen=sharpen, progress=progress)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, folders expanded to their audio files (sorted, not recursive)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise AudioError(f"The folder '{p}' holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}).")
            out.extend(files)
        else:
            out.append(p)
    if not out:
        raise AudioError("No input songs were given.")
    return out


@dataclass
class FileOutcome:
    """One input of :func:`isolate_to_files`: where its stems went, or why it failed."""

    input: Path
    out_dir: Path
    paths: dict[str, Path] | None = None
    error: str | None = None
    duration_s: float = 0.0
    elapsed_s: float = 0.0


def isolate_to_files(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                     model: str | os.PathLike | None = None, isolator: VocalIsolator | None = None,
                     binary_mask: bool | None = None, sharpen: float | None = None, subtype: str = "PCM_16",
                     progress: Progress | None = None, keep_going: bool = True) -> list[FileOutcome]:
    """Isolate several songs with one loaded model.

    One input writes ``out_dir/vocals.wav`` + ``accompaniment.wav``; several write
    ``out_dir/<stem>/...`` (stems made unique). With ``keep_going``, a bad file is reported in its
    :class:`FileOutcome` and the others still run; otherwise its error is raised.
    """
    files = expand_inputs(inputs)
    out = Path(out_dir)
    used: dict[str, int] = {}
    stems = [f.stem for f in files]
    targets = []
    for f in files:
        if len(files) == 1:
            targets.append(out)
        else:
            # songs stored as <song>/mixture.wav are named after their folder
            name = safe_name(f.parent.name if stems.count(f.stem) > 1 and f.parent.name else f.stem, "song")
            used[name] = used.get(name, 0) + 1
            targets.append(out / (name if used[name] == 1 else f"{name}_{used[name]}"))
    # before any work: a usable output folder, and no output that would be an input
    names = [f"{n}.wav" for n in STEMS]
    check_names(out, [], files)
    for target in targets:
        check_names(target, names, files)
    iso = isolator or get_isolator(model)
    outcomes = []
    for i, (f, target) in enumerate(zip(files, targets)):

        def sub(frac: float, msg: str, i=i, f=f) -> None:
            if progress is not None:
                progress((i + frac) / len(files), f"{f.name}: {msg}")

        try:
            res = iso.isolate(f, binary_mask=binary_mask, sharpen=sharpen, progress=sub)
            paths = res.save(target, subtype=subtype, protect=files)
            outcomes.append(FileOutcome(f, target, paths, None, res.duration_s, res.elapsed_s))
        except (AudioError, OutputError) as err:
            if not keep_going:
                raise
            logger.warning("%s: %s", f, err)
            outcomes.append(FileOutcome(f, target, None, str(err)))
    return outcomes
