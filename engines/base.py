"""The contract every engine implements: ``Engine.load(...)`` -> ``engine.run(inputs, config)`` -> ``Result``.

* :class:`Result` -- named audio ``(C, T)`` float32 at one ``sample_rate``, ``timings`` (seconds per stage,
  ``"total"`` included), ``params`` (the config and model that made it), engine-specific JSON
  (:meth:`Result.info`) and extra files (:meth:`Result.extra_files`). :meth:`Result.save` writes all of
  it through one :class:`engines.atomic.OutputStage`: all files or none, never over an input.
* :class:`Engine` -- ``load(name_or_path=None, *, device="auto", **options)`` builds an engine once (the
  model, on its device); ``run(inputs, config=None, progress=None)`` processes one job. ``inputs`` is a
  mapping of the engine's :attr:`Engine.INPUTS` names to sources (a path, bytes or ``(array, sr)``), or one
  source for the first input. The CLI holds one engine per run; the studio's engine cache is the only cache.

Adding a fifth engine: see docs/DEVELOPING.md.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import numpy as np

#: a progress callback: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]

#: audio file formats :meth:`Result.save` writes: suffix -> sample formats allowed (MP3 stores no sample
#: format: it is lossy, decoded as float; its quality is the bitrate)
FORMATS = {"wav": ("PCM_16", "PCM_24", "FLOAT"), "flac": ("PCM_16", "PCM_24"), "mp3": ()}
#: MP3 bitrates offered (kbps, constant bitrate)
MP3_BITRATES = (64, 96, 128, 160, 192, 256, 320)
#: sample rates an MP3 file can hold (MPEG-1, -2 and -2.5)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _input_subtype(subtype: str | None) -> str | None:
    """The output sample format that keeps an input's bit depth (``None``: unknown)."""
    if subtype is None:
        return None
    if subtype in ("PCM_24",):
        return "PCM_24"
    if subtype in ("PCM_32", "FLOAT", "DOUBLE"):
        return "FLOAT"
    return "PCM_16"  # 8/16-bit PCM and every lossy input (MP3, Vorbis, Opus, ...)


def probe_format(src: Any) -> dict[str, Any] | None:
    """``{"sample_rate", "channels", "subtype"}`` of an input (a path, bytes or ``(array, rate)``), read from
    its header without decoding; ``None`` when it cannot be told. Arrays have no bit depth (``subtype`` None)."""
    import io as _io

    import soundfile as sf

    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[1], (int, np.integer)):
        a = np.asarray(src[0])
        if a.ndim == 1:
            channels = 1
        elif a.ndim == 2:
            channels = min(a.shape)
        else:
            return None
        return {"sample_rate": int(src[1]), "channels": int(channels), "subtype": None}
    try:
        if isinstance(src, (bytes, bytearray)):
            i = sf.info(_io.BytesIO(bytes(src)))
        elif isinstance(src, (str, os.PathLike)):
            i = sf.info(os.fspath(src))
        else:
            return None
    except Exception:  # noqa: BLE001 - a header soundfile cannot read: unknown
        return None
    return {"sample_rate": int(i.samplerate), "channels": int(i.channels), "subtype": str(i.subtype)}


