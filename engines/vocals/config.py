"""The vocals engine's settings: one declaration drives the API, ``launch.py vocals`` and the Vocals tab.

No torch here: the CLI's ``--help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engines.audio.limits import Range, max_threads
from engines.options import ConfigBase, option


@dataclass(frozen=True)
class Config(ConfigBase):
    """Inference settings of :class:`engines.vocals.Engine` (the model itself is chosen in ``Engine.load``).

    ``None`` for ``sharpen`` means the model's own ``mask_sharpen`` (1.0 for every shipped model); a model
    exported with ``mask_at_eval`` uses the binary mask even when ``binary_mask`` is off (as the CLI always did).
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "soft": {"binary_mask": False, "sharpen": 1.0},
        "sharp": {"binary_mask": False, "sharpen": 2.0},
        "hard": {"binary_mask": True},
    }

    binary_mask: bool = option(False, "apply the thresholded (binary) mask instead of the soft one (mask_at_eval)",
                               group="mask")
    sharpen: float | None = option(None, "soft-mask logit scale, > 0 (>1 = harder mask; empty/None: the model's "
                                   "mask_sharpen, 1.0 for the shipped model)",
                                   range=Range(0, 100, lo_open=True,
                                               note="1 keeps the network's probability, > 1 hardens the mask"),
                                   group="mask")
    stems: int = option(2, "2: vocals + accompaniment; 4: vocals, drums, bass, other (a four-stem model such as "
                        "vocals-bs)", choices=(2, 4), group="stems")
    chunk_seconds: float = option(30.0, "streamed chunk length, 1-600 s (memory vs. overhead)", range=Range(1, 600),
                                  group="inference", studio=False)
    threads: int | None = option(None, "torch CPU threads (default: torch's own)",
                                 range=Range(1, max_threads(), integer=True), group="inference", studio=False)
