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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import numpy as np

#: a progress callback: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]

#: audio file formats :meth:`Result.save` writes: suffix -> soundfile subtypes allowed
FORMATS = {"wav": ("PCM_16", "PCM_24", "FLOAT"), "flac": ("PCM_16", "PCM_24")}


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


@dataclass
class Result:
    """One run's outputs. Subclasses add engine-specific fields (with defaults) and override :meth:`info`,
    :meth:`extra_files` and :attr:`JSON_NAME`."""

    audio: dict[str, np.ndarray]
    sample_rate: int
    timings: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

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
             fmt: str = "wav", subtype: str = "PCM_16", extras: bool = True,
             extra: Mapping[str, Callable[[Path], None]] | None = None) -> dict[str, Path]:
        """Write every output into ``out_dir`` all-or-nothing; returns ``{file name: final path}``.

        Args:
            inputs: the job's input files: no output may replace one (checked by path and inode).
            fmt / subtype: audio container (``wav``, ``flac``) and sample format (``PCM_16``, ``PCM_24``, ``FLOAT``).
            extras: also write :meth:`extra_files` (figures etc.).
            extra: more ``{name: writer(path)}`` from the caller, published in the same stage.
        """
        from engines.atomic import OutputStage
        from engines.audio import io as aio

        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"Unknown output format {fmt!r}: choose {', '.join(FORMATS)}.")
        sub = aio.SUBTYPES.get(subtype, subtype)
        if sub not in FORMATS[fmt]:
            raise ValueError(f"{fmt.upper()} cannot store {subtype} samples: choose {', '.join(FORMATS[fmt])}.")
        audio_names = self.file_names(fmt)
        writers: dict[str, Callable[[Path], None]] = dict(self.extra_files()) if extras else {}
        writers.update(extra or {})
        names = list(audio_names.values()) + ([self.JSON_NAME] if self.JSON_NAME else []) + list(writers)
        inputs = [p for p in inputs if p]
        with OutputStage(out_dir, inputs=inputs, names=names) as stage:
            for stem, name in audio_names.items():
                aio.save(stage.path(name), self.audio[stem], self.sample_rate, sub, protect=inputs)
            if self.JSON_NAME:
                stage.write_text(self.JSON_NAME, json.dumps(self.to_json(), indent=2, default=json_default))
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
        return self._run(self.inputs_of(inputs), self.config_of(config, **overrides), progress)

    def _run(self, inputs: dict[str, Any], config, progress: Progress | None) -> Result:
        raise NotImplementedError
