"""Timbre transfer (piano <-> violin): ``Config`` (no torch), ``Engine`` and ``Result`` (loaded lazily: they import
torch).

    from engines.timbre import Engine
    res = Engine.load().run({"input": "piano.wav"}, target="violin")
    res.save("out/")   # out/violin.wav
"""
from .config import INSTRUMENTS, PHASE_MODES, Config

__all__ = ["Config", "Engine", "Result", "INSTRUMENTS", "PHASE_MODES"]


def __getattr__(name):
    if name in ("Engine", "Result"):
        from . import api

        return {"Engine": api.TimbreEngine, "Result": api.TimbreResult}[name]
    raise AttributeError(f"module 'engines.timbre' has no attribute {name!r}")
