"""Query-by-example source separation.

Mixture + a short clip of the wanted sound -> target + residual (``mixture - target``).
Stages (each usable alone): :mod:`.features` (log-mel / STFT front end), :mod:`.embedders`
(built-in conv embedder or AST through ``transformers``, one interface), :mod:`.detection`
(sliding-window gating into segments and a time mask), :mod:`.reference` (stitching reference,
fitted reference from the query-conditioned mask network, initial mask), :mod:`.mask`
(DGMO-style mask optimisation), :mod:`.config` (every option: ``Config``), :mod:`.api` (the engine:
``Engine.load(...).run(inputs, config) -> Result``; ``separate`` / ``write_outputs``) and :mod:`.cli`
(``launch.py separate``).

``Config`` is imported eagerly (no torch); ``Engine`` and ``Result`` load :mod:`.api` (torch) on first use,
so ``launch.py separate --help`` stays fast.
"""
from __future__ import annotations

from .config import Config, SeparationConfig

__all__ = ["Config", "SeparationConfig", "Engine", "Result", "api", "config", "detection", "embedders", "features",
           "mask", "model", "reference"]


def __getattr__(name: str):
    if name in ("Engine", "Result"):
        from . import api

        return api.SeparationEngine if name == "Engine" else api.SeparationResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
