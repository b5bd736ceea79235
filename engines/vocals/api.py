"""Vocal isolation API: the vocals :class:`Engine` (model loading, resampling, chunked streaming inference),
its :class:`VocalsResult`, and the folder batch.

The studio and the CLI call only this module::

    eng = Engine.load(device="auto")                    # the registered default model, loaded once
    res = eng.run("song.wav", Config(binary_mask=True))  # or eng.run((audio, sr), "hard"), progress=cb
    res.save("out/")                                     # out/vocals.wav, out/accompaniment.wav
    isolate_to_files(["a.wav", "songs/"], "out")         # out/<name>/vocals.wav ... (model loaded once)

``VocalIsolator`` is the engine class (its older name); ``VocalIsolator(model).separate(audio, sr, ...)``,
``.isolate(src, ...)``, :func:`isolate` and :func:`get_isolator` stay as thin wrappers.

Inference: every channel is resampled to 22050 Hz; the song is cut into chunks of
``chunk_seconds`` (plus a margin of context on each side, so the result equals whole-song
processing; :func:`engines.audio.chunking.run_chunked`); each chunk's frames go through the network in one
batched, time-convolutional pass (every frame still sees exactly its own 25-frame window); the mask
multiplies the mixture STFT, the iSTFT gives the vocals, resampled back to the input rate.
``accompaniment = mixture - vocals`` exactly, at the input's rate and channel count.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from engines import base
from engines import device as devices
from engines.atomic import OutputError, check_names
from engines.audio import chunking, levels, limits, spectral
from engines.audio import io as audio_io
from engines.audio.errors import AudioError, TooLongError, TooShortError
from engines.checkpoint import CheckpointError, load_model
from engines import registry
from engines.registry import resolve

from .config import Config
from .features import HParams, features
from .bandsplit import STEMS4, BandSplitSeparator, separate_stems
from .model import VocalMaskCNN

#: the two output stems, in the order they are written
STEMS = ("vocals", "accompaniment")
#: the four output stems of ``stems=4``
STEMS_4 = STEMS4
#: the vocal model classes a checkpoint may hold
MODELS = (VocalMaskCNN, BandSplitSeparator)


@dataclass
class BandSplitParams:
    """What the engine and the studio read of a band-split model (the CNN's :class:`HParams` counterpart)."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop_size: int = 512
    mask_sharpen: float = 1.0
    mask_at_eval: bool = False

    @classmethod
    def of(cls, net: BandSplitSeparator) -> "BandSplitParams":
        hp = net.hparams or {}
        return cls(net.sample_rate, net.n_fft, net.hop, float(hp.get("mask_sharpen", 1.0)),
                   bool(hp.get("mask_at_eval", False)))

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

Progress = base.Progress


@dataclass
class VocalsResult(base.Result):
    """What the vocals engine returns: ``audio = {"vocals": (C, T), "accompaniment": (C, T)}`` float32 at the
    input's ``sample_rate``, with ``mixture == vocals + accompaniment``; with ``stems=4``
    ``audio = {"vocals", "drums", "bass", "other"}`` (their sum is the mixture; :attr:`accompaniment` is then
    the sum of the last three).

    Attributes (beyond :class:`engines.base.Result`):
        mask: ``(513, M)`` float32, the channel-mean vocal mask (0..1), time-decimated for plotting.
        mask_frame_rate: columns of ``mask`` per second.
        model_name: registry name or checkpoint file used.
        binary_mask: whether the binary mask was applied.
        source: the input path, when there was one (never overwritten by :meth:`save`).
    """

    mask: np.ndarray | None = None
    mask_frame_rate: float = 0.0
    model_name: str = ""
    binary_mask: bool = False
    source: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def vocals(self) -> np.ndarray:
        return self.audio["vocals"]

    @property
    def accompaniment(self) -> np.ndarray:
        if "accompaniment" in self.audio:
            return self.audio["accompaniment"]
        rest = [v for k, v in self.audio.items() if k != "vocals"]
        out = np.array(rest[0], dtype=np.float32)
        for v in rest[1:]:
            out += v
        return out

    @property
    def stems(self) -> tuple[str, ...]:
        """The stem names, in the order they are written."""
        return tuple(self.audio)

    @property
    def channels(self) -> int:
        return int(self.vocals.shape[0])

    @property
    def duration_s(self) -> float:
        return self.duration

    @property
    def elapsed_s(self) -> float:
        """Processing seconds after loading (``timings["total"]``)."""
        return float(self.timings.get("total", 0.0))

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self.audio)

    def info(self) -> dict[str, Any]:
        return {"model": self.model_name, "binary_mask": self.binary_mask, "mask_frame_rate": self.mask_frame_rate,
                "input": self.source}

    def save(self, out_dir: str | os.PathLike, *, inputs=(), fmt: str = "wav", subtype: str = "PCM_16",
             extras: bool = True, extra: dict[str, Callable[[Path], object]] | None = None,
             protect=()) -> dict[str, Path]:
        """Write ``out_dir/vocals.<fmt>`` and ``out_dir/accompaniment.<fmt>`` (and ``extra``, e.g. the studio's
        ``mask.npy`` / ``info.json``) all-or-nothing, never over an input (``inputs`` / ``protect``, the source
        and every file this process loaded; see :class:`engines.atomic.OutputStage`).

        With a 16/24-bit subtype both stems are scaled by one common factor if either would clip
        (:func:`engines.audio.levels.limit_peak`), so that ``vocals + accompaniment`` still equals the (scaled)
        mixture. Returns ``{file name: path}`` plus ``{stem: path}`` (``vocals``, ``accompaniment`` or the
        four stems).
        """
        inputs = [*inputs, *protect, *([self.source] if self.source else [])]
        scale = 1.0
        if audio_io.SUBTYPES.get(subtype, subtype) != "FLOAT":  # one factor for all stems, applied as each is written
            scale = levels.peak_factor(*self.audio.values())
        paths = base.Result.save(self, out_dir, inputs=inputs, fmt=fmt, subtype=subtype, extras=extras, extra=extra,
                                 scale=scale)
        for stem, name in self.file_names(fmt.lower().lstrip(".")).items():
            paths[stem] = paths[name]
        return paths


