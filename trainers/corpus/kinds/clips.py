"""``clips/``: labelled 1-4 s clips over :data:`trainers.corpus.CLASSES` at 16 kHz.

Item ``i`` has class ``CLASSES[i % 14]`` (balanced classes); files ``clips/<class>/clip_NNNNN.wav``.
Manifest row: :class:`trainers.data.ClipRow`. Items with ``index % 10 == 9`` are dev items
(:func:`trainers.corpus.kinds.base.item_split`).
"""
from __future__ import annotations

import logging

import numpy as np

from .. import CLASSES
from .. import audio as A
from ...data import ClipRow
from .. import provenance as P
from ..sources import make_source
from .base import Context, Kind, item_rng, item_split

log = logging.getLogger(__name__)


class Clips(Kind):
    """Labelled clips for the query embedder / classifier."""

    name = "clips"
    sr = 16000
    bytes_per_second = 32000
    cost_per_second = 0.23

    def plan(self, seed: int, index: int) -> dict:
        rng = item_rng(seed, self.name, index, 0)
        return {"seconds": round(float(rng.uniform(1.0, 4.0)), 3), "label": CLASSES[index % len(CLASSES)]}

    def rel_path(self, index: int, plan: dict) -> str:
        return f"{plan['label']}/clip_{index:05d}.wav"

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        rng = item_rng(ctx.seed, self.name, index, 1)
        cls, seconds = plan["label"], plan["seconds"]
        split = item_split(index)
        src = make_source(cls, self.sr, rng, ctx, split)
        y = np.zeros(0, np.float32)
        for k in range(3):  # retry other excerpts if one is (nearly) silent
            y = src.excerpt(k, seconds, ctx)
            if y.size and A.rms_db(y) > -60:
                break
        n_min = int(1.0 * self.sr)
        if y.size < n_min:
            y = A.fit_length(y, n_min)
        y = y[: int(4.0 * self.sr)]
        level = float(rng.uniform(-32, -14))
        y = A.normalize_rms(y, level, peak_limit=0.95)
        path = ctx.root / self.name / self.rel_path(index, plan)
        A.write_pcm16(path, y, self.sr)
        return ClipRow(id=f"clip_{index:05d}", index=index, path=self.rel_path(index, plan), sr=self.sr,
                       seconds=round(y.size / self.sr, 4), sources=P.of_info(src.info, ctx.soundfont), effects=[],
                       split=split,
                       label=cls, label_index=CLASSES.index(cls), rms_db=round(A.rms_db(y), 2),
                       info={"source": src.info}).to_json()
