"""The vocals engine under the contract of issue #14: Config (bounds, presets), Engine.load/run, Result.save,
the CLI's generated flags, the studio's generated widgets, and chunked == whole with non-trivial weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from engines import options
from engines.base import Result as BaseResult
from engines.testing import tiny_vocals
from engines.vocals import Config, Engine, Result, VocalIsolator, VocalsResult, cli

torch.set_num_threads(1)


def mix(seconds=2.0, sr=22050, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.05 * rng.standard_normal((channels, t.size)) + 0.3 * np.sin(2 * np.pi * 440 * t)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def eng():
    return Engine(net=tiny_vocals())


def test_exports_and_aliases():
    assert Engine is VocalIsolator and Result is VocalsResult
    assert issubclass(Result, BaseResult) and Engine.Config is Config and Engine.NAME == "vocals"


def test_config_bounds_and_presets():
    assert Config() == Config(binary_mask=False, sharpen=None, chunk_seconds=30.0, threads=None)
    for kw, word in [({"sharpen": 0.0}, "sharpen"), ({"sharpen": float("nan")}, "sharpen"),
                     ({"chunk_seconds": 0.5}, "chunk_seconds"), ({"threads": 0}, "threads"),
                     ({"binary_mask": "yes"}, "binary_mask")]:
        with pytest.raises(ValueError, match=f"Invalid setting: {word}"):
            Config(**kw)
    assert Config.preset("hard").binary_mask is True
    assert Config.preset("sharp").sharpen == 2.0 and not Config.preset("sharp").binary_mask
    assert Config.preset("soft", sharpen=1.5).sharpen == 1.5
    with pytest.raises(ValueError, match="Unknown preset"):
        Config.preset("loud")


def test_cli_flags_come_from_the_config():
    p = cli.get_parser()
    d = options.cli_defaults(p)
    for f, v in Config().to_dict().items():
        assert d[f] == v, f
    base = ["-i", "x.wav", "-o", "out"]
    assert options.from_args(Config, p.parse_args(base)) == Config()
    assert options.from_args(Config, p.parse_args(base + ["--binary_mask"])).binary_mask is True
    assert options.from_args(Config, p.parse_args(base + ["--preset", "hard"])).binary_mask is True
    # an explicit flag wins over the preset
    assert options.from_args(Config, p.parse_args(base + ["--preset", "hard", "--binary_mask", "false"])) == \
        Config(binary_mask=False)
    assert p.parse_args(base).device == "auto"
    with pytest.raises(SystemExit):
        p.parse_args(base + ["--sharpen", "0"])


def test_studio_values_to_config():
    """The Vocals tab's widget values back into a Config (the widgets' defaults: tests/test_config_defaults.py)."""
    from studio import widgets as W

    names = ("binary_mask", "sharpen")  # studio.tabs.vocals.OPTIONS
    # an emptied number box (sent as 0) means "the model's sharpen"; the checkbox's False is the default
    assert W.to_config(Config, names, [False, 0]) == W.to_config(Config, names, [False, None]) == Config()
    assert W.to_config(Config, names, [True, 2.0]) == Config(binary_mask=True, sharpen=2.0)
    with pytest.raises(ValueError, match="Invalid setting: sharpen"):
        W.to_config(Config, names, [False, -1.0])


def test_run_result_contract(eng):
    x = mix(2.0, 44100, 2)
    r = eng.run((x, 44100), "sharp")
    assert isinstance(r, VocalsResult) and set(r.audio) == {"vocals", "accompaniment"}
    assert r.vocals.shape == r.accompaniment.shape == x.shape and r.sample_rate == 44100
    assert np.abs(r.vocals + r.accompaniment - x).max() < 1e-6
    assert r.timings["total"] > 0 and r.elapsed_s == r.timings["total"] and r.duration_s == pytest.approx(2.0)
    assert r.params["sharpen"] == 2.0 and r.params["binary_mask"] is False and r.params["device"] == "cpu"
    assert r.params["chunk_seconds"] == 30.0 and r.params["model"] == "in-memory"
    j = json.loads(json.dumps(r.to_json()))
    assert j["stems"]["vocals"] == {"channels": 2, "samples": x.shape[1]} and j["binary_mask"] is False
    # the same as the older entry point with the same settings
    old = eng.separate(x, 44100, sharpen=2.0)
    np.testing.assert_array_equal(old.vocals, r.vocals)
    with pytest.raises(ValueError, match="Invalid setting: sharpen"):
        eng.run((x, 44100), sharpen=-1.0)
    with pytest.raises(ValueError, match="sr="):
        eng.run(x)
    with pytest.raises(ValueError, match="takes the inputs mix"):
        eng.run({"song": (x, 44100)})


def test_load_options_are_the_engine_defaults(tmp_path):
    path = tiny_vocals(tmp_path / "tiny.safetensors")
    e = Engine.load(path, device="cpu", chunk_seconds=2.0, binary_mask=True)
    assert e.model_name == "tiny" and e.config == Config(chunk_seconds=2.0, binary_mask=True)
    assert e.config_of("sharp") == Config(chunk_seconds=2.0, binary_mask=False, sharpen=2.0)
    assert e.config_of(None, sharpen=3.0).chunk_seconds == 2.0
    r = e.run((mix(), 22050))
    assert r.binary_mask and set(np.unique(r.mask)).issubset({0.0, 1.0})
    with pytest.raises(ValueError, match="Invalid setting: chunk_seconds"):
        Engine.load(path, device="cpu", chunk_seconds=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_refused_without_a_gpu(tmp_path):
    with pytest.raises(ValueError, match="no usable CUDA"):
        Engine.load(tiny_vocals(tmp_path / "t.safetensors"), device="cuda")
    assert str(Engine(net=tiny_vocals()).device) == "cpu"


def test_save_writes_todays_files_through_one_stage(eng, tmp_path):
    x = mix(1.5, 22050, 2) * 8.0  # loud: both stems scaled by one factor for 16-bit files
    src = tmp_path / "loud.wav"
    sf.write(src, x.T, 22050, subtype="FLOAT")
    r = eng.run(src)
    assert r.source == str(src)
    out = tmp_path / "out"
    paths = r.save(out, extra={"mask.npy": lambda f: np.save(f, r.mask, allow_pickle=False)})
    assert sorted(p.name for p in out.iterdir()) == ["accompaniment.wav", "mask.npy", "vocals.wav"]
    assert paths["vocals"] == paths["vocals.wav"] == out / "vocals.wav"
    v, _ = sf.read(paths["vocals"], dtype="float32")
    a, _ = sf.read(paths["accompaniment"], dtype="float32")
    assert max(np.abs(v).max(), np.abs(a).max()) <= 0.9991
    ratio = (v + a) / np.where(np.abs(x.T) > 0.05, x.T, np.nan)
    expected = 0.999 / max(np.abs(r.vocals).max(), np.abs(r.accompaniment).max())
    assert expected < 0.9 and np.nanstd(ratio) < 2e-3  # one common gain
    assert np.nanmean(ratio) == pytest.approx(expected, abs=2e-3)
    np.testing.assert_array_equal(np.load(out / "mask.npy"), r.mask)
    # float output is not scaled
    fl = r.save(tmp_path / "float", subtype="FLOAT")
    np.testing.assert_allclose(sf.read(fl["vocals"], dtype="float32")[0], r.vocals.T, atol=1e-7)
    # an input among the outputs: refused, nothing written
    with pytest.raises(ValueError):
        r.save(tmp_path / "clash", inputs=[tmp_path / "clash" / "vocals.wav"])
    assert not list((tmp_path / "clash").glob("*.wav"))


def test_chunked_equals_whole_with_randomized_weights():
    net = tiny_vocals(seed=3, randomized=True)
    x = mix(6.0, 44100, 2, seed=5)
    whole = Engine(net=net).run((x, 44100), chunk_seconds=100.0)
    calls = []
    chunked = Engine(net=net).run((x, 44100), chunk_seconds=1.0, progress=lambda f, m: calls.append((f, m)))
    assert len(calls) >= 6 and calls[-1][0] == 1.0
    # non-trivial: the mask is far from constant and the vocals are neither silence nor the mixture
    assert whole.mask.std() > 0.05
    assert 0.05 < np.sqrt(np.mean(whole.vocals ** 2)) / np.sqrt(np.mean(x ** 2)) < 0.95
    assert np.abs(whole.vocals - chunked.vocals).max() < 1e-5
    np.testing.assert_allclose(whole.mask, chunked.mask, atol=1e-5)


def test_folder_batch_with_config(tmp_path):
    e = Engine(net=tiny_vocals())
    songs = tmp_path / "in"
    songs.mkdir()
    for i in range(2):
        sf.write(songs / f"s{i}.wav", mix(1.2, 22050, 1, seed=i)[0], 22050)
    from engines.vocals.api import isolate_to_files

    outs = isolate_to_files([songs], tmp_path / "out", isolator=e, config="hard")
    assert [o.error for o in outs] == [None, None]
    assert sorted(p.name for p in (tmp_path / "out" / "s0").iterdir()) == ["accompaniment.wav", "vocals.wav"]


def test_cli_preset_and_device(tmp_path, capsys):
    ck = tiny_vocals(tmp_path / "tiny.safetensors")
    src = tmp_path / "song.wav"
    sf.write(src, mix(1.5, 44100, 2).T, 44100)
    assert cli.main(["-i", str(src), "-o", str(tmp_path / "out"), "--checkpoint", str(ck), "--preset", "hard",
                     "--device", "cpu", "--chunk_seconds", "1", "--threads", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["accompaniment.wav", "vocals.wav"]
    v, sr = sf.read(tmp_path / "out" / "vocals.wav", dtype="float32")
    assert sr == 44100 and v.shape == (int(1.5 * 44100), 2)
    ref = Engine.load(ck, device="cpu").run(src, "hard")
    np.testing.assert_allclose(v, ref.vocals.T, atol=1.0 / 2 ** 15)
    assert "cpu" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # refused by argparse, before any work
        cli.main(["-i", str(src), "-o", str(tmp_path / "o2"), "--device", "tpu"])
