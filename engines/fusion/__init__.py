"""A/B fusion: two songs in, one arrangement out (see ``docs/fusion.md``).

    from engines.fusion import Config, Engine
    res = Engine.load(device="auto").run({"a": "a.wav", "b": "b.wav"}, Config(mask_type="frequency"))
    res.save("out/")   # out/fusion.wav, out/fusion.json

Layers: ``codec`` (latent interface, built-in MDCT codec and the EnCodec wrapper), ``masking``
(complementary masks), ``model`` (cascade transformer), ``losses``, ``targets`` (the training target and
the complementarity metric), ``align`` (beats, tempo, key, crossfades), ``config`` (every option:
``Config``, no torch), ``api`` (the engine: ``Engine``/``Result``; ``fuse``) and ``cli`` (``launch.py fuse``).
``Engine`` and ``Result`` load :mod:`.api` (torch) on first use, so ``launch.py fuse --help`` stays fast.
"""
from .config import MASK_TYPES, MODES, SEGMENT_UNITS, Config

__all__ = ["Config", "Engine", "Result", "MASK_TYPES", "MODES", "SEGMENT_UNITS"]


def __getattr__(name):
    if name in ("Engine", "Result"):
        from . import api

        return {"Engine": api.FusionEngine, "Result": api.FusionResult}[name]
    raise AttributeError(f"module 'engines.fusion' has no attribute {name!r}")
