"""Vocal isolation engine: model shapes, batched == frame-by-frame, chunked == whole-song, mixture
consistency, rates/channels, bad input, checkpoints/registry, CLI on generated songs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from engines import registry
from engines.audio.errors import AudioError, OverwriteInputError, SilentAudioError, TooShortError
from engines.checkpoint import CheckpointError, save_model
from engines.testing import TinyNet, tiny_vocals
from engines.vocals import api, cli
from engines.vocals.api import VocalIsolator
from engines.vocals.features import HParams, features, target_mask
from engines.vocals.model import VocalMaskCNN
from tests.engines.vocals_fixtures import synth_song, write_song_folder

torch.set_num_threads(1)


def tiny_net(seed: int = 0) -> VocalMaskCNN:
    """The engines' tiny vocals model (width 16, non-trivial BatchNorm statistics)."""
    return tiny_vocals(seed=seed)


@pytest.fixture(scope="module")
def iso():
    return VocalIsolator(net=tiny_net())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    net = tiny_net()
    save_model(net, d / "vocals-tiny.safetensors", metadata={"trained_on": "random init", "kind": "vocals"})
    registry.register({"name": "vocals-tiny", "kind": "vocals", "file": "vocals-tiny.safetensors",
                       "sample_rate": 22050, "default": True, "description": "random test model"}, models_dir=d)
    return d


