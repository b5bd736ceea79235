"""A fifth engine in one folder, as docs/DEVELOPING.md describes it: loudness normalisation to a target LUFS.

It has no model, but it follows the whole contract (Config, Engine.load/run, Result.save, a CLI found by its
folder, a generic studio tab), and the tests use it to check that adding a folder is all it takes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from engines import base
from engines.audio import io as aio
from engines.audio import levels
from engines.audio.limits import Range
from engines.options import ConfigBase, option


@dataclass(frozen=True)
class Config(ConfigBase):
    PRESETS: ClassVar[dict] = {"streaming": {"target_lufs": -14.0}, "broadcast": {"target_lufs": -23.0}}
    target_lufs: float = option(-16.0, "loudness to reach (LUFS)", range=Range(-60, 0), group="level")
    max_gain_db: float = option(24.0, "largest gain applied either way (dB)", range=Range(0, 60), group="level")
    limit: bool = option(True, "keep the peak under 0.999 afterwards", group="level")


@dataclass
class Result(base.Result):
    JSON_NAME: ClassVar[str] = "loudness.json"
    gain_db: float = 0.0

    def info(self) -> dict:
        return {"gain_db": round(self.gain_db, 3)}


class Engine(base.Engine):
    """Loudness: bring a recording to a target loudness (ITU-R BS.1770)."""

    NAME = "loudness"
    INPUTS = ("input",)
    Config = Config

    @classmethod
    def load(cls, name_or_path=None, *, device="auto", **options):
        return cls()

    def _run(self, inputs, config, progress):
        t0 = time.perf_counter()
        src = inputs["input"]
        audio, sr = src if isinstance(src, tuple) else aio.load(src)
        y, g = levels.match_loudness(audio, sr, config.target_lufs, config.max_gain_db)
        if config.limit:
            y = levels.limit_peak(y)
        if progress is not None:
            progress(1.0, "done")
        return Result(audio={"normalised": np.asarray(y)}, sample_rate=sr, gain_db=g, params=config.to_dict(),
                      timings={"total": time.perf_counter() - t0})
