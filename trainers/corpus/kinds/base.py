"""Common machinery of the output kinds: render context, per-item seeding, atomic item folders."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..scores import ScoreLibrary
from ..synth import SynthSettings, soundfont_presets

log = logging.getLogger(__name__)

#: Stable numeric id of each kind, mixed into the per-item seeds.
KIND_IDS = {"songs": 1, "timbre": 2, "fusion": 3, "clips": 4, "query": 5}


@dataclass
class Context:
    """Everything an item render needs; cheap to pickle (the library is rebuilt per process)."""

    root: Path
    soundfont: str
    seed: int
    stereo: bool = False
    #: production-chain strength (0 = no effects, 1 = the documented probabilities; trainers/corpus/effects.py)
    effects: float = 1.0
    #: chance scale of real recordings where installed (0 = renders only, 1 = the documented
    #: probabilities; trainers/corpus/sources.py REAL_P, docs/corpus.md)
    real: float = 1.0
    #: timbre kind: the soundfont its pianos are rendered with (None: ``soundfont``, as the violins): pairs of
    #: another piano's sound with the target violin, for ``train timbre-synth --input_only``
    piano_soundfont: str | None = None
    #: timbre kind: the share of melodies played slowly (a felt beat of 24-48 bpm: notes held for seconds)
    timbre_slow: float = 0.0
    _library: ScoreLibrary | None = field(default=None, repr=False, compare=False)

    @property
    def cache_dir(self) -> Path:
        """``<out>/.cache``: parsed scores and the score catalogue."""
        return self.root / ".cache"

    @property
    def library(self) -> ScoreLibrary:
        """The score library (created lazily in each worker process)."""
        if self._library is None:
            self._library = ScoreLibrary(self.cache_dir)
        return self._library

    @property
    def presets(self) -> frozenset:
        """The (bank, program) presets of the soundfont."""
        return soundfont_presets(self.soundfont)

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_library"] = None
        return d


def item_rng(seed: int, kind: str, index: int, stream: int) -> np.random.Generator:
    """Independent generator of one item: stream 0 plans it (duration, type), stream 1 renders it,
    stream 2 draws its production chain (so turning effects off changes nothing else)."""
    return np.random.default_rng([int(seed), KIND_IDS[kind], int(index), int(stream)])


#: every DEV_EVERY-th item (index % DEV_EVERY == DEV_EVERY - 1) is a dev item
DEV_EVERY = 10


def item_split(index: int) -> str:
    """The split of item ``index``: ``"dev"`` when ``index % 10 == 9``, else ``"train"``.

    A dev item draws real recordings only from the registry's ``split="dev"`` sources, a train item
    only from ``split="train"`` ones (renders are shared by both), so the real dev split holds
    speakers, soundtracks and kits that no train item has heard."""
    return "dev" if int(index) % DEV_EVERY == DEV_EVERY - 1 else "train"


def random_synth_settings(rng: np.random.Generator) -> SynthSettings:
    """Room reverb / chorus settings of one item."""
    return SynthSettings(room_size=float(rng.uniform(0.1, 0.85)), damping=float(rng.uniform(0.1, 0.7)),
                         reverb_level=float(rng.uniform(0.4, 1.0)), chorus_depth=float(rng.uniform(2, 12)),
                         gain=0.4)


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, compact floats) - deterministic bytes."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=_default) + "\n",
                    encoding="utf-8")


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return round(float(o), 6)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


class ItemFolder:
    """Context manager: build an item in a temp folder, then put it in place atomically
    (:func:`engines.atomic.atomic_folder`)."""

    def __init__(self, final: Path):
        self.final = Path(final)
        self._cm = None

    def __enter__(self) -> Path:
        from engines.atomic import atomic_folder

        self._cm = atomic_folder(self.final)
        return self._cm.__enter__()

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cm.__exit__(exc_type, exc, tb)


class Kind:
    """One output kind. Subclasses set ``name``/``sr`` and implement ``plan`` and ``render``."""

    name = "kind"
    sr = 16000
    #: rough output bytes per planned second (all files of an item), for the disk estimate
    bytes_per_second = 32000
    #: wall seconds per planned second with one worker, measured on a busy shared 2-core machine
    #: (FluidR3_GM, fresh score cache); used for the up-front time estimate
    cost_per_second = 0.05

    def plan(self, seed: int, index: int) -> dict:
        """Cheap plan of item ``index``: at least ``{"seconds": float}``. Deterministic."""
        raise NotImplementedError

    def rel_path(self, index: int, plan: dict) -> str:
        """Path of the item (folder or file) relative to the kind folder."""
        raise NotImplementedError

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        """Render item ``index`` into ``ctx.root / name``; return its manifest row."""
        raise NotImplementedError

    def is_complete(self, kind_dir: Path, row: dict) -> bool:
        """Whether the files of a manifest row exist."""
        return (kind_dir / row["path"]).exists()