def song(seconds=3.0, sr=22050, channels=1, seed=0):
    v, a = synth_song(seconds, 22050, seed)
    mix = v + a
    if sr != 22050:
        from engines.audio.io import resample
        mix = resample(mix[None], 22050, sr)[0]
    return np.stack([mix * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)


# ---------------------------------------------------------------- model
def test_model_shapes_single_window_and_many_frames():
    net = tiny_net()
    assert list(net(torch.rand(2, 513, 25)).shape) == [2, 513, 1]
    assert list(net(torch.rand(1, 513, 60)).shape) == [1, 513, 36]
    with pytest.raises(ValueError):
        net(torch.rand(1, 513, 24))
    with pytest.raises(ValueError):
        net(torch.rand(1, 512, 30))


def test_model_with_2d_stem_keeps_25_frame_context():
    net = VocalMaskCNN(res_dims=[8, 8], dilations=[4, 6], stem=[4, 4]).eval()
    assert list(net(torch.rand(2, 513, 25)).shape) == [2, 513, 1]
    assert list(net(torch.rand(1, 513, 40)).shape) == [1, 513, 16]


def test_model_rejects_bad_config():
    with pytest.raises(ValueError):
        VocalMaskCNN(res_dims=[8, 8], dilations=[1, 2])  # receptive field 7, not 25
    with pytest.raises(ValueError):
        VocalMaskCNN(res_dims=[8, 8, 8], dilations=[1, 2, 4, 5])


def test_each_frame_sees_only_its_own_25_frame_window():
    net = tiny_net()
    x = torch.rand(1, 513, 60)
    y = net(x)
    x2 = x.clone()
    x2[..., 40:] = 0  # frames >= 40 only influence outputs whose window reaches them (i + 24 >= 40)
    y2 = net(x2)
    assert torch.allclose(y[..., :16], y2[..., :16], atol=1e-6)
    assert not torch.allclose(y[..., 16], y2[..., 16])


def test_hparams_names_round_trip():
    hp = HParams()
    for name in ("batch_size", "nepochs", "fix_learning_rate", "mask_threshold", "ref_level_db", "use_preemphasis",
                 "res_dims", "save_every_epoch", "eval_every_epoch", "num_evals", "stft_stride", "mask_at_eval"):
        assert name in hp.to_dict()
    assert HParams.from_dict({**hp.to_dict(), "unknown": 1}) == hp
    assert (hp.sample_rate, hp.n_fft, hp.hop_size, hp.context) == (22050, 1024, 256, 25)


def test_features_range_and_target_mask():
    hp = HParams()
    v, a = synth_song(2.0)
    f = features(torch.from_numpy(v + a), hp)
    assert f.shape == (513, 2 * 22050 // 256 + 1) and f.min() >= 0 and f.max() <= 1
    vm = torch.tensor([[1.0, 0.2, 0.0]])
    am = torch.tensor([[0.5, 0.5, 0.0]])
    assert target_mask(vm, am, hp).tolist() == [[True, False, False]]


# ---------------------------------------------------------------- inference
def test_batched_equals_frame_by_frame(iso):
    feats = torch.rand(2, 513, 70)
    a = iso.predict_mask(feats)
    b = iso.predict_mask(feats, frame_by_frame=True)
    assert a.shape == (2, 513, 70)
    assert torch.allclose(a, b, atol=1e-5)


def test_chunked_equals_whole_song_and_mixture_consistency():
    net = tiny_net()
    x = song(7.0, 44100, 2)
    whole = VocalIsolator(net=net, chunk_seconds=100).separate(x, 44100)
    calls = []
    chunked = VocalIsolator(net=net, chunk_seconds=1.0).separate(x, 44100, progress=lambda f, m: calls.append(f))
    assert len(calls) >= 7 and calls[-1] == 1.0
    assert np.abs(whole.vocals - chunked.vocals).max() < 1e-5
    assert np.allclose(whole.mask, chunked.mask, atol=1e-5)
    assert np.array_equal(chunked.vocals + chunked.accompaniment, x) or \
        np.abs(chunked.vocals + chunked.accompaniment - x).max() < 1e-6
    assert chunked.mask.shape[0] == 513 and 0 <= chunked.mask.min() and chunked.mask.max() <= 1


@pytest.mark.parametrize("sr,channels", [(44100, 2), (16000, 1), (48000, 6), (22050, 1)])
def test_output_at_input_rate_and_channels(iso, sr, channels):
    x = song(1.5, sr, channels)
    r = iso.separate(x, sr)
    assert r.vocals.shape == x.shape and r.accompaniment.shape == x.shape and r.sample_rate == sr
    assert np.abs(r.vocals + r.accompaniment - x).max() < 1e-6
    assert r.rtf > 0 and r.duration_s == pytest.approx(1.5, abs=1e-3)


def test_binary_mask_is_binary(iso):
    r = iso.separate(song(1.5), 22050, binary_mask=True, sharpen=1.0)
    assert r.binary_mask
    cols = r.mask  # decimation can average 0/1 columns only when the song is long; here it is not
    assert set(np.unique(cols)).issubset({0.0, 1.0})
    soft = iso.separate(song(1.5), 22050)
    assert not soft.binary_mask and not set(np.unique(soft.mask)).issubset({0.0, 1.0})


def test_bad_inputs(iso, tmp_path):
    with pytest.raises(SilentAudioError):
        iso.separate(np.zeros((1, 44100), np.float32), 44100)
    with pytest.raises(TooShortError):
        iso.separate(song(0.5), 22050)
    bad = song(1.5)
    bad[0, 100] = np.nan
    with pytest.raises(AudioError):
        iso.separate(bad, 22050)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file at all" * 10)
    with pytest.raises(AudioError):
        iso.isolate(junk)
    with pytest.raises(AudioError):
        iso.isolate(tmp_path / "missing.wav")


def test_wrong_kind_checkpoint_and_registry(ckpt, tmp_path, monkeypatch):
    other = tmp_path / "tiny.safetensors"
    save_model(TinyNet(), other)
    with pytest.raises(CheckpointError, match="not a VocalMaskCNN"):
        VocalIsolator(other)
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(ckpt))
    iso = VocalIsolator()  # the registry's default
    assert iso.model_name == "vocals-tiny" and iso.hp.res_dims == [16, 16, 16, 16]
    assert iso.metadata["trained_on"] == "random init"
    x = song(1.5)
    assert np.allclose(iso.separate(x, 22050).vocals, VocalIsolator(net=tiny_net()).separate(x, 22050).vocals, atol=1e-6)


def test_save_never_overwrites_input_and_keeps_sum(iso, tmp_path):
    x = song(1.5) * 3.0  # loud: the stems must be scaled together
    p = tmp_path / "loud.wav"
    sf.write(p, x.T, 22050, subtype="FLOAT")
    r = iso.isolate(p)
    paths = r.save(tmp_path / "out")
    v, _ = sf.read(paths["vocals"], dtype="float32")
    a, _ = sf.read(paths["accompaniment"], dtype="float32")
    assert max(np.abs(v).max(), np.abs(a).max()) <= 1.0
    ratio = (v + a) / np.where(np.abs(x[0]) > 0.05, x[0], np.nan)
    assert np.nanstd(ratio) < 2e-3  # one common gain
    assert np.abs(r.vocals + r.accompaniment).max() > 1.2  # applied while writing: the result itself is untouched
    with pytest.raises(OverwriteInputError):  # an input named vocals.wav in the output folder
        api.VocalsResult(**{**r.__dict__, "source": str(tmp_path / "vocals.wav")}).save(tmp_path)


def test_cli_folder_and_bad_file(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(ckpt))
    songs = write_song_folder(tmp_path / "in", 2, 1.5)
    folder = tmp_path / "flat"
    folder.mkdir()
    for d in sorted(songs.iterdir()):
        (folder / f"{d.name}.wav").write_bytes((d / "mixture.wav").read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    rc = cli.main(["--input", str(folder), "--out_dir", str(tmp_path / "out"), "--threads", "1", "--quiet"])
    assert rc == 2  # one song failed, the others were written
    for name in ("song_000", "song_001"):
        assert (tmp_path / "out" / name / "vocals.wav").is_file()
        assert (tmp_path / "out" / name / "accompaniment.wav").is_file()
    assert not (tmp_path / "out" / "broken").exists()
    assert "broken.wav" in capsys.readouterr().err
    # one input -> files directly in out_dir, at the input's rate and channels
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, song(1.5, 44100, 2).T, 44100)
    assert cli.main(["-i", str(stereo), "-o", str(tmp_path / "one"), "--binary_mask", "--quiet"]) == 0
    info = sf.info(tmp_path / "one" / "vocals.wav")
    assert (info.samplerate, info.channels) == (44100, 2)


def test_launch_maps_command(ckpt, tmp_path, monkeypatch):
    import launch

    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(ckpt))
    x = tmp_path / "mono.wav"
    sf.write(x, song(1.5)[0], 22050)
    assert launch.main(["vocals", "-i", str(x), "-o", str(tmp_path / "o"), "--quiet"]) == 0
    assert launch.main(["vocals", "-i", str(x), "-o", str(tmp_path / "o2"), "--checkpoint", str(tmp_path / "no.safetensors")]) == 2
    assert json.loads(json.dumps(registry.entries("vocals", ckpt)))[0]["name"] == "vocals-tiny"
