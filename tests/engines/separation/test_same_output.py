"""The default query separation gives the same output as before the engine contract (issue #14).

Reference values: ``separate(...)`` of the shipped model (``query-builtin``, built-in embedder) on a fixed
input (3 s of seeded noise + a 440 Hz tone, a 1 s tone query), recorded at commit b7e82ab before the
forward path moved (fitted mask through ``run_chunked``, the grid mapping into ``engines/audio/grid.py``,
``Result.save``). Plus: the fitted mask chunked versus whole with non-trivial (randomised) weights.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.separation import Config, Engine
from engines.separation import reference as refmod
from engines.testing import tiny_separation

SR = 16000
IDX = np.linspace(1000, 3 * SR - 1000, 12).astype(int)

MONO = [-4.85790624e-05, 8.27815347e-06, 1.04550645e-05, 0.0174578335, 0.019309042, 0.00419524033, 0.0417848304,
        0.0424067341, 0.019446563, 0.0133287478, 0.000656330667, 3.8747683e-05]
MONO_ENERGY = 1157.4381103515625
STEREO_L = [-0.00169573165, 0.00018426172, 0.000568591058, -0.0592902824, -0.292629868, -0.164645359, 0.152716413,
            0.29304415, 0.0798835233, 0.000861382228, -0.000299204316, -1.24173503e-05]
STEREO_R = [-0.000847865827, 9.21308601e-05, 0.000284295529, -0.0296451412, -0.146314934, -0.0823226795,
            0.0763582066, 0.146522075, 0.0399417616, 0.000430691114, -0.000149602158, -6.20867513e-06]
STEREO_ENERGY = 3936.408203125
STITCH = [0.00225388887, -0.0126573509, 0.00410072878, 0.0166809224, 0.0200963803, 0.00231124228, 0.0374366045,
          0.0400944911, 0.0253912639, 0.0181148592, 0.00848078076, 0.00387978554]
STITCH_ENERGY = 1145.23193359375


def _inputs():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.8) * (t < 2.4)
    mix = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    q = (0.3 * np.sin(2 * np.pi * 440 * t[:SR])).astype(np.float32)
    return mix, q


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("engines.registry")
    return Engine.load(None, device="cpu", embedder="builtin")


def test_default_mono_output_is_unchanged(engine):
    mix, q = _inputs()
    r = engine.run({"mix": (mix, SR), "query": (q, SR)}, Config(embedder="builtin"))
    assert r.found and r.query_class == "alarms"
    np.testing.assert_allclose(r.target[0, IDX], MONO, atol=1e-4)
    assert abs(float((r.target ** 2).sum()) - MONO_ENERGY) < 1e-3 * MONO_ENERGY
    assert np.array_equal(r.residual, r.mixture - r.target)


def test_default_output_at_another_rate_and_channels_is_unchanged(engine):
    import soxr

    mix, q = _inputs()
    st = soxr.resample(np.stack([mix, 0.5 * mix], 1), SR, 44100).astype(np.float32).T
    idx = np.linspace(1000, st.shape[1] - 1000, 12).astype(int)
    r = engine.run({"mix": (st, 44100), "query": (q, SR)}, embedder="builtin")
    assert r.target.shape == (2, 132300) and r.sample_rate == 44100
    np.testing.assert_allclose(r.target[:, idx], [STEREO_L, STEREO_R], atol=1e-4)
    assert abs(float((r.target ** 2).sum()) - STEREO_ENERGY) < 1e-3 * STEREO_ENERGY


def test_stitching_reference_output_is_unchanged(engine):
    mix, q = _inputs()
    r = engine.run({"mix": (mix, SR), "query": (q, SR)}, embedder="builtin", reference="stitch", cls_percentile=0,
                   cosine_threshold=-1.0)
    np.testing.assert_allclose(r.target[0, IDX], STITCH, atol=1e-4)
    assert abs(float((r.target ** 2).sum()) - STITCH_ENERGY) < 1e-3 * STITCH_ENERGY


@pytest.mark.parametrize("negative", [False, True])
def test_fitted_mask_chunked_versus_whole_with_random_weights(negative):
    """Chunks of 1 s with 0.5 s of context on each side against the one-pass mask, with randomised weights
    (a misplaced chunk would show: the random mask changes from frame to frame). The mask net normalises
    over its input (mean subtraction, GroupNorm over time), so chunks are close, not equal: on a stationary
    mixture within 0.01 on average. (Mixtures up to 32 s are one pass with the default 30 s chunks.)"""
    net = tiny_separation(randomized=True, seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(int(4.3 * SR), generator=g) * 0.1
    q = [torch.randn(SR, generator=g) * 0.1]
    neg = [torch.randn(SR, generator=g) * 0.1] if negative else None
    whole = refmod.fitted_mask(net, x, q, neg)
    chunked = refmod.fitted_mask(net, x, q, neg, chunk_sec=1.0, context_sec=0.5)
    assert whole.shape == chunked.shape == (257, x.numel() // 256 + 1)
    assert float(whole.std()) > 0.1  # non-trivial mask
    assert float((whole - chunked).abs().mean()) < 0.01
    frame_to_frame = float((whole[:, 1:] - whole[:, :-1]).abs().mean())
    assert frame_to_frame > 0.1  # so a one-frame misplacement would fail the check above
    one_piece = refmod.fitted_mask(net, x, q, neg, chunk_sec=5.0, context_sec=0.5)
    assert torch.equal(one_piece, whole)


def test_queries_batch_separation_matches_the_engine_path():
    """``QueryNet.separate`` (the trainers' path) and the engine's fitted mask use the same network calls."""
    net = tiny_separation(randomized=True, seed=1)
    g = torch.Generator().manual_seed(1)
    x, q = torch.randn(2 * SR, generator=g) * 0.1, torch.randn(SR, generator=g) * 0.1
    with torch.no_grad():
        est, mask, emb, logits = net.separate(x[None], q[None])
    assert est.shape == (1, x.numel()) and mask.shape == (1, 257, x.numel() // 256 + 1)
    assert torch.allclose(mask[0], refmod.fitted_mask(net, x, [q]), atol=1e-5)


def test_run_chunked_with_offset_tells_each_piece_where_it_starts():
    """``with_offset`` (added for the reconstruction at the mixture's rate): ``fn(piece, lo)``."""
    from engines.audio.chunking import run_chunked

    x = torch.arange(1000, dtype=torch.float64)[None]
    seen = []

    def fn(piece, lo):
        seen.append(lo)
        return piece - x[:, lo:lo + piece.shape[-1]] + lo  # the piece's own offset everywhere

    out = run_chunked(fn, x, 300, context=50, with_offset=True)
    assert seen == [0, 250, 550, 850]
    assert out[0, 0] == 0 and out[0, 299] == 0 and out[0, 300] == 250 and out[0, 999] == 850


@pytest.mark.parametrize("sigma", [0.3, 1.0, 1.1, 2.7, 5.0])
def test_gaussian_smoothing_equals_the_former_convolution(sigma):
    """``reference.gaussian_smooth`` is scipy's gaussian_filter1d; it equals the hand-written one it replaced."""
    x = np.random.default_rng(0).standard_normal(int(40 * sigma))
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    old = np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid")
    np.testing.assert_allclose(refmod.gaussian_smooth(x, sigma), old, atol=1e-12)
    assert refmod.gaussian_smooth(x, 0) is x