def _check_audio(audio: np.ndarray, sr: int, what: str) -> np.ndarray:
    """``(C, T)`` float32 of an in-memory song, with the checks a file gets (:func:`engines.audio.io.load`)."""
    audio, _ = audio_io.load((audio, sr), min_seconds=MIN_SECONDS, max_seconds=limits.max_seconds(), what=what)
    audio_io.check_not_silent(audio, what)
    return audio


class _MaskColumns:
    """The decimated channel-mean mask, collected piece by piece while :func:`chunking.run_chunked` runs (so a
    long song never holds its full-resolution mask): the frames whose centre lies in each piece's own span,
    averaged ``decim`` at a time (the last column averages what is left, padded with its last frame)."""

    def __init__(self, spans: list[chunking.Span], n_samples: int, hop: int, n_frames: int, decim: int):
        self.spans, self.T, self.hop, self.n_frames, self.decim = iter(spans), n_samples, hop, n_frames, decim
        self.carry: np.ndarray | None = None  # mask frames not yet decimated
        self.cols: list[np.ndarray] = []

    def add(self, mask: torch.Tensor, length: int) -> None:
        """``mask (C, F, N)`` of the next piece (``length`` input samples)."""
        sp = next(self.spans)
        if sp.hi - sp.lo != length:
            raise RuntimeError("mask pieces out of step with the chunk runner")
        s, e, a, hop = sp.start, sp.end, sp.lo, self.hop
        last = e >= self.T
        # frames whose centre lies in [s, e): global frame j <-> local frame j - a // hop
        j0, j1 = -(-s // hop), self.n_frames if last else min(-(-e // hop), self.n_frames)
        m = mask[..., j0 - a // hop:j1 - a // hop].mean(0).cpu().numpy()
        carry = m if self.carry is None else np.concatenate([self.carry, m], axis=1)
        d = self.decim
        usable = carry.shape[1] if last else carry.shape[1] // d * d
        if usable:
            cols = carry[:, :usable]
            n = -(-cols.shape[1] // d)
            pad = n * d - cols.shape[1]
            if pad:
                cols = np.concatenate([cols, np.repeat(cols[:, -1:], pad, 1)], 1)
            self.cols.append(cols.reshape(cols.shape[0], n, d).mean(-1))
            carry = carry[:, usable:]
        self.carry = carry

    def result(self) -> np.ndarray:
        return np.concatenate(self.cols, axis=1).astype(np.float32)


class VocalIsolator(base.Engine):
    """The vocals engine: a loaded vocal model plus its default settings; reuse it for many songs.

    Args:
        model: registry name, checkpoint path, or ``None`` for the registered default.
        chunk_seconds: the default length of one streamed chunk (memory use grows with it, not with the song).
        device: ``auto`` / ``cpu`` / ``cuda[:N]`` (:func:`engines.device.resolve`); ``None``: the device of
            ``net`` when one is given, else ``auto``.
        net: an in-memory model instead of a checkpoint (tests, the trainer's evaluation).
        config: the default :class:`Config` of :meth:`run` (``chunk_seconds`` overrides its field).
    """

    NAME = "vocals"
    INPUTS = ("mix",)
    Config = Config

    def __init__(self, model: str | os.PathLike | None = None, *, chunk_seconds: float | None = None,
                 device: str | torch.device | None = None, net: VocalMaskCNN | None = None,
                 config: Config | None = None):
        config = config or Config()
        if chunk_seconds is not None:
            config = config.replace(chunk_seconds=chunk_seconds)
        self.config = config
        #: an ensemble entry's member engines and weights (empty for a single model); see :mod:`.ensemble`
        self.members: list[tuple[VocalIsolator, float]] = []
        if net is None and (ms := registry.members(model, KIND)):
            self._init_ensemble(model, ms, device, config)
            return
        if net is None:
            path = resolve(model, KIND)
            net = load_model(path, expected=MODELS)
            self.model_name = str(model) if model is not None and not Path(str(model)).is_file() else path.stem
            self.path: Path | None = path
        else:
            self.model_name, self.path = "in-memory", None
            if device is None:
                device = next(net.parameters()).device
        self.device = devices.resolve(device)
        self.net = net.to(self.device).eval()
        #: "cnn" (the seed's mask CNN: two stems, 22050 Hz, per channel) or "bandsplit" (full band, stereo, 4 stems)
        self.arch = "bandsplit" if isinstance(net, BandSplitSeparator) else "cnn"
        self.hp = BandSplitParams.of(net) if self.arch == "bandsplit" else HParams.from_dict(net.hparams)
        self.metadata = getattr(net, "checkpoint_metadata", {})

    def _init_ensemble(self, model, ms: list[tuple[str, float]], device, config: Config) -> None:
        """Load every member; the full-band member with the highest rate leads (its mask is the one shown, its
        rate the one reported) and runs first."""
        subs = [(VocalIsolator(name, device=device if device is not None else "auto", config=config), w)
                for name, w in ms]
        subs.sort(key=lambda m: -m[0].hp.sample_rate)  # stable: the registry's order among equal rates
        self.members = subs
        lead = subs[0][0]
        entry = registry.default(KIND) if model is None else registry.get(str(model))
        from .ensemble import COMBINE

        #: how the members' vocals are combined (the entry's ``combine``: ``mean`` or ``geometric``)
        self.combine = entry.get("combine", "mean")
        if self.combine not in COMBINE:
            raise CheckpointError(f"The ensemble '{entry['name']}' has combine = {self.combine!r}; "
                                  f"choose one of {', '.join(COMBINE)}.")
        self.model_name = entry["name"]
        self.path = None
        self.device, self.net, self.hp = lead.device, lead.net, lead.hp
        self.arch = "ensemble"
        self.metadata = {"members": {m.model_name: round(w, 4) for m, w in subs}, "combine": self.combine}

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, device: str = "auto",
             net: VocalMaskCNN | None = None, **options) -> "VocalIsolator":
        """The registered model ``name_or_path`` (``None``: the default) on ``device``; ``options`` are
        :class:`Config` fields that become this engine's defaults."""
        return cls(name_or_path, device=device, net=net, config=Config.from_dict(options))

    @property
    def chunk_seconds(self) -> float:
        return self.config.chunk_seconds

    def config_of(self, config=None, **overrides) -> Config:
        """Like :meth:`engines.base.Engine.config_of`, starting from this engine's defaults (:attr:`config`)."""
        if config is None:
            return self.config.replace(**overrides) if overrides else self.config
        if isinstance(config, str):
            return self.config.replace(**{**Config.preset_values(config), **overrides})
        return super().config_of(config, **overrides)

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
        x = torch.nn.functional.pad(feats.to(self.device), (half, half))
        if frame_by_frame:
            logits = torch.cat([self.net(x[..., i:i + self.hp.context]) for i in range(feats.shape[-1])], dim=-1)
        else:
            logits = self.net(x)
        return torch.sigmoid(logits * sharpen) if sharpen != 1.0 else torch.sigmoid(logits)

    @torch.inference_mode()
    def _separate_model_rate(self, wav: torch.Tensor, gain: float, *, binary: bool, sharpen: float,
                             chunk_seconds: float, frame_by_frame: bool,
                             progress: Progress | None) -> tuple[torch.Tensor, np.ndarray, float]:
        """Vocals of ``wav`` ``(C, T)`` at the model rate, streamed in chunks (context mode of
        :func:`engines.audio.chunking.run_chunked`); also the decimated mask."""
        hp = self.hp
        T = wav.shape[-1]
        hop = hp.hop_size
        n_frames = T // hop + 1
        chunk = max(int(chunk_seconds * hp.sample_rate) // hop, 32) * hop
        margin = (hp.context // 2 + hp.n_fft // hop + 2) * hop
        decim = max(1, int(np.ceil(n_frames / MAX_MASK_COLUMNS)))
        masks = _MaskColumns(chunking.context_spans(T, chunk, margin), T, hop, n_frames, decim)

        def piece(seg: torch.Tensor) -> torch.Tensor:
            spec = spectral.stft(seg, hp.n_fft, hop)
            feats = features(seg * gain, hp, None if hp.use_preemphasis else spec * gain)
            prob = self.predict_mask(feats, frame_by_frame=frame_by_frame, sharpen=sharpen)
            mask = (prob > 0.5).to(prob.dtype) if binary else prob
            masks.add(mask, seg.shape[-1])
            return spectral.istft(spec * mask, hp.n_fft, hop, length=seg.shape[-1])

        out = chunking.run_chunked(piece, wav.to(self.device), chunk, context=margin, progress=progress)
        return out, masks.result(), hp.sample_rate / hop / decim

    @property
    def max_stems(self) -> int:
        """Stems this model can write (2 for the CNN and for an ensemble, 4 for the band-split model)."""
        return len(self.net.stems) if self.arch == "bandsplit" else 2

    def _separate_ensemble(self, audio: np.ndarray, sr: int, *, binary: bool, sharpen: float, chunk_seconds: float,
                           progress: Progress | None, source: str | None, params: dict | None = None) -> VocalsResult:
        """Every member on the song, one after another; vocals = their weighted mean (:func:`.ensemble.blend`),
        accompaniment = mixture - vocals. Only the vocals of each member are kept while the next one runs."""
        from .ensemble import blend

        t0 = time.perf_counter()
        n = len(self.members)
        vocs, rates, timings, lead = [], [], {}, None
        for k, (iso, _) in enumerate(self.members):
            sub = None if progress is None else \
                (lambda f, m, k=k, name=iso.model_name: progress((k + f) / (n + 0.1), f"{name}: {m}"))
            r = iso._separate(audio, sr, binary=binary, sharpen=sharpen, chunk_seconds=chunk_seconds, progress=sub,
                              frame_by_frame=False, source=source, stems=2)
            vocs.append(r.audio["vocals"])
            rates.append(iso.hp.sample_rate)
            timings[f"member:{iso.model_name}"] = r.timings["total"]
            if lead is None:
                lead = (r.mask, r.mask_frame_rate)
            del r
        t1 = time.perf_counter()
        vocals = blend(vocs, [w for _, w in self.members], rates, sr, chunk_seconds, self.combine, audio)
        del vocs
        accompaniment = audio - vocals
        t2 = time.perf_counter()
        if progress is not None:
            progress(1.0, "averaged the members' vocals")
        timings.update({"separate": t1 - t0, "blend": t2 - t1, "total": t2 - t0})
        params = {**(params or {}), "model": self.model_name, "members": self.metadata["members"], "combine": self.combine,
                  "binary_mask": binary, "sharpen": sharpen, "chunk_seconds": chunk_seconds, "device": str(self.device),
                  "model_sample_rate": self.hp.sample_rate, "mask_from": self.members[0][0].model_name}
        return VocalsResult(audio={"vocals": vocals, "accompaniment": accompaniment}, sample_rate=sr, timings=timings,
                            params=params, mask=lead[0], mask_frame_rate=lead[1], model_name=self.model_name,
                            binary_mask=binary, source=source)

    def _separate_bandsplit(self, audio: np.ndarray, sr: int, *, binary: bool, sharpen: float, chunk_seconds: float,
                            progress: Progress | None, source: str | None, stems: int,
                            params: dict | None = None) -> VocalsResult:
        """The band-split model: the whole band at the model rate (44.1 kHz), stereo as stereo."""
        t0 = time.perf_counter()
        msr = self.hp.sample_rate
        wav = torch.from_numpy(audio_io.resample(audio, sr, msr))
        gain = levels.rms_gain(wav.numpy(), -20.0)
        t1 = time.perf_counter()
        T_m, hop = wav.shape[-1], self.hp.hop_size
        n_frames = T_m // hop + 1
        decim = max(1, int(np.ceil(n_frames / MAX_MASK_COLUMNS)))
        chunk = max(int(chunk_seconds * msr) // hop, 32) * hop
        from .bandsplit import margin_samples

        masks = _MaskColumns(chunking.context_spans(T_m, chunk, margin_samples(self.net)), T_m, hop, n_frames, decim)
        out = separate_stems(self.net, wav, gain, stems=stems, sharpen=sharpen, binary=binary,
                             chunk_seconds=chunk_seconds, progress=progress, on_mask=masks.add)
        del wav
        t2 = time.perf_counter()
        T = audio.shape[1]

        def back(y: torch.Tensor) -> np.ndarray:
            y = audio_io.resample(y.cpu().numpy(), msr, sr)
            y = y[:, :T] if y.shape[1] >= T else np.pad(y, ((0, 0), (0, T - y.shape[1])))
            return np.ascontiguousarray(y, dtype=np.float32)

        if stems == 2:
            vocals = back(out[0])
            result = {"vocals": vocals, "accompaniment": audio - vocals}
        else:
            names = list(self.net.stems)
            result = {n: back(out[k]) for k, n in enumerate(names[:-1])}
            # the last stem is the mixture minus the others (the stems sum to the mixture exactly), computed in the
            # buffer of the network's own last stem (a view of ``out`` at the model rate) as one running difference
            last = back(out[-1])
            np.copyto(last, audio)
            for v in result.values():
                last -= v
            result[names[-1]] = last
        t3 = time.perf_counter()
        timings = {"resample": (t1 - t0) + (t3 - t2), "separate": t2 - t1, "total": t3 - t0}
        params = {**(params or {}), "model": self.model_name, "binary_mask": binary, "sharpen": sharpen,
                  "chunk_seconds": chunk_seconds, "device": str(self.device), "model_sample_rate": msr, "stems": stems}
        return VocalsResult(audio=result, sample_rate=sr, timings=timings, params=params, mask=masks.result(),
                            mask_frame_rate=msr / hop / decim, model_name=self.model_name, binary_mask=binary,
                            source=source)

    def _separate(self, audio: np.ndarray, sr: int, *, binary: bool, sharpen: float, chunk_seconds: float,
                  progress: Progress | None, frame_by_frame: bool, source: str | None,
                  params: dict | None = None, stems: int = 2) -> VocalsResult:
        audio = _check_audio(audio, sr, f"'{source}'" if source else "The song")
        if stems > self.max_stems:
            raise ValueError(f"Invalid setting: stems = {stems}; the model '{self.model_name}' separates "
                             f"{self.max_stems} stems (a four-stem model: --model vocals-bs).")
        if frame_by_frame and self.arch != "cnn":
            raise ValueError("frame_by_frame inference exists for the mask CNN only.")
        if self.arch == "ensemble":
            return self._separate_ensemble(audio, sr, binary=binary, sharpen=sharpen, chunk_seconds=chunk_seconds,
                                           progress=progress, source=source, params=params)
        if self.arch == "bandsplit":
            return self._separate_bandsplit(audio, sr, binary=binary, sharpen=sharpen, chunk_seconds=chunk_seconds,
                                            progress=progress, source=source, stems=stems, params=params)
        t0 = time.perf_counter()
        msr = self.hp.sample_rate
        wav = torch.from_numpy(audio_io.resample(audio, sr, msr))
        gain = levels.rms_gain(wav.numpy(), self.hp.input_rms_db)
        t1 = time.perf_counter()
        voc, mask, mask_rate = self._separate_model_rate(wav, gain, binary=binary, sharpen=sharpen,
                                                          chunk_seconds=chunk_seconds, frame_by_frame=frame_by_frame,
                                                          progress=progress)
        del wav
        t2 = time.perf_counter()
        vocals = audio_io.resample(voc.cpu().numpy(), msr, sr)
        T = audio.shape[1]
        if vocals.shape[1] >= T:
            vocals = vocals[:, :T]
        else:
            vocals = np.pad(vocals, ((0, 0), (0, T - vocals.shape[1])))
        vocals = np.ascontiguousarray(vocals, dtype=np.float32)
        accompaniment = audio - vocals
        t3 = time.perf_counter()
        timings = {"resample": (t1 - t0) + (t3 - t2), "separate": t2 - t1, "total": t3 - t0}
        params = {**(params or {}), "model": self.model_name, "binary_mask": binary, "sharpen": sharpen,
                  "chunk_seconds": chunk_seconds, "device": str(self.device), "model_sample_rate": msr}
        return VocalsResult(audio={"vocals": vocals, "accompaniment": accompaniment}, sample_rate=sr,
                            timings=timings, params=params, mask=mask, mask_frame_rate=mask_rate,
                            model_name=self.model_name, binary_mask=binary, source=source)

    def _read(self, src, sr: int | None = None) -> tuple[np.ndarray, int, str | None]:
        """``(audio, rate, source path or None)`` of a path, bytes, a file object, ``(array, sr)`` or an array
        with ``sr``."""
        if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], np.ndarray):
            src, sr = src
        if isinstance(src, np.ndarray):
            if sr is None:
                raise ValueError("Pass sr= with an array input.")
            return src, int(sr), None
        audio, rate = audio_io.load(src, max_seconds=limits.max_seconds(), min_seconds=MIN_SECONDS)
        return audio, rate, os.fspath(src) if isinstance(src, (str, os.PathLike)) else None

    def _run(self, inputs: dict[str, Any], config: Config, progress: Progress | None) -> VocalsResult:
        if config.threads is not None:
            limits.set_threads(config.threads)
        audio, sr, source = self._read(inputs["mix"])
        sharpen = float(self.hp.mask_sharpen if config.sharpen is None else config.sharpen)
        if config.stems > self.max_stems:  # before reading any further
            raise ValueError(f"Invalid setting: stems = {config.stems}; the model '{self.model_name}' separates "
                             f"{self.max_stems} stems (a four-stem model: --model vocals-bs).")
        return self._separate(audio, sr, binary=bool(config.binary_mask or self.hp.mask_at_eval), sharpen=sharpen,
                              chunk_seconds=config.chunk_seconds, progress=progress, frame_by_frame=False,
                              source=source, params=config.to_dict(), stems=config.stems)

    # ------------------------------------------------------------------ older entry points (thin wrappers)
    def separate(self, audio: np.ndarray, sr: int, *, binary_mask: bool | None = None, sharpen: float | None = None,
                 progress: Progress | None = None, frame_by_frame: bool = False,
                 source: str | None = None) -> VocalsResult:
        """Isolate the vocals of ``audio`` ``(C, T)`` at rate ``sr`` with this engine's ``chunk_seconds``.

        Args:
            binary_mask: apply the thresholded mask; ``None`` uses the model's ``mask_at_eval``.
            sharpen: logit scale of the soft mask (1 = the network's probability); ``None`` uses the
                model's ``mask_sharpen`` (chosen on held-out songs, 1.0 unless stated).
            progress: ``progress(fraction, message)``.
        """
        cfg = self.config.replace(sharpen=sharpen)  # validated ("Invalid setting: sharpen ...")
        binary = self.hp.mask_at_eval if binary_mask is None else bool(binary_mask)
        sharpen = float(self.hp.mask_sharpen if cfg.sharpen is None else cfg.sharpen)
        return self._separate(audio, sr, binary=binary, sharpen=sharpen, chunk_seconds=cfg.chunk_seconds,
                              progress=progress, frame_by_frame=frame_by_frame, source=source,
                              params=cfg.replace(binary_mask=binary).to_dict())

    def isolate(self, src, sr: int | None = None, **kwargs) -> VocalsResult:
        """Like :meth:`separate`, from a path, bytes, a file object or an array (then ``sr`` is needed)."""
        self.config.replace(sharpen=kwargs.get("sharpen"))  # refused before reading the song
        audio, rate, source = self._read(src, sr)
        return self.separate(audio, rate, source=source, **kwargs)


#: the engine under its contract name (``engines.vocals.Engine``)
Engine = VocalIsolator
Result = VocalsResult

_CACHE: dict[str, VocalIsolator] = {}


def get_isolator(model: str | os.PathLike | None = None) -> VocalIsolator:
    """A cached :class:`VocalIsolator` per model, for :func:`isolate` and :func:`isolate_to_files` (the studio
    keeps its engines in its own cache)."""
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
                     progress: Progress | None = None, keep_going: bool = True,
                     config: Config | str | None = None, fmt: str = "wav") -> list[FileOutcome]:
    """Isolate several songs with one loaded model.

    One input writes ``out_dir/vocals.wav`` + ``accompaniment.wav``; several write
    ``out_dir/<stem>/...`` (stems made unique). With ``keep_going``, a bad file is reported in its
    :class:`FileOutcome` and the others still run; otherwise its error is raised. With ``config`` (a
    :class:`Config` or a preset name) each song goes through :meth:`VocalIsolator.run`; without it,
    ``binary_mask`` / ``sharpen`` are those of :meth:`VocalIsolator.separate`.
    """
    files = expand_inputs(inputs)
    from engines.cli_common import batch_folders

    out = Path(out_dir)
    targets = batch_folders(files, out)  # one folder per song (<song>/mixture.wav: its folder's name), unique
    # before any work: a usable output folder, and no output that would be an input
    iso = isolator or get_isolator(model)
    cfg = iso.config_of(config) if config is not None else None
    if cfg is not None and cfg.stems > iso.max_stems:
        raise ValueError(f"Invalid setting: stems = {cfg.stems}; the model '{iso.model_name}' separates "
                         f"{iso.max_stems} stems (a four-stem model: --model vocals-bs).")
    names = [f"{n}.{fmt}" for n in (STEMS_4 if cfg is not None and cfg.stems == 4 else STEMS)]
    check_names(out, [], files)
    for target in targets:
        check_names(target, names, files)
    outcomes = []
    for i, (f, target) in enumerate(zip(files, targets)):

        def sub(frac: float, msg: str, i=i, f=f) -> None:
            if progress is not None:
                progress((i + frac) / len(files), f"{f.name}: {msg}")

        try:
            if cfg is not None:
                res = iso.run(f, cfg, progress=sub)
            else:
                res = iso.isolate(f, binary_mask=binary_mask, sharpen=sharpen, progress=sub)
            paths = res.save(target, subtype=subtype, fmt=fmt, inputs=files)
            outcomes.append(FileOutcome(f, target, paths, None, res.duration_s, res.elapsed_s))
        except (AudioError, OutputError) as err:
            if not keep_going:
                raise
            logger.warning("%s: %s", f, err)
            outcomes.append(FileOutcome(f, target, None, str(err)))
    return outcomes
