"""The fusion engine's contract: Config, Engine.load/run, Result.save (the CLI's files), the CLI's --preset and
--device, the chunked cascade against the whole one (randomised weights), the training target's band mapping,
the shared key profiles and the beat tracker against librosa's."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.fusion import Config

from tests.engines.fusion.signals import click_song as _song

SR = 24000


@pytest.fixture()
def songs(tmp_path):
    sf.write(tmp_path / "a.wav", _song(4.0, 120, 220, seed=1), SR)
    sf.write(tmp_path / "b.wav", _song(4.0, 100, 660, seed=2), SR)
    return tmp_path / "a.wav", tmp_path / "b.wav"


# ------------------------------------------------------------------ config
def test_config_validates_and_presets():
    assert Config().mask_type == "temporal" and Config().mode == "direct" and Config().crossfade_ms == 20.0
    for bad in (dict(segment_length=0), dict(mask_freq_split=1.5), dict(beats_per_bar=1), dict(mask_type="diagonal"),
                dict(mode="magic"), dict(seed=-1), dict(crossfade_ms=float("nan"))):
        with pytest.raises(ValueError, match="Invalid setting: " + next(iter(bad))):
            Config(**bad)
    assert Config(beats_per_bar=0).beats_per_bar == 0 and Config(segment_length=4.0).segment_length == 4
    assert Config.preset("quick").match_tempo is False and Config.preset("mashup", segment_length=3).segment_length == 3
    with pytest.raises(ValueError, match="Unknown setting"):
        Config.from_dict({"mask": "temporal"})


def test_engine_run_result_and_save(songs, tmp_path):
    from engines.fusion import Engine, Result

    a, b = songs
    eng = Engine.load(device="cpu")
    assert str(eng.device) == "cpu" and Engine.INPUTS == ("a", "b")
    with pytest.raises(ValueError, match="Missing input: b"):
        eng.run({"a": a})
    with pytest.raises(ValueError, match="not c"):
        eng.run({"a": a, "b": b, "c": a})
    res = eng.run({"a": a, "b": b}, "quick", mask_type="frequency")
    assert isinstance(res, Result) and list(res.audio) == ["fusion"] and res.audio["fusion"].shape == (1, 4 * SR)
    assert res.params["mask_type"] == "frequency" and res.params["match_tempo"] is False and "tempo" not in res.params
    assert res.timings["total"] > 0 and res.params["device"] == "cpu"
    out = tmp_path / "out"
    files = res.save(out, inputs=[a, b])
    assert sorted(p.name for p in out.iterdir()) == ["fusion.json", "fusion.wav"] == sorted(files)
    info = json.loads((out / "fusion.json").read_text())
    assert info["a"] == str(a) and info["b"] == str(b) and info["mask_type"] == "frequency"
    # the default split 0.3 on the log axis = 334 Hz: A holds the 4 bands of 93.75 Hz below it
    assert info["regions"]["share"]["A"] == pytest.approx(4 / 128, abs=1e-4) and info["sample_rate"] == SR
    assert info["params"]["split_hz"] == pytest.approx(333.7, abs=0.1)
    assert info["timings"]["total"] > 0 and info["stems"]["fusion"] == {"channels": 1, "samples": 4 * SR}
    y, sr = sf.read(out / "fusion.wav", dtype="float32")
    assert sr == SR and np.max(np.abs(y - res.fusion)) < 1e-4  # PCM_16
    studio = tmp_path / "studio"
    res.save(studio, inputs=[a, b], extra=res.source_files())  # what the Fuse tab writes, in one stage
    assert sorted(p.name for p in studio.iterdir()) == ["a.wav", "b_aligned.wav", "fusion.json", "fusion.wav"]
    with pytest.raises(ValueError, match="input"):  # never over an input
        res.save(a.parent, inputs=[a, b], extra={"a.wav": lambda p: None})


def test_cli_preset_device_and_files(songs, tmp_path, capsys):
    from launch import main

    a, b = songs
    out = tmp_path / "out"
    rc = main(["fuse", "--a", str(a), "--b", str(b), "--out_dir", str(out), "--preset", "quick",
               "--mask_type", "energy", "--device", "cpu", "--subtype", "24"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["fusion.json", "fusion.wav"]
    info = json.loads((out / "fusion.json").read_text())
    p = info["params"]
    assert p["mask_type"] == "energy" and p["match_tempo"] is False and p["segment_unit"] == "frames"  # preset + flag
    assert p["device"] == "cpu" and sf.info(out / "fusion.wav").subtype == "PCM_24"
    assert "Fused 4.0 s (direct, energy)" in capsys.readouterr().out


# ------------------------------------------------------------------ chunked cascade
def _crossfade_reference(net, z_in, z_tgt, m_in, m_tgt, window, overlap):
    """The cascade's former hand-written cross-fade loop (before run_chunked)."""
    B, C, N = z_in.shape
    if N <= window:
        return net(z_in, z_tgt, m_in, m_tgt)
    starts = list(range(0, N - window, window - overlap)) + [N - window]
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    out, weight = torch.zeros_like(z_in), torch.zeros(N)
    for s in starts:
        y = net(*(x[..., s:s + window] for x in (z_in, z_tgt, m_in, m_tgt)))
        w = torch.ones(window)
        if s > 0:
            w[:overlap] = ramp
        if s + window < N:
            w[-overlap:] = ramp.flip(0)
        out[..., s:s + window] += y * w
        weight[s:s + window] += w
    return out / weight


