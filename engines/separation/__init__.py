"""Query-by-example source separation.

Mixture + a short clip of the wanted sound -> target + residual (``mixture - target``).
Stages (each usable alone): :mod:`.features` (log-mel / STFT front end), :mod:`.embedders`
(built-in conv embedder or AST through ``transformers``, one interface), :mod:`.detection`
(sliding-window gating into segments and a time mask), :mod:`.reference` (stitching reference,
fitted reference from the query-conditioned mask network, initial mask), :mod:`.mask`
(DGMO-style mask optimisation), :mod:`.api` (``separate``) and :mod:`.cli` (``launch.py separate``).
"""
from __future__ import annotations

__all__ = ["api", "detection", "embedders", "features", "mask", "model", "reference"]
