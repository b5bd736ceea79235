"""Fusion engine: codecs, complementary masks, cascade, losses, alignment, API and CLI."""
import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.fusion import align
from engines.audio import levels
from engines.fusion.api import complementarity, fuse
from engines.fusion.codec import MDCTCodec, get_codec
from engines.fusion.losses import FusionLoss, MelLoss, MultiResolutionSTFTLoss, RMSLoss
from engines.fusion.masking import MASK_TYPES, apply_complementary_mask, complementary_masks
from engines.fusion.model import CascadeFusion

from tests.engines.fusion.signals import click_song as _song

SR = 24000


# ------------------------------------------------------------------ codecs
def test_mdct_round_trip_shapes_and_grad():
    c = MDCTCodec()
    x = torch.randn(2, 1, 24000)
    z = c.encode(x)
    assert list(z.shape) == [2, 128, 189]
    assert c.frame_rate == 187.5 and c.sample_rate == 24000
    assert torch.max(torch.abs(c.decode(z, 24000) - x)) < 1e-5
    odd = torch.randn(1, 1, 1001)
    assert torch.max(torch.abs(c.decode(c.encode(odd), 1001) - odd)) < 1e-5
    zz = z.clone().requires_grad_(True)
    c.decode(zz).pow(2).sum().backward()
    assert zz.grad is not None and zz.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        c.encode(torch.randn(1, 2, 100))


