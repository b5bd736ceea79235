"""Issue 18: fusions a listener hears as both songs (log frequency axis, octave-band spectral masks, bar-wise
energy masks, level balancing, stem mashups, the mashability readout, the arrangement score, downbeat decoding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.engines.fusion.signals import click_song

SR = 24000


def _song(seconds, bpm, f0, seed=0):
    return click_song(seconds, bpm, f0, sr=SR, seed=seed)


def test_split_hz_log_axis():
    from engines.fusion.config import split_hz, split_label

    assert split_hz(0.2) == pytest.approx(200.0) and split_hz(1.0) == pytest.approx(12000.0)
    assert 300 < split_hz(0.3) < 400 and split_label(0.3) == "334 Hz" and split_label(0.7) == "2.6 kHz"
    assert split_hz(0.0) == 0.0 and split_hz(0.3, scale="linear") == pytest.approx(3600.0)
    assert all(split_hz(a) < split_hz(b) for a, b in [(0.1, 0.2), (0.2, 0.5), (0.5, 0.9)])


def test_frequency_mask_in_hz_and_legacy_linear():
    from engines.fusion.api import fuse

    a, b = (_song(4, 120, 220, 1), SR), (_song(4, 120, 660, 2), SR)
    r = fuse(a, b, mask_type="frequency", match_tempo=False, device="cpu")
    a_rows = np.where((r.region_map == 0).all(1))[0]
    assert r.region_freqs[a_rows].max() < r.params["split_hz"] < r.region_freqs[a_rows.max() + 1]
    assert r.params["mashability"]["parts"]["A"] == "below 334 Hz"
    old = fuse(a, b, mask_type="frequency", match_tempo=False, freq_scale="linear", balance=False, device="cpu")
    assert old.share()["A"] == pytest.approx(0.3, abs=0.01)  # the original's share of bands


def test_spectral_octaves_keep_whole_bands():
    from engines.fusion.api import OCTAVE_EDGES
    from engines.fusion.codec import MDCTCodec
    from engines.fusion.masking import complementary_masks

    freqs = MDCTCodec().channel_frequencies().numpy()
    groups = np.searchsorted(np.asarray(OCTAVE_EDGES), freqs, side="right")
    z = torch.randn(1, 128, 50)
    m_in, m_tgt = complementary_masks(z, "spectral", channel_keep=0.5, channel_groups=groups,
                                      generator=torch.Generator().manual_seed(0))
    col = m_in[0, :, 0].numpy()
    for g in np.unique(groups):
        assert len(set(col[groups == g])) == 1  # a band is A's or B's, whole
    assert int(col.max()) == 1 and int(col.min()) == 0 and torch.equal(m_in + m_tgt, torch.ones_like(m_in))
    with pytest.raises(ValueError, match="one group per channel"):
        complementary_masks(z, "spectral", channel_groups=groups[:10])


def test_energy_mask_whole_segments():
    from engines.fusion.masking import complementary_masks, segment_ids

    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 8, 400, generator=g) * torch.linspace(0.1, 2, 400)
    bounds = [50, 130, 200, 290, 350]
    m_in, m_tgt = complementary_masks(z, "energy", energy_threshold=0.5, segments=bounds, energy_segments=True)
    sid = segment_ids(400, segments=bounds)
    for s in range(len(bounds) + 1):
        assert len(set(m_in[0, 0, sid == s].tolist())) == 1
    assert m_in[0, 0, -1] == 1 and m_in[0, 0, 0] == 0  # the loud end is A's
    assert torch.equal(m_in + m_tgt, torch.ones_like(m_in))


def test_balance_brings_each_song_into_range():
    from engines.fusion.api import BALANCE_MAX_DB, _balance

    za, zb = torch.ones(1, 4, 10), torch.ones(1, 4, 10) * 0.3
    half = torch.ones(1, 4, 10) * 0.5
    _, _, info = _balance(za, zb, half, half)
    assert info["a_share_before"] > 0.9 and info["a_share_after"] == pytest.approx(0.5, abs=0.01)
    assert info["a_gain_db"] == pytest.approx(-5.229, abs=0.01) and info["b_gain_db"] == pytest.approx(5.229, abs=0.01)
    za2, zb2, info = _balance(torch.ones(1, 4, 10), torch.ones(1, 4, 10) * 0.9, half, half)
    assert info["a_gain_db"] == 0.0 and torch.equal(za2, torch.ones(1, 4, 10))  # inside 30-70 %: untouched
    _, _, info = _balance(za, zb * 1e-2, half, half)
    assert abs(info["a_gain_db"]) == pytest.approx(BALANCE_MAX_DB / 2)  # capped


def test_camelot():
    from engines.fusion.align import KeyInfo
    from engines.fusion.api import camelot, camelot_distance

    c, g, am, fsm = KeyInfo(0, "major", 1), KeyInfo(7, "major", 1), KeyInfo(9, "minor", 1), KeyInfo(6, "minor", 1)
    assert (camelot(c), camelot(g), camelot(am), camelot(fsm)) == ("8B", "9B", "8A", "11A")
    assert camelot_distance(c, c) == 0 and camelot_distance(c, g) == 1 and camelot_distance(c, am) == 1
    assert camelot_distance(c, KeyInfo(6, "major", 1)) == 6


def test_mashability_readout_in_json():
    from engines.fusion.api import fuse

    r = fuse((_song(6, 120, 220, 1), SR), (_song(5, 100, 660, 2), SR), mask_type="temporal", device="cpu")
    m = r.to_json()["params"]["mashability"]
    t = m["tempo"]
    assert t["rate"] == pytest.approx(t["a_bpm"] / t["b_bpm"], rel=1e-3) and t["applied"]
    assert all(abs(np.log2(x["rate"] / t["rate"])) > 0.1 for x in t["alternatives"])
    assert any(x["rate"] == pytest.approx(t["rate"] * 2, abs=1e-3) for x in t["alternatives"])
    assert set(m["key"]) >= {"a", "b", "camelot_a", "camelot_b", "camelot_distance"}
    assert m["parts"] == {"A": "segments 1, 3, 5...", "B": "segments 2, 4, 6..."} and "loudness_difference_db" in m


def test_stems_mask_uses_the_vocal_engine():
    from engines.fusion.api import fuse

    a, b = (_song(4, 120, 220, 1), SR), (_song(4, 120, 660, 2), SR)
    r = fuse(a, b, mask_type="stems", vocals_from="b", match_tempo=False, device="cpu")
    st = r.params["stems"]
    assert st["lead_from"] == "B" and st["lead"] == "vocals" and st["backing_from"] == "A"
    assert np.isfinite(r.fusion).all() and np.abs(r.fusion).max() <= 0.999
    assert r.params["mashability"]["parts"] == {"B": "vocals", "A": "accompaniment"}
    assert 0 <= st["lead_energy_share"] < 1 and abs(st["lead_gain_db"]) <= 12


def test_rhythm_split_takes_a_registered_four_stem_model(tmp_path, monkeypatch):
    """``--stem_split rhythm`` needs drums and bass: a registered four-stem model is used when the default vocal
    model has two stems; without one, the message says what is missing."""
    import json
    import shutil

    from engines.fusion.api import fuse
    from engines.testing import tiny_vocals_bs

    root = __import__("pathlib").Path(__file__).resolve().parents[3] / "assets" / "models"
    only_cnn = tmp_path / "cnn"
    only_cnn.mkdir()
    for f in ("vocals-cnn.json", "vocals-cnn.safetensors"):
        shutil.copy(root / f, only_cnn / f)
    a, b = (_song(3, 120, 220, 1), SR), (_song(3, 120, 660, 2), SR)
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(only_cnn))
    with pytest.raises(ValueError, match="four-stem vocal model"):
        fuse(a, b, mask_type="stems", stem_split="rhythm", match_tempo=False, device="cpu")
    both = tmp_path / "both"
    shutil.copytree(only_cnn, both)
    tiny_vocals_bs(both / "tiny-bs.safetensors", randomized=True)
    (both / "tiny-bs.json").write_text(json.dumps({"name": "tiny-bs", "kind": "vocals", "file": "tiny-bs.safetensors",
                                                   "default": False, "stems": 4}))
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(both))
    r = fuse(a, b, mask_type="stems", stem_split="rhythm", vocals_from="a", match_tempo=False, device="cpu")
    st = r.params["stems"]
    assert st["lead"] == "vocals+other" and st["backing"] == "drums+bass" and st["model"] == "tiny-bs"
    assert np.isfinite(r.fusion).all() and np.abs(r.fusion).max() <= 0.999


class _FakeStems:
    """A four-stem vocal engine giving fixed shares of the song (for the stem mashup's level decisions)."""

    max_stems, model_name = 4, "fake"

    def __init__(self, shares):
        self.shares = shares

    def run(self, src, cfg):
        from types import SimpleNamespace

        y = np.asarray(src[0], np.float32)[None]
        return SimpleNamespace(audio={k: v * y for k, v in self.shares.items()})


@pytest.mark.parametrize("balance", [True, False])
def test_stem_mashup_balance_keeps_the_backing_audible(monkeypatch, balance):
    """A rhythm split whose backing (B's drums + bass) is ~28 dB under A's lead: ``--balance`` (default on) gives
    A -6 dB and B +6 dB (the 12 dB limit), so B's share rises; off, the parts keep their own-song ratio."""
    from engines.fusion import api
    from engines.fusion.config import Config

    monkeypatch.setattr(api, "_vocal_engine", lambda eng, stems=2: _FakeStems(
        {"vocals": 0.6, "drums": 0.02, "bass": 0.02, "other": 0.36}))
    a, b = _song(3, 120, 220, 1), _song(3, 120, 660, 2)
    pa, pb, info = api._stem_parts(None, a, b, SR, Config(mask_type="stems", stem_split="rhythm", balance=balance))
    ea, eb = float(np.sum(pa.astype(np.float64) ** 2)), float(np.sum(pb.astype(np.float64) ** 2))
    if balance:
        bal = info["balance"]
        assert (bal["a_gain_db"], bal["b_gain_db"]) == (-6.0, 6.0)
        assert bal["a_share_after"] < bal["a_share_before"] and ea / (ea + eb) == pytest.approx(bal["a_share_after"], abs=1e-3)
    else:
        assert "balance" not in info and ea / (ea + eb) > 0.99
        np.testing.assert_allclose(pb, 0.04 * b, rtol=1e-5, atol=1e-7)  # B's drums + bass as they are


def test_stem_mashup_does_not_boost_a_near_empty_lead(monkeypatch):
    """An instrumental's "vocals" (under 5 % of its song: bleed) are not boosted by ``--balance``."""
    from engines.fusion import api
    from engines.fusion.config import Config

    monkeypatch.setattr(api, "_vocal_engine", lambda eng, stems=2: _FakeStems({"vocals": 0.1, "accompaniment": 0.9}))
    a, b = _song(3, 120, 220, 1), _song(3, 120, 660, 2)
    _, _, info = api._stem_parts(None, a, b, SR, Config(mask_type="stems"))
    assert info["lead_energy_share"] < api.LEAD_MIN_SHARE and "balance" not in info


def test_balance_gains():
    from engines.fusion.api import BALANCE_RANGE, balance_gains

    assert balance_gains(1.0, 1.0) == (1.0, 1.0, {"a_share_before": 0.5, "a_gain_db": 0.0, "b_gain_db": 0.0,
                                                  "a_share_after": 0.5})
    ga, gb, info = balance_gains(9.0, 1.0)  # A 9.5 dB louder: brought to one half
    assert ga * gb == pytest.approx(1.0) and 9 * ga**2 == pytest.approx(gb**2) and info["a_share_after"] == 0.5
    assert balance_gains(0.0, 1.0)[:2] == (1.0, 1.0)  # nothing to level
    assert BALANCE_RANGE[0] <= balance_gains(2.0, 1.0)[2]["a_share_after"] <= BALANCE_RANGE[1]


def test_arrangement_score():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from benchmarks.fusion_bench import arrangement_score

    a, b = _song(4, 120, 220, 1), _song(4, 97, 1320, 2)
    only_a = arrangement_score(a, a, b, SR)
    assert only_a["clean"] > 0.95 and only_a["share_a"] > 0.95 and not only_a["present"]
    switch = np.concatenate([a[: 2 * SR], b[2 * SR:]])
    s = arrangement_score(switch, a, b, SR)
    assert s["clean"] > 0.9 and s["present"]
    blend = arrangement_score(0.5 * (a + b), a, b, SR)
    assert blend["clean"] < s["clean"]


def test_downbeat_decode_and_net():
    from engines.fusion.downbeat import N_FEATURES, DownbeatNet, beat_features, decode

    logits = np.full(24, -3.0)
    logits[1::3] = 3.0
    assert decode(logits)[:2] == (3, 1)
    logits = np.full(24, -3.0)
    logits[2::4] = 3.0
    assert decode(logits)[:2] == (4, 2) and decode(logits, beats_per_bar=2)[:2] == (2, 0)
    y = _song(4, 120, 220, 1)
    f = beat_features(y, SR, np.arange(0, 4, 0.5))
    assert f.shape == (N_FEATURES, 8) and np.isfinite(f).all()
    assert DownbeatNet()(torch.from_numpy(f)[None]).shape == (1, 8)


def test_bar_features_see_a_chord_held_for_a_bar():
    """The bar-scale features: chords that change every 4 beats make the 4-beat chroma change peak on the bar
    lines; the network reads the feature count it was built with."""
    from engines.fusion.downbeat import N_FEATURES, N_FEATURES_BAR, DownbeatNet, beat_features, predict

    beat = 0.5
    t = np.arange(int(16 * 4 * beat * SR)) / SR
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (164.8, 207.7, 246.9)]
    y = np.zeros_like(t)
    for k in range(16):  # 16 bars of 4 beats, a new chord each bar, a soft pluck on every beat
        for j in range(4):
            s = slice(int((4 * k + j) * beat * SR), int((4 * k + j + 1) * beat * SR))
            tt = t[s] - t[s][0]
            y[s] = sum(np.sin(2 * np.pi * f * tt) for f in chords[k % 4]) * np.exp(-3 * tt) * 0.1
    beats = np.arange(64) * beat
    f = beat_features(y.astype(np.float32), SR, beats, N_FEATURES_BAR)
    assert f.shape == (N_FEATURES_BAR, 64) and np.isfinite(f).all()
    np.testing.assert_allclose(f[:N_FEATURES], beat_features(y.astype(np.float32), SR, beats), atol=1e-5)
    four = f[N_FEATURES + 2]  # the chroma change between the 4 beats before and the 4 from each beat
    inner = np.arange(4, 60)
    assert four[inner[inner % 4 == 0]].min() > four[inner[inner % 4 != 0]].max()
    with pytest.raises(ValueError, match="features"):
        beat_features(y, SR, beats, 7)
    net = DownbeatNet(features=N_FEATURES_BAR).eval()
    assert net.features == N_FEATURES_BAR and DownbeatNet().features == N_FEATURES
    bpb, ph = predict(net, y.astype(np.float32), SR, beats)
    assert bpb in (2, 3, 4) and 0 <= ph < bpb


def test_cli_help_shows_the_split_in_hz():
    import argparse

    from engines.fusion.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    text = " ".join(p.format_help().split())
    assert "0.2 = 200 Hz, 0.3 = 334 Hz" in text and "--vocals_from {a,b}" in text and "--balance" in text
