"""Vocal isolation: ``Engine.load(...).run(song, Config(...)) -> Result`` (vocals + accompaniment).

``Config`` is imported at once (no torch: the CLI's ``--help`` stays fast); ``Engine`` (also known as
``VocalIsolator``) and ``Result`` (``VocalsResult``) load torch on first use.
"""
from __future__ import annotations

from .config import Config

__all__ = ["Config", "Engine", "Result", "VocalIsolator", "VocalsResult"]


def __getattr__(name: str):
    if name in ("Engine", "Result", "VocalIsolator", "VocalsResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
