"""Output kinds of the corpus: one module per kind, registered in :data:`KIND_CLASSES`."""
from __future__ import annotations

from .base import Context, Kind
from .clips import Clips
from .fusion import Fusion
from .query import Query
from .songs import Songs
from .timbre import Timbre

KIND_CLASSES: dict[str, type[Kind]] = {
    "songs": Songs,
    "timbre": Timbre,
    "fusion": Fusion,
    "clips": Clips,
    "query": Query,
}

__all__ = ["KIND_CLASSES", "Context", "Kind"]
