"""Test signals for the fusion engine's tests (one place: test_engine, test_listenable, test_same_output and
tests/engines/test_fusion use it)."""
from __future__ import annotations

import numpy as np


def click_song(seconds: float = 4.0, bpm: float = 120.0, f0: float = 220.0, sr: int = 24000, seed: int = 0):
    """``(T,)`` float32: a drum-like noise click on every beat (the first of each 4 louder) over a tone at ``f0`` and
    its 2.5x partial: clear beats and bars at ``bpm``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.1 * np.sin(2 * np.pi * f0 * t) + 0.05 * np.sin(2 * np.pi * 2.5 * f0 * t)
    period = int(sr * 60 / bpm)
    for k, start in enumerate(range(0, n, period)):
        m = min(int(0.05 * sr), n - start)
        env = np.exp(-np.arange(m) / (0.01 * sr)) * (1.0 if k % 4 == 0 else 0.5)
        y[start:start + m] += 0.5 * env * rng.standard_normal(m)
    return y.astype(np.float32)
