"""The shipped vocals-cnn model (the default until the vocals-ens ensemble) gives the same output as before the
engine contract (issue #14).

The reference values were computed with the code before the change (``VocalIsolator(chunk_seconds=...)
.separate``, the hand-written chunk loop) on fixed inputs: 3 s of seeded stereo noise + an amplitude-modulated
440 Hz tone at 44.1 kHz (one chunk, and 1-second chunks), and 20 s of the same at 44.1 kHz in 7-second chunks
(several chunks, and mask columns decimated by 2 across chunk borders).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

IDX_3S = [1000, 20000, 50000, 77777, 100000, 131000]
IDX_20S = [5000, 200000, 400000, 600001, 880000]
MASK_3S = [(10, 5), (40, 100), (200, 200), (500, 250)]
MASK_20S = [(10, 5), (20, 400), (41, 800), (61, 860), (500, 861)]

REF_3S = {
    "default": {
        "vocals": [[-0.0265433, -0.0505886, -0.3116448, 0.0121843, -0.249067, 0.0376384], [-0.0346078, -0.0513578, -0.3359143, -0.0114823, -0.233482, 0.060342]],
        "rms": 0.2015745,
        "mask": [0.052689, 0.98683, 0.174799, 0.708062],
        "mask_shape": [513, 259],
        "mask_rate": 86.1328125,
    },
    "chunk1": {
        "vocals": [[-0.0265433, -0.0505886, -0.3116448, 0.0121843, -0.249067, 0.0376384], [-0.0346078, -0.0513578, -0.3359143, -0.0114823, -0.233482, 0.060342]],
        "rms": 0.2015745,
        "mask": [0.052689, 0.98683, 0.174799, 0.708062],
        "mask_shape": [513, 259],
        "mask_rate": 86.1328125,
    },
    "binary": {
        "vocals": [[-0.0537328, -0.0655358, -0.3232242, 0.0096173, -0.2739351, 0.0452632], [-0.0477792, -0.0592068, -0.3601895, -0.0073813, -0.2665458, 0.0614082]],
        "rms": 0.2208501,
        "mask": [0.0, 1.0, 0.0, 1.0],
        "mask_shape": [513, 259],
        "mask_rate": 86.1328125,
    },
    "sharpen2": {
        "vocals": [[-0.0357487, -0.0590313, -0.3260855, 0.0113283, -0.2685331, 0.0432209], [-0.0405836, -0.0568858, -0.3543421, -0.0088988, -0.2597973, 0.0643534]],
        "rms": 0.2170974,
        "mask": [0.003094, 0.999805, 0.078867, 0.843156],
        "mask_shape": [513, 259],
        "mask_rate": 86.1328125,
    },
}

REF_20S = {
    "vocals": [-0.1562248, 0.0572076, -0.1546738, 0.1897939, 0.0846429],
    "rms": 0.2047995,
    "mask": [0.038922, 0.958141, 0.956858, 0.516482, 0.550128],
    "mask_shape": [513, 862],
    "mask_rate": 43.06640625,
}


def song(seconds: float, seed: int) -> tuple[np.ndarray, int]:
    sr = 44100
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.05 * rng.standard_normal((2, t.size)) + 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return x.astype(np.float32), sr


def _check(r, ref, idx, mask_at, channels):
    got = [[float(r.vocals[c, i]) for i in idx] for c in channels]
    want = ref["vocals"] if isinstance(ref["vocals"][0], list) else [ref["vocals"]]
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert float(np.sqrt(np.mean(r.vocals.astype(np.float64) ** 2))) == pytest.approx(ref["rms"], abs=1e-4)
    assert list(r.mask.shape) == ref["mask_shape"] and r.mask_frame_rate == pytest.approx(ref["mask_rate"])
    np.testing.assert_allclose([float(r.mask[b, j]) for b, j in mask_at], ref["mask"], atol=1e-4)


@pytest.fixture(scope="module")
def shipped():
    from engines.vocals.api import VocalIsolator

    return VocalIsolator


@pytest.mark.parametrize("case", list(REF_3S))
def test_default_model_same_output_3s(shipped, case):
    x, sr = song(3.0, 0)
    chunk = {"default": 30.0, "chunk1": 1.0, "binary": 30.0, "sharpen2": 1.0}[case]
    kw = {"binary": {"binary_mask": True}, "sharpen2": {"sharpen": 2.0}}.get(case, {})
    r = shipped("vocals-cnn", chunk_seconds=chunk, device="cpu").separate(x, sr, **kw)
    _check(r, REF_3S[case], IDX_3S, MASK_3S, (0, 1))


def test_default_model_same_output_20s_chunked(shipped):
    x, sr = song(20.0, 1)
    r = shipped("vocals-cnn", chunk_seconds=7.0, device="cpu").separate(x, sr)
    _check(r, REF_20S, IDX_20S, MASK_20S, (1,))


@pytest.mark.parametrize("case", ["default", "chunk1", "binary", "sharpen2"])
def test_engine_run_same_output(case):
    """The contract's entry point (``Engine.load().run``) with the Config of each case."""
    from engines.vocals import Config, Engine

    cfg = {"default": Config(), "chunk1": Config(chunk_seconds=1.0), "binary": Config(binary_mask=True),
           "sharpen2": Config(chunk_seconds=1.0, sharpen=2.0)}[case]
    x, sr = song(3.0, 0)
    r = Engine.load("vocals-cnn", device="cpu").run((x, sr), cfg)
    _check(r, REF_3S[case], IDX_3S, MASK_3S, (0, 1))
