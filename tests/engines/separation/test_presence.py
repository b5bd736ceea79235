"""Query separation: the calibrated "not found" decision (presence score) and the cross-attention mask net."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.separation import presence as pm
from engines.separation.api import get_models, separate
from engines.separation.model import QueryNet
from engines.testing import tiny_separation

SR = 16000


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("pa")
    rng = np.random.default_rng(1)
    t = np.arange(3 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.8) * (t < 2.2)
    sf.write(d / "mix.wav", (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32), SR)
    sf.write(d / "q.wav", (0.3 * np.sin(2 * np.pi * 440 * t[:SR])).astype(np.float32), SR)
    return d


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(tiny_separation(tmp_path_factory.mktemp("pm") / "tiny.safetensors"))


def _calibration(bias: float, threshold: float = 0.5) -> dict:
    n = len(pm.FEATURES)
    return {"features": list(pm.FEATURES), "weights": [1.0] + [0.0] * (n - 1), "bias": bias,
            "mean": [0.0] * n, "scale": [1.0] * n, "threshold": threshold}


def test_fit_score_and_threshold_separate_two_groups():
    rng = np.random.default_rng(0)
    pres = rng.normal([-8, -3, 0.7, 0.6, 0.6], 1.0, (200, 5))
    absn = rng.normal([-22, -15, 0.3, 0.2, 0.2], 1.0, (200, 5))
    x = np.vstack([pres, absn])
    y = np.r_[np.ones(200), np.zeros(200)].astype(int)
    cal = pm.fit(x, y)
    p = np.array([pm.score(dict(zip(pm.FEATURES, row)), cal) for row in x])
    assert p[:200].mean() > 0.9 and p[200:].mean() < 0.1
    thr = pm.choose_threshold(p[:200], max_miss=0.05)
    assert (p[:200] < thr).mean() <= 0.05 and (p[200:] < thr).mean() > 0.95
    # monotonic in the energy feature (positive weight)
    assert cal["weights"][0] > 0


def test_features_of_a_mask():
    mag = torch.ones(5, 20)
    m = torch.zeros(5, 20)
    m[:, :2] = 1.0  # all of the energy of 2 frames out of 20
    f = pm.features(m, mag, [0.1, 0.9, 0.5], [0.2, 0.4])
    assert abs(f["est_db"] - 10 * np.log10(0.1)) < 1e-3 and abs(f["peak_db"]) < 1e-3
    assert f["max_cos"] == 0.9 and abs(f["top3_cos"] - 0.5) < 1e-4 and f["max_cls"] == 0.4


def test_calibrated_score_decides_and_is_reported(audio, ckpt):
    emb, net = get_models("builtin", checkpoint=ckpt)
    net.presence = _calibration(bias=+50.0)
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net))
    assert r.found and r.presence["score"] > 0.99 and r.presence["rule"] == "calibrated presence score"
    net.presence = _calibration(bias=-50.0)
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net))
    assert not r.found and not np.any(r.target) and np.array_equal(r.residual, r.mixture)
    ev = r.event()
    assert ev["presence"]["score"] < 0.01 and ev["presence"]["threshold"] == 0.5
    assert "presence score 0.00" in ev["message"] and "presence score" in r.presence_text()
    # an explicit threshold overrides the calibrated one; --not_found_db does not apply to a calibrated model
    assert separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net), presence_threshold=0.0).found
    assert not separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net), not_found_db=-200).found
    net.presence = None  # no calibration: the former rule, --not_found_db (-25 dB)
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net))
    assert r.presence["threshold_db"] == pm.LEGACY_DB and r.found == (r.presence["features"]["est_db"] > -25)
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net), not_found_db=-200)
    assert r.found and r.presence["score"] is None and r.presence["threshold_db"] == -200


def test_cli_not_found_exits_3_with_the_score(audio, ckpt, tmp_path, capsys, monkeypatch):
    import launch

    monkeypatch.setattr(pm, "calibration_for", lambda path: _calibration(bias=-50.0, threshold=0.4))
    out = tmp_path / "nf"
    rc = launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "q.wav"),
                      "--out_dir", str(out), "--checkpoint", ckpt, "--embedder", "builtin",
                      "--save_visualizations", "False"])
    text = capsys.readouterr().out
    assert rc == 3 and "not found" in text and "presence score 0.00 (threshold 0.40)" in text
    ev = json.loads((out / "event.json").read_text())
    assert ev["found"] is False and ev["presence"]["score"] < 0.01 and ev["presence"]["threshold"] == 0.4


def test_registry_entry_calibration_is_found_by_path(tmp_path, monkeypatch):
    from engines import registry

    monkeypatch.setattr(registry, "_dir", lambda d=None: tmp_path)
    path = tiny_separation(tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text(json.dumps({"name": "m", "kind": "query", "file": "m.safetensors",
                                                 "presence": _calibration(0.0)}))
    assert pm.calibration_for(path)["threshold"] == 0.5
    assert pm.calibration_for(tmp_path / "other.safetensors") is None


def test_absent_pairs_never_hold_a_class_the_mixture_may_contain():
    from benchmarks.query_calibrate import can_be_absent

    assert not can_be_absent("speech", "speech", [])
    assert not can_be_absent("speech", "bells", ["babble"]) and can_be_absent("speech", "bells", ["music"])
    assert not can_be_absent("piano", "speech", ["music"]) and can_be_absent("piano", "speech", ["babble"])
    assert not can_be_absent("birds", "speech", ["ambience"]) and can_be_absent("alarms", "speech", ["ambience"])


def test_cross_attention_block_starts_as_the_model_it_extends_and_round_trips(tmp_path):
    from engines.checkpoint import load_model, save_model
    from engines.separation import reference as refmod
    from engines.testing import randomize
    from trainers.query_masknet import add_cross_attention

    net = tiny_separation(randomized=True)
    x = add_cross_attention(net, 16, at=1).eval()
    torch.manual_seed(0)
    mix, q = 0.1 * torch.randn(1, 2 * SR), 0.1 * torch.randn(1, SR)
    with torch.no_grad():
        assert torch.equal(net.separate(mix, q)[0], x.separate(mix, q)[0])
    randomize(x.xattn, seed=3)  # non-zero attention: the query's frames change the mask
    with torch.no_grad():
        assert not torch.allclose(net.separate(mix, q)[1], x.separate(mix, q)[1])
    p = save_model(x, tmp_path / "x.safetensors")
    y = load_model(p, expected=QueryNet)
    assert y.xattn is not None
    with torch.no_grad():
        assert torch.allclose(x.separate(mix, q)[0], y.separate(mix, q)[0], atol=1e-6)
        with pytest.raises(ValueError, match="query_logmag"):
            y.mask(torch.zeros(1, 257, 10), torch.zeros(1, y.emb_dim + 8))
        # several queries: the attention reads all their frames (and a negative's own)
        m = refmod.fitted_mask(y, mix[0], [q[0], q[0, :SR // 2]], negatives=[0.1 * torch.randn(SR)])
    assert m.shape == (257, 2 * SR // 256 + 1) and torch.isfinite(m).all()