def test_encodec_wrapper_from_local_folder(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    cfg = EncodecConfig(sampling_rate=24000, audio_channels=1, num_filters=8, hidden_size=128,
                        upsampling_ratios=[8, 5, 4, 2], target_bandwidths=[1.5, 3.0, 6.0])
    EncodecModel(cfg).save_pretrained(tmp_path / "enc")
    c = get_codec(str(tmp_path / "enc"))
    assert c.sample_rate == 24000 and c.frame_rate == 75.0 and c.name == "encodec_24khz"
    x = torch.randn(1, 1, 24000)
    z = c.encode(x)
    assert list(z.shape) == [1, 128, 75]
    zz = z.detach().requires_grad_(True)
    y = c.decode(zz, length=24000)
    assert list(y.shape) == [1, 1, 24000]
    y.pow(2).mean().backward()  # frozen weights, but gradients reach the latent through the decoder
    assert zz.grad is not None and zz.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in c.parameters())
    with pytest.raises(ValueError, match="cannot be downloaded|Cannot load"):
        get_codec(str(tmp_path / "missing_encodec"))


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_masks_are_complementary_and_disjoint(mask_type):
    z = torch.randn(3, 128, 700) * torch.linspace(0.1, 2, 700)
    m_in, m_tgt = complementary_masks(z, mask_type, temporal_segment=50, freq_split=0.3, channel_keep=0.5,
                                      energy_threshold=0.7, generator=torch.Generator().manual_seed(0))
    assert m_in.shape == z.shape and m_tgt.shape == z.shape
    assert set(torch.unique(m_in).tolist()) <= {0.0, 1.0} and set(torch.unique(m_tgt).tolist()) <= {0.0, 1.0}
    if mask_type in ("none", "stems"):  # stems: each latent is already one stem of its song
        assert torch.all(m_in == 1) and torch.all(m_tgt == 1)
        return
    assert torch.all(m_in * m_tgt == 0), "masks overlap"
    assert m_in.sum() > 0 and m_tgt.sum() > 0
    if mask_type == "hybrid":
        seg = (torch.arange(700) // 50) % 2 == 0
        low = torch.arange(128) < round(0.3 * 128)
        assert torch.equal(m_in[0].bool(), low[:, None] & seg[None, :])
        assert torch.equal(m_tgt[0].bool(), ~low[:, None] & ~seg[None, :])
    else:
        assert torch.all(m_in + m_tgt == 1), "masks do not cover the latent"
    if mask_type == "temporal":
        assert torch.all(m_in[:, :, :50] == 1) and torch.all(m_tgt[:, :, 50:100] == 1)
    if mask_type == "frequency":
        assert torch.all(m_in[:, :38] == 1) and torch.all(m_tgt[:, 38:] == 1)
    if mask_type == "spectral":
        assert torch.all(m_in[:, :, 0].sum(1) == 64)
        assert not torch.equal(m_in[0], m_in[1])  # drawn per item
    if mask_type == "energy":
        e = z.pow(2).mean(1)
        hi = m_in[:, 0, :].bool()
        assert torch.all(e[hi].min() >= e[~hi].max() - 1e-6) or all(
            e[b][hi[b]].min() >= e[b][~hi[b]].max() for b in range(3))
        assert abs(hi.float().mean().item() - 0.3) < 0.02


def test_masks_follow_segment_boundaries_and_log(caplog):
    za, zb = torch.randn(1, 128, 100), torch.randn(1, 128, 100)
    with caplog.at_level(logging.INFO, logger="engines.fusion.masking"):
        mi, mt, (m_in, m_tgt) = apply_complementary_mask(za, zb, "temporal", temporal_segment=150, frame_rate=187.5,
                                                         verbose=True, return_masks=True)
    text = caplog.text
    assert "Complementary Masking Applied:" in text and "Type: temporal" in text
    assert "Description: Alternating time segments" in text and "Segment length: 150 frames (~0.8s)" in text
    assert torch.equal(mi, za) and torch.all(mt == 0)  # one 150-frame segment: all input
    m_in, _ = complementary_masks(za, "temporal", segments=[10, 40, 70])
    assert m_in[0, 0, :10].eq(1).all() and m_in[0, 0, 10:40].eq(0).all() and m_in[0, 0, 40:70].eq(1).all()
    with pytest.raises(ValueError, match="Unknown mask_type"):
        complementary_masks(za, "diagonal")
    with pytest.raises(ValueError, match="differ in shape"):
        apply_complementary_mask(za, zb[..., :50])


# ------------------------------------------------------------------ model and losses
def test_cascade_starts_as_direct_fusion_and_gradients_flow_through_losses_and_decoder():
    torch.manual_seed(0)
    codec = MDCTCodec()
    net = CascadeFusion(d_model=32, num_stages=2, num_transformer_layers=1, nhead=2, dim_feedforward=64)
    a, b = torch.randn(2, 1, 6000) * 0.1, torch.randn(2, 1, 6000) * 0.1
    za, zb = codec.encode(a), codec.encode(b)
    m_in, m_tgt = complementary_masks(za, "temporal", temporal_segment=10)
    z = net(za, zb, m_in, m_tgt)
    assert z.shape == za.shape
    assert torch.allclose(z, m_in * za + m_tgt * zb, atol=1e-6)  # zero-initialised stage outputs
    y = codec.decode(z, 6000)
    out = FusionLoss(1.0, 1.0, 0.5, 0.5)(y, a, b)
    assert set(out) == {"loss", "rms_input", "rms_target", "spectral", "mel"}
    out["loss"].backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    with pytest.raises(ValueError):
        net(za, zb[..., :5], m_in, m_tgt)


def test_losses_zero_for_identical_and_positive_otherwise():
    x = torch.randn(2, 1, 8000) * 0.1
    y = torch.randn(2, 1, 8000) * 0.1
    for loss in (RMSLoss(), MultiResolutionSTFTLoss(), MelLoss()):
        assert float(loss(x, x)) < 1e-3
        assert float(loss(x, y)) > 0.05
    assert list(RMSLoss(reduction="none")(x, y).shape) == [2]


def test_chunked_forward_matches_shape():
    net = CascadeFusion(d_model=32, num_stages=1, num_transformer_layers=1, nhead=2, dim_feedforward=64)
    z = torch.randn(1, 128, 300)
    m = torch.ones_like(z)
    out = net.forward_chunked(z, z, m, 1 - m, window=128, overlap=16)
    assert out.shape == z.shape and torch.allclose(out, z, atol=1e-5)


# ------------------------------------------------------------------ alignment
def test_beats_tempo_stretch_key_loudness():
    y = _song(8.0, bpm=120)
    info = align.track_beats(y, SR)
    assert abs(info.tempo - 120) < 3
    assert info.downbeats and abs(info.downbeats[1] - info.downbeats[0] - 2.0) < 0.1
    assert abs(align.tempo_ratio(100, 120) - 1.2) < 1e-6
    assert abs(align.tempo_ratio(60, 125) - 125 / 120) < 1e-6  # half-tempo error folded
    z = align.time_stretch(y, 1.25)
    assert abs(len(z) - len(y) / 1.25) <= 1
    assert abs(align.track_beats(z, SR).tempo - 150) < 4
    p = align.pitch_shift(y, SR, 2)
    assert len(p) == len(y) and np.isfinite(p).all()
    c, d = align.KeyInfo(0, "major", 1.0), align.KeyInfo(9, "minor", 1.0)
    assert align.key_shift(d, c) == 0 and align.key_shift(align.KeyInfo(2, "major", 1), c) == -2
    out, gain = levels.match_loudness(y * 0.1, SR, levels.lufs(y, SR))
    assert abs(levels.lufs(out, SR) - levels.lufs(y, SR)) < 0.5 and gain > 15
    m_in, m_tgt = complementary_masks(torch.randn(1, 128, 200), "temporal", temporal_segment=20)
    s_in, s_tgt = align.smooth_masks(m_in, m_tgt, 4)
    assert torch.allclose(s_in + s_tgt, torch.ones_like(s_in)) and 0 < s_in.min() + 1 and s_in[0, 0, 5] == 1


# ------------------------------------------------------------------ API and CLI
@pytest.fixture()
def songs(tmp_path):
    a = _song(6.0, 120, 220, seed=1)
    b = _song(7.0, 100, 660, sr=44100, seed=2)
    sf.write(tmp_path / "a.wav", a, SR)
    sf.write(tmp_path / "b.wav", np.stack([b, b * 0.5], 1), 44100)  # other rate, stereo
    return tmp_path / "a.wav", tmp_path / "b.wav"


@pytest.mark.parametrize("mask_type", ["temporal", "frequency", "spectral", "energy", "hybrid", "none"])
def test_fuse_direct_every_mask(songs, mask_type):
    a, b = songs
    r = fuse(a, b, mask_type=mask_type)
    assert r.sample_rate == SR and r.audio["fusion"].shape == (1, 6 * SR) and np.isfinite(r.fusion).all()
    assert np.max(np.abs(r.fusion)) <= 0.999
    assert r.region_map.shape[0] == 128 and r.region_map.shape[1] == len(r.region_times)
    assert abs(r.params["tempo"]["rate"] - 1.2) < 0.06
    js = r.to_json()
    json.dumps(js)
    if mask_type == "none":
        assert r.share()["both"] == 1.0
    else:
        assert r.share()["both"] == 0.0 and r.share()["A"] > 0 and r.share()["B"] > 0
        assert complementarity(r)["complementarity"] >= 0.9
    if mask_type == "temporal":
        assert {s["source"] for s in r.segments} == {"A", "B"}
        assert r.params["segment_bounds_s"]


def test_unity_direct_reproduces_input(songs):
    a, _ = songs
    r = fuse(a, a, mask_type="temporal", crossfade_ms=20)
    y = sf.read(a, dtype="float32")[0]
    rms = float(np.sqrt(np.mean((r.fusion - y) ** 2)))
    assert rms < 1e-3


def test_learned_mode_with_checkpoint_and_cli(songs, tmp_path):
    from engines.checkpoint import save_model
    from launch import main

    net = CascadeFusion(d_model=32, num_stages=1, num_transformer_layers=1, nhead=2, dim_feedforward=64)
    ck = save_model(net, tmp_path / "tiny.safetensors", metadata={"codec": "builtin", "name": "tiny"})
    a, b = songs
    r = fuse(a, b, mode="learned", checkpoint=str(ck), mask_type="frequency")
    direct = fuse(a, b, mode="direct", mask_type="frequency")
    assert np.max(np.abs(r.fusion - direct.fusion)) < 1e-4  # untrained cascade = direct fusion
    assert r.params["model"]["file"] == "tiny.safetensors"
    out = tmp_path / "out"
    rc = main(["fuse", "--a", str(a), "--b", str(b), "--out_dir", str(out), "--mask_type", "hybrid",
               "--mode", "learned", "--checkpoint", str(ck), "--match_key", "true"])
    assert rc == 0
    y, sr = sf.read(out / "fusion.wav")
    info = json.loads((out / "fusion.json").read_text())
    assert sr == SR and len(y) == 6 * SR
    assert info["mask_type"] == "hybrid" and "key" in info["params"] and info["regions"]["share"]["neither"] > 0.3
    assert main(["fuse", "--a", str(a), "--b", str(tmp_path / "nope.wav"), "--out_dir", str(out)]) == 2


def test_fuse_rejects_bad_input(songs, tmp_path):
    from engines.audio.errors import SilentAudioError

    a, _ = songs
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(SilentAudioError):
        fuse(a, tmp_path / "silent.wav")
    with pytest.raises(ValueError, match="mask_type"):
        fuse(a, a, mask_type="diagonal")
    with pytest.raises(ValueError, match="mode"):
        fuse(a, a, mode="magic")
    short = (np.random.default_rng(0).standard_normal(SR // 2).astype(np.float32) * 0.1, 16000)
    r = fuse(a, short, mask_type="temporal")  # short B at another rate is looped to A's length
    assert len(r.fusion) == 6 * SR