class OutputFormat(str):
    """How :meth:`Result.save` writes audio: the container (the string value itself: ``"wav"``, ``"flac"``,
    ``"mp3"``, so it can go wherever a plain format name goes, e.g. ``file_names(fmt)``) plus

    * ``subtype``: ``"auto"`` (the input's bit depth: 16 -> PCM_16, 24 -> PCM_24, 32-bit/float -> FLOAT, lossy
      -> PCM_16; never below the engine's own default, e.g. separation's float that keeps ``target + residual
      == mixture`` exact), ``PCM_16``, ``PCM_24`` or ``FLOAT``;
    * ``bitrate``: MP3 kbps (constant bitrate);
    * ``sample_rate`` / ``channels``: ``None`` = the input's (resampled with soxr / mixed or repeated when the
      engine's output differs), a number = that; ``0`` = keep the engine's output as it is;
    * ``like``: the input to follow (a path or ``(array, rate)``); default: the main input of the run
      (recorded by :meth:`Engine.run` in ``Result.input_format``).
    """

    def __new__(cls, fmt: str = "wav", subtype: str = "auto", bitrate: int = 192, sample_rate: int | None = None,
                channels: int | None = None, like: Any = None):
        name = str(fmt or "wav").lower().lstrip(".")
        if name not in FORMATS:
            raise ValueError(f"Unknown output format {fmt!r}: choose {', '.join(FORMATS)}.")
        self = super().__new__(cls, name)
        sub = "auto" if subtype in (None, "", "auto") else _SUBTYPE_NAMES.get(str(subtype), str(subtype))
        if sub != "auto" and sub not in ("PCM_16", "PCM_24", "FLOAT"):
            raise ValueError(f"Unknown sample format {subtype!r}: choose auto, 16, 24 or float.")
        if name != "mp3" and sub != "auto" and sub not in FORMATS[name]:
            raise ValueError(f"{name.upper()} cannot store {sub} samples: choose {', '.join(FORMATS[name])}.")
        b = int(bitrate)
        if not 32 <= b <= 320:
            raise ValueError(f"Invalid MP3 bitrate {bitrate}: choose 32 to 320 kbps.")
        for what, v, lo, hi in (("sample rate", sample_rate, 8000, 384000), ("channel count", channels, 1, 8)):
            if v is not None and int(v) != 0 and not lo <= int(v) <= hi:
                raise ValueError(f"Invalid output {what} {v}: choose {lo} to {hi} (or leave it to follow the input).")
        self.subtype, self.bitrate = sub, b
        self.sample_rate = None if sample_rate is None else int(sample_rate)
        self.channels = None if channels is None else int(channels)
        self.like = like
        return self

    @classmethod
    def of(cls, fmt: "str | OutputFormat | None", subtype: str | None = None) -> "OutputFormat":
        """``fmt`` as an :class:`OutputFormat` (a plain name with ``subtype``: the former ``save`` arguments,
        written at the engine's own rate and channels)."""
        if isinstance(fmt, OutputFormat):
            return fmt
        return cls(fmt or "wav", subtype or "PCM_16", sample_rate=0, channels=0)

    def resolve(self, result: "Result", fallback_subtype: str) -> dict[str, Any]:
        """``{"format", "subtype", "bitrate", "sample_rate", "channels"}`` this result is written with."""
        like = probe_format(self.like) if self.like is not None else getattr(result, "input_format", None)
        like = like or {}
        first = next(iter(result.audio.values()), np.zeros((1, 0), np.float32))
        rate = self.sample_rate if self.sample_rate else (like.get("sample_rate") if self.sample_rate is None else None)
        rate = int(rate or result.sample_rate)
        chans = self.channels if self.channels else (like.get("channels") if self.channels is None else None)
        chans = int(chans or first.shape[0])
        sub = self.subtype
        if sub == "auto":  # the input's bit depth, never below the engine's own default
            own = _SUBTYPE_NAMES.get(fallback_subtype, fallback_subtype)
            sub = max(_input_subtype(like.get("subtype")) or own, own, key=_DEPTH.get)
        bitrate = None
        if self == "mp3":
            if rate not in MP3_RATES:
                rate = 48000 if rate > 48000 else min(r for r in MP3_RATES if r >= rate)
            chans = min(chans, 2)
            bitrate = min(self.bitrate, 64 if rate < 16000 else 160 if rate < 32000 else 320)
            sub = None
        elif sub not in FORMATS[str(self)]:
            sub = "PCM_24"  # FLAC of a float input: the deepest it stores
        return {"format": str(self), "subtype": sub, "bitrate": bitrate, "sample_rate": rate, "channels": chans}


_DEPTH = {"PCM_16": 16, "PCM_24": 24, "FLOAT": 32}
_SUBTYPE_NAMES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT", "FLOAT": "FLOAT", "PCM_16": "PCM_16",
                  "PCM_24": "PCM_24"}


def write_mp3(path: str | os.PathLike, audio: np.ndarray, sr: int, bitrate: int = 192) -> Path:
    """Write ``(C, T)`` float audio (1 or 2 channels) as a constant-bitrate MP3 (LAME, through pedalboard),
    scaled down if it would clip. ``path`` is written in place: callers write into an output stage."""
    from pedalboard.io import AudioFile

    from engines.audio import io as aio

    audio = as_channels_first(audio)
    if not np.isfinite(audio).all():
        raise aio.NonFiniteError("Refusing to save audio that contains NaN or infinite samples.")
    audio = np.ascontiguousarray(aio.protect_against_clipping(audio), dtype=np.float32)
    with AudioFile(os.fspath(path), "w", samplerate=int(sr), num_channels=int(audio.shape[0]),
                   quality=f"{int(bitrate)}") as f:
        f.write(audio)
    return Path(path)


