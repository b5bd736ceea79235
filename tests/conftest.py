import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture
def sine():
    """A 440 Hz sine, 1 s at 16 kHz, shaped (1, T)."""
    sr = 16000
    t = np.arange(sr) / sr
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], sr