@pytest.mark.parametrize("n", [100, 128, 129, 300, 517])
def test_chunked_cascade_versus_whole_and_windows(n):
    from engines.testing import tiny_fusion

    net = tiny_fusion(seed=3)
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(2, 128, n, generator=g), torch.randn(2, 128, n, generator=g)
    m = (torch.rand(2, 128, n, generator=g) > 0.5).float()
    with torch.no_grad():
        whole = net(z1, z2, m, 1 - m)
        got = net.forward_chunked(z1, z2, m, 1 - m, window=128, overlap=16)
        ref = _crossfade_reference(net, z1, z2, m, 1 - m, 128, 16)
        direct = m * z1 + (1 - m) * z2
    assert got.shape == z1.shape
    assert torch.allclose(got, ref, atol=1e-5)
    assert (whole - direct).abs().mean() > 0.05  # the weights are far from the direct fusion
    if n <= 128:
        assert torch.allclose(got, whole, atol=1e-6)
    else:  # before the second window starts, each frame is the model on the first window alone
        with torch.no_grad():
            first = net(z1[..., :128], z2[..., :128], m[..., :128], 1 - m[..., :128])
        alone = min(128 - 16, n - 128)
        assert torch.allclose(got[..., :alone], first[..., :alone], atol=1e-5)
        assert not torch.allclose(got, whole, atol=1e-3)  # attention sees the window, not the whole song


# ------------------------------------------------------------------ targets, key, beats
def test_stft_masks_band_mapping_matches_the_former_formula():
    from engines.fusion.codec import MDCTCodec
    from engines.fusion.targets import arrangement, stft_masks

    codec = MDCTCodec()
    m = (torch.rand(1, 128, 50, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    for n_fft in (256, 512, 1024, 2048):
        F_ = n_fft // 2 + 1
        band = (torch.arange(F_) * codec.sample_rate / n_fft / (codec.sample_rate / 2 / 128)).long().clamp(0, 127)
        assert torch.equal(stft_masks(m, codec, n_fft), m[:, band, :])
    a = torch.randn(1, 1, 6400) * 0.1
    ref, ref_in, ref_tgt, _ = arrangement(a, a, torch.ones(1, 128, 51), torch.zeros(1, 128, 51), codec)
    assert torch.allclose(ref, a, atol=1e-5) and ref_tgt.abs().max() < 1e-6  # all of A: the arrangement is A


def test_key_profiles_are_music21s_and_one_table():
    from engines.audio import key
    from engines.fusion import align

    music21 = pytest.importorskip("music21")
    ks = music21.analysis.discrete.AardenEssen()
    major, minor = key.profiles("aarden")
    assert np.array_equal(major, ks.getWeights("major")) and np.array_equal(minor, ks.getWeights("minor"))
    kk = music21.analysis.discrete.KrumhanslKessler()
    major, minor = key.profiles("krumhansl")
    assert np.allclose(major, kk.getWeights("major")) and np.allclose(minor, kk.getWeights("minor"))
    # a G major chroma: G B D strongest
    hist = np.full(12, 0.1)
    hist[[7, 11, 2]] = [1.0, 0.7, 0.8]
    assert key.best_key(hist)[1:] == (7, "major")
    with np.errstate(invalid="ignore", divide="ignore"):
        assert key.best_key(np.ones(12)) == (-2.0, 0, "major")  # flat: no finite correlation
    t = np.arange(3 * SR) / SR
    y = sum(np.sin(2 * np.pi * f * t) for f in (392.0, 493.88, 587.33)).astype(np.float32) * 0.1
    assert align.estimate_key(y, SR).name == "G major"


@pytest.mark.parametrize("bpm", [100.0, 120.0, 137.0])
def test_beat_grid_agrees_with_librosa(bpm):
    """The docstring of align.track_beats: on clear beats the tempo is within one lag step of librosa's
    and closer to the truth, and every librosa beat has one of ours within four frames."""
    import librosa

    from engines.fusion import align

    y = _song(10.0, bpm, seed=3)
    ours = align.track_beats(y, SR)
    tempo, beats = librosa.beat.beat_track(y=y, sr=SR, hop_length=align.HOP, units="time")
    tempo = float(np.atleast_1d(tempo)[0])
    fps = SR / align.HOP
    lag = 60 * fps / tempo
    step = 60 * fps / (lag - 1) - tempo  # librosa's tempo resolution there
    assert abs(ours.tempo - tempo) <= step
    assert abs(ours.tempo - bpm) <= abs(tempo - bpm) + 0.5
    gaps = [np.min(np.abs(np.asarray(ours.beats) - t)) for t in beats]
    assert max(gaps) * fps <= 4.0