def convert(audio: np.ndarray, sr: int, rate: int, channels: int) -> np.ndarray:
    """``(C, T)`` audio at ``sr`` as ``channels`` channels at ``rate`` (soxr HQ; mean downmix, repeat upmix)."""
    from engines.audio import io as aio

    y = as_channels_first(audio)
    if y.shape[0] != channels:
        y = aio.to_channels(y, channels)
    if rate != sr:
        y = aio.resample(y, int(sr), int(rate))
    return np.ascontiguousarray(y, dtype=np.float32)


def as_channels_first(y: np.ndarray) -> np.ndarray:
    """``(T,)``, ``(1, T)`` or ``(C, T)`` -> float32 ``(C, T)``."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2:
        raise ValueError(f"expected audio shaped (C, T) or (T,), got {y.shape}")
    return y


def json_default(o: Any):
    """``json.dumps(default=...)`` for numpy scalars/arrays and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def lap_timer(timings: dict[str, float]) -> Callable[[str, float], float]:
    """``lap(name, since) -> now``: adds the seconds since ``since`` (a ``time.perf_counter()`` reading) to
    ``timings[name]`` and returns the current reading, so stages chain: ``t = lap("load", t0); t = lap("run", t)``.
    The engines fill ``Result.timings`` through it."""

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - since
        return now

    return lap


