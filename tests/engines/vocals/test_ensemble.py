"""Vocal ensembles: the registry's ensemble entries, the band-aware weighted (and geometric) mean of the members'
vocals, and the engine running an ensemble (vocals = the blend of its members' own outputs, stems summing to the mixture)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines import registry
from engines.checkpoint import CheckpointError
from engines.testing import tiny_vocals, tiny_vocals_bs
from engines.vocals.ensemble import blend

torch.set_num_threads(1)
SR = 44100


def _tone(freqs_amps, seconds=2.0, sr=SR, channels=2):
    t = np.arange(int(seconds * sr)) / sr
    x = sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps)
    return np.stack([x * (1.0 - 0.2 * c) for c in range(channels)]).astype(np.float32)


def _amp(x, f, sr=SR):
    """Amplitude of the sine at ``f`` in channel 0 (a whole number of cycles is not needed: a long Hann window)."""
    w = np.hanning(x.shape[-1])
    spec = np.abs(np.fft.rfft(x[0] * w)) / (w.sum() / 2)
    k = int(round(f * x.shape[-1] / sr))
    return float(spec[k - 2:k + 3].max())


def test_blend_averages_below_the_limited_members_band_and_keeps_the_full_band_above():
    full = _tone([(1000.0, 0.2), (15000.0, 0.1)])  # a full-band member: a voice with air above 11 kHz
    limited = _tone([(1000.0, 0.4)])  # a 22050 Hz member: nothing above 11 kHz
    before = (full.copy(), limited.copy())
    out = blend([limited, full], [0.5, 0.5], [22050, 44100], SR)
    assert out.shape == full.shape and out.dtype == np.float32
    assert np.array_equal(full, before[0]) and np.array_equal(limited, before[1])  # inputs untouched
    assert _amp(out, 1000.0) == pytest.approx(0.3, rel=0.02)  # the mean of 0.4 and 0.2
    assert _amp(out, 15000.0) == pytest.approx(0.1, rel=0.02)  # all of the full-band member, not half of it
    naive = 0.5 * full + 0.5 * limited
    assert _amp(naive, 15000.0) == pytest.approx(0.05, rel=0.02)
    # chunked (with context) equals one piece; weights are normalised; members at one rate: the plain mean
    np.testing.assert_allclose(blend([limited, full], [1, 1], [22050, 44100], SR, chunk_seconds=0.3), out, atol=1e-5)
    np.testing.assert_allclose(blend([limited, full], [3, 1], [44100, 44100], SR), 0.75 * limited + 0.25 * full,
                               atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        blend([limited, full], [0.5, 0.0], [22050, 44100], SR)
    with pytest.raises(ValueError, match="shape"):
        blend([limited[:, :100], full], [0.5, 0.5], [22050, 44100], SR)


def test_geometric_blend_is_a_soft_and_with_the_mixtures_phase_and_keeps_the_top_band():
    rng = np.random.default_rng(1)
    mix = (_tone([(1000.0, 0.2), (15000.0, 0.1)]) + 0.01 * rng.standard_normal((2, 2 * SR))).astype(np.float32)
    # members that agree with the mixture give the mixture back
    same = blend([mix, mix], [0.5, 0.5], [44100, 44100], SR, combine="geometric", mix=mix)
    np.testing.assert_allclose(same, mix, atol=2e-4)
    voice = _tone([(1000.0, 0.2), (15000.0, 0.1)])
    half = _tone([(1000.0, 0.05)])  # a band-limited member that hears a quarter of the 1 kHz voice, nothing above
    out = blend([half, voice], [0.5, 0.5], [22050, 44100], SR, combine="geometric", mix=mix)
    assert _amp(out, 1000.0) == pytest.approx(0.1, rel=0.05)  # sqrt(0.05 * 0.2)
    assert _amp(out, 15000.0) == pytest.approx(0.1, rel=0.05)  # above 11 kHz: the full-band member alone
    chunked = blend([half, voice], [0.5, 0.5], [22050, 44100], SR, chunk_seconds=0.4, combine="geometric", mix=mix)
    np.testing.assert_allclose(chunked, out, atol=1e-5)
    W = __import__("engines.vocals.ensemble", fromlist=["bin_weights"]).bin_weights(np.array([0.5, 0.5]), [22050, 44100],
                                                                                    SR, 2048)
    assert np.allclose(W.sum(0), 1) and W[0, 0] == 0.5 and W[0, -1] == 0 and W[1, -1] == 1
    with pytest.raises(ValueError, match="mixture"):
        blend([half, voice], [0.5, 0.5], [22050, 44100], SR, combine="geometric")
    with pytest.raises(ValueError, match="combine"):
        blend([half, voice], [0.5, 0.5], [22050, 44100], SR, combine="median")


@pytest.fixture()
def models(tmp_path, monkeypatch):
    """A registry folder with a tiny CNN, a tiny band-split model and an ensemble of both (the default)."""
    tiny_vocals(tmp_path / "cnn.safetensors", seed=1, randomized=True)
    tiny_vocals_bs(tmp_path / "bs.safetensors", seed=2, randomized=True)
    registry.register({"name": "t-cnn", "kind": "vocals", "file": "cnn.safetensors"}, tmp_path)
    registry.register({"name": "t-bs", "kind": "vocals", "file": "bs.safetensors", "stems": 4}, tmp_path)
    registry.register({"name": "t-ens", "kind": "vocals", "default": True, "stems": 2, "combine": "geometric",
                       "members": [{"name": "t-cnn", "weight": 1.0}, {"name": "t-bs", "weight": 3.0}]}, tmp_path)
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(tmp_path))
    return tmp_path


def test_registry_ensemble_entries(models):
    assert registry.members("t-ens", "vocals") == [("t-cnn", 0.25), ("t-bs", 0.75)]
    assert registry.members(None, "vocals") == [("t-cnn", 0.25), ("t-bs", 0.75)]  # the default
    assert registry.members("t-bs", "vocals") is None and registry.members(str(models / "bs.safetensors"), "vocals") is None
    assert "sha256" not in json.loads((models / "t-ens.json").read_text())
    with pytest.raises(CheckpointError, match="ensemble"):
        registry.resolve("t-ens", "vocals")
    with pytest.raises(CheckpointError, match="not a query model"):
        registry.members("t-ens", "query")
    bad = [[{"name": "t-cnn"}],  # one member
           [{"name": "t-cnn"}, {"name": "nope"}],  # unknown
           [{"name": "t-cnn"}, {"name": "t-ens"}],  # an ensemble inside an ensemble
           [{"name": "t-cnn", "weight": 0}, {"name": "t-bs"}],  # a weight that is not > 0
           [{"name": "t-cnn", "weight": "1"}, {"name": "t-bs"}]]
    for ms in bad:
        with pytest.raises(CheckpointError):
            registry.register({"name": "t-bad", "kind": "vocals", "members": ms}, models)
    assert not (models / "t-bad.json").exists()
    # one default per kind: a newly registered default unmarks the old one
    registry.register({"name": "t-cnn", "kind": "vocals", "file": "cnn.safetensors", "default": True}, models)
    assert registry.default("vocals")["name"] == "t-cnn" and not registry.get("t-ens").get("default")
    assert registry.members(None, "vocals") is None


def test_engine_runs_the_ensemble_as_the_blend_of_its_members(models, capsys):
    from engines.vocals import Config, Engine

    eng = Engine.load(device="cpu")  # the default: the ensemble
    assert eng.arch == "ensemble" and eng.model_name == "t-ens" and eng.max_stems == 2
    assert [m.model_name for m, _ in eng.members] == ["t-bs", "t-cnn"]  # the full-band member leads
    rng = np.random.default_rng(0)
    mix = (_tone([(440.0, 0.3), (13000.0, 0.05)], 3.0) + 0.02 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    res = eng.run((mix, SR))
    cnn = Engine.load("t-cnn", device="cpu").run((mix, SR))
    bs = Engine.load("t-bs", device="cpu").run((mix, SR))
    want = blend([cnn.vocals, bs.vocals], [0.25, 0.75], [22050, 44100], SR, combine="geometric", mix=mix)
    np.testing.assert_allclose(res.vocals, want, atol=1e-5)
    np.testing.assert_allclose(res.vocals + res.accompaniment, mix, atol=1e-6)
    assert res.vocals.shape == mix.shape and res.sample_rate == SR
    assert res.params["members"] == {"t-bs": 0.75, "t-cnn": 0.25} and res.params["mask_from"] == "t-bs"
    assert res.params["combine"] == "geometric"
    assert res.mask.shape == bs.mask.shape and {"member:t-bs", "member:t-cnn", "blend"} <= set(res.timings)
    with pytest.raises(ValueError, match="2 stems"):
        eng.run((mix, SR), Config(stems=4))
    args = type("A", (), {"kind": "vocals", "json": False})()
    assert registry.run(args) == 0
    assert "t-ens (default)  [vocals]  ensemble of t-cnn x1 + t-bs x3" in capsys.readouterr().out
