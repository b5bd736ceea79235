"""Timbre transfer options: one frozen :class:`Config` drives the API, the CLI flags and the studio widgets.

No torch here (the CLI's ``--help`` stays fast).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engines.audio.limits import Range, max_threads
from engines.options import ConfigBase, option

#: instruments, in the model's label order
INSTRUMENTS = ("piano", "violin")
#: how the output's phase is made
PHASE_MODES = ("griffinlim", "input")


@dataclass(frozen=True)
class Config(ConfigBase):
    """One transfer's settings.

    ``phase="input"`` is the one default (the API's and the CLI's before; the Timbre tab used ``griffinlim``): the
    registered scores were measured with it, it takes half the time, and on both bench sets 32 Griffin-Lim
    iterations changed the scores by at most 1.5 % (distances slightly lower, chroma similarity slightly lower
    too; docs/timbre.md, "Phase"). The ``refined`` preset is the Griffin-Lim variant.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "fast": {"phase": "input"},
        "refined": {"phase": "griffinlim", "gl_iters": 64},
    }

    target: str = option("violin", "the instrument to play it on", choices=INSTRUMENTS, group="transfer")
    vibrato: float = option(0.0, "vibrato depth in cents on notes held longer than 0.4 s, at 5.5 Hz (synthesis models; "
                            "0 = the input's pitch as is; it costs a little on the distance scores: docs/timbre.md)",
                            range=Range(0.0, 100.0), group="transfer")
    phase: str = option("input", "phase of the output: input = the input's phase as is; griffinlim = the input's "
                        "phase refined by Griffin-Lim", choices=PHASE_MODES, group="phase")
    gl_iters: int = option(32, "Griffin-Lim iterations (phase griffinlim only)", range=Range(0, 512, integer=True),
                           group="phase")
    threads: int | None = option(None, "torch CPU threads (default: torch's own)",
                                 range=Range(1, max_threads(), integer=True), group="compute", studio=False)