@dataclass
class Result:
    """One run's outputs. Subclasses add engine-specific fields (with defaults) and override :meth:`info`,
    :meth:`extra_files` and :attr:`JSON_NAME`."""

    audio: dict[str, np.ndarray]
    sample_rate: int
    timings: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    #: rate, channels and bit depth of the run's main input (:func:`probe_format`; set by :meth:`Engine.run`):
    #: what an :class:`OutputFormat` follows by default
    input_format: dict[str, Any] | None = field(default=None, repr=False, compare=False, kw_only=True)

    #: the JSON file :meth:`save` writes with :meth:`to_json` (``None``: none)
    JSON_NAME: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        self.audio = {k: as_channels_first(v) for k, v in self.audio.items()}
        lengths = {v.shape[-1] for v in self.audio.values()}
        if len(lengths) > 1:
            raise ValueError(f"result stems differ in length: {sorted(lengths)}")

    @property
    def duration(self) -> float:
        """Seconds of audio in the result."""
        first = next(iter(self.audio.values()), None)
        return 0.0 if first is None else first.shape[-1] / float(self.sample_rate)

    @property
    def rtf(self) -> float:
        """Real-time factor: processing seconds (``timings["total"]``) per second of audio."""
        total = self.timings.get("total")
        return float("nan") if total is None or not self.duration else total / self.duration

    def info(self) -> dict[str, Any]:
        """Engine-specific JSON fields (merged into :meth:`to_json`)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        out = {"sample_rate": int(self.sample_rate), "duration": round(self.duration, 6),
               "stems": {k: {"channels": int(v.shape[0]), "samples": int(v.shape[-1])} for k, v in self.audio.items()},
               "timings": {k: round(float(v), 6) for k, v in self.timings.items()}, "params": self.params}
        out.update(self.info())
        return out

    def file_names(self, fmt: str = "wav") -> dict[str, str]:
        """``{stem: file name}`` of the audio files :meth:`save` writes."""
        return {k: f"{k}.{fmt}" for k in self.audio}

    def extra_files(self) -> dict[str, Callable[[Path], None]]:
        """``{file name: writer(path)}`` of the other files :meth:`save` writes (figures, arrays)."""
        return {}

    def save(self, out_dir: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
             fmt: "str | OutputFormat" = "wav", subtype: str = "PCM_16", extras: bool = True,
             extra: Mapping[str, Callable[[Path], None]] | None = None, scale: float = 1.0) -> dict[str, Path]:
        """Write every output into ``out_dir`` all-or-nothing; returns ``{file name: final path}``.

        Args:
            inputs: the job's input files: no output may replace one (checked by path and inode).
            fmt / subtype: a container name (``wav``, ``flac``, ``mp3``) and sample format (``PCM_16``,
                ``PCM_24``, ``FLOAT``): written at the engine's own rate and channels; or an
                :class:`OutputFormat` (rate, channels and bit depth of the input by default; ``subtype`` is then
                the fallback when the input's bit depth is unknown). The JSON records what was written
                (``"output"``).
            extras: also write :meth:`extra_files` (figures etc.).
            extra: more ``{name: writer(path)}`` from the caller, published in the same stage.
            scale: one gain for every audio output, applied to each as it is written (one copy at a time, e.g.
                the common factor that keeps a song's stems from clipping).
        """
        from engines.atomic import OutputStage
        from engines.audio import io as aio

        if not isinstance(fmt, OutputFormat):
            name = str(fmt).lower().lstrip(".")
            if name not in FORMATS:
                raise ValueError(f"Unknown output format {fmt!r}: choose {', '.join(FORMATS)}.")
            sub = aio.SUBTYPES.get(subtype, subtype)
            if name != "mp3" and sub not in FORMATS[name]:
                raise ValueError(f"{name.upper()} cannot store {subtype} samples: choose {', '.join(FORMATS[name])}.")
        spec = OutputFormat.of(fmt, subtype)
        out = spec.resolve(self, aio.SUBTYPES.get(subtype, subtype))
        audio_names = self.file_names(out["format"])
        writers: dict[str, Callable[[Path], None]] = dict(self.extra_files()) if extras else {}
        writers.update(extra or {})
        names = list(audio_names.values()) + ([self.JSON_NAME] if self.JSON_NAME else []) + list(writers)
        inputs = [p for p in inputs if p]
        with OutputStage(out_dir, inputs=inputs, names=names) as stage:
            for stem, name in audio_names.items():
                y = convert(self.audio[stem], self.sample_rate, out["sample_rate"], out["channels"])
                if scale != 1.0:
                    y = (np.asarray(y) * np.float32(scale)).astype(np.float32, copy=False)
                if out["format"] == "mp3":
                    write_mp3(stage.path(name), y, out["sample_rate"], out["bitrate"])
                else:
                    aio.save(stage.path(name), y, out["sample_rate"], out["subtype"], protect=inputs)
            if self.JSON_NAME:
                data = self.to_json()
                data["output"] = out
                stage.write_text(self.JSON_NAME, json.dumps(data, indent=2, default=json_default))
            for name, write in writers.items():
                write(stage.path(name))
        return dict(stage.published)


class Engine:
    """Base of the four engines. Subclasses set :attr:`NAME`, :attr:`INPUTS`, :attr:`Config` and implement
    :meth:`load` and :meth:`_run`."""

    #: the engine's name (the CLI command and the registry kind)
    NAME: ClassVar[str] = ""
    #: names of the inputs :meth:`run` takes; the first is the main one
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    #: inputs that may be left out
    OPTIONAL_INPUTS: ClassVar[tuple[str, ...]] = ()
    #: the engine's frozen config dataclass (:mod:`engines.options`)
    Config: ClassVar[type]

    device: Any = None

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, *, device: str = "auto", **options) -> "Engine":
        """Build the engine: the registered model ``name_or_path`` (``None``: the default) on ``device``."""
        raise NotImplementedError

    def inputs_of(self, inputs: Any) -> dict[str, Any]:
        """``inputs`` as ``{name: source}``: a mapping is checked against :attr:`INPUTS`, a single source is the
        first input."""
        if not isinstance(inputs, Mapping):
            inputs = {self.INPUTS[0]: inputs}
        unknown = sorted(set(inputs) - set(self.INPUTS))
        if unknown:
            raise ValueError(f"{self.NAME or type(self).__name__} takes the inputs {', '.join(self.INPUTS)}, "
                             f"not {', '.join(unknown)}.")
        missing = [k for k in self.INPUTS if k not in self.OPTIONAL_INPUTS and inputs.get(k) is None]
        if missing:
            raise ValueError(f"Missing input: {', '.join(missing)}.")
        return {k: inputs.get(k) for k in self.INPUTS}

    def config_of(self, config=None, **overrides):
        """``config`` (a :attr:`Config`, a preset name, a dict or ``None`` = defaults) with ``overrides``."""
        if config is None or isinstance(config, str):
            return self.Config.preset(config, **overrides)
        if isinstance(config, Mapping):
            return self.Config.from_dict({**config, **overrides})
        if not isinstance(config, self.Config):
            raise TypeError(f"expected a {self.Config.__name__}, got {type(config).__name__}")
        return config.replace(**overrides) if overrides else config

    def run(self, inputs: Any, config=None, progress: Progress | None = None, **overrides) -> Result:
        """Process one job: ``inputs`` (see :meth:`inputs_of`), ``config`` (see :meth:`config_of`)."""
        named = self.inputs_of(inputs)
        result = self._run(named, self.config_of(config, **overrides), progress)
        if isinstance(result, Result) and result.input_format is None:
            result.input_format = probe_format(named.get(self.INPUTS[0]))
        return result

    def _run(self, inputs: dict[str, Any], config, progress: Progress | None) -> Result:
        raise NotImplementedError
