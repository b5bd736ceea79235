"""The engine contract's foundation: options (Config -> CLI), Result.save, devices, chunking, levels, losses."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from engines import base, device, options
from engines.audio import chunking, levels, losses, metrics
from engines.audio.limits import Range
from engines.options import ConfigBase, option


@dataclass(frozen=True)
class Demo(ConfigBase):
    PRESETS: ClassVar[dict] = {"hard": {"sharpen": 4.0, "binary": True}}
    sharpen: float = option(1.0, "mask sharpening", range=Range(0, 100, lo_open=True), group="mask")
    binary: bool = option(False, "0/1 mask", group="mask")
    steps: int = option(18, "optimisation steps", range=Range(0, 500, integer=True))
    mode: str = option("fitted", "reference", choices=("fitted", "stitch"))
    threshold: float | None = option(None, "class gate (None: percentile)", range=Range(0, 1))
    note: str = "not an option"


def _parse(argv):
    p = argparse.ArgumentParser()
    options.add_arguments(p, Demo)
    return p, p.parse_args(argv)


def test_config_validates_on_construction_with_a_readable_message():
    with pytest.raises(ValueError, match=r"Invalid setting: sharpen = 0.0; expected a number above 0"):
        Demo(sharpen=0)
    with pytest.raises(ValueError, match="expected one of fitted, stitch"):
        Demo(mode="other")
    with pytest.raises(ValueError, match="steps"):
        Demo(steps=2.5)
    with pytest.raises(ValueError, match="threshold"):
        Demo(threshold=float("nan"))
    assert Demo(steps=18.0).steps == 18 and isinstance(Demo(steps=18.0).steps, int)
    assert Demo(threshold=None).threshold is None


def test_presets_and_dict_round_trip():
    hard = Demo.preset("hard", steps=3)
    assert (hard.sharpen, hard.binary, hard.steps) == (4.0, True, 3)
    assert Demo.from_dict(hard.to_dict()) == hard
    with pytest.raises(ValueError, match="Unknown preset 'soft'"):
        Demo.preset("soft")
    with pytest.raises(ValueError, match="Unknown setting: sharpn"):
        Demo.from_dict({"sharpn": 2})


def test_cli_flags_defaults_and_refusals():
    p, args = _parse([])
    assert options.from_args(Demo, args) == Demo()
    defaults = options.cli_defaults(p)
    for s in options.specs(Demo):
        assert defaults[s.name] == s.default
    assert "note" not in defaults  # a plain field is not a flag
    with pytest.raises(SystemExit):
        _parse(["--sharpen", "nan"])
    with pytest.raises(SystemExit):
        _parse(["--mode", "x"])
    _, args = _parse(["--binary", "--steps", "3", "--threshold", "none"])
    cfg = options.from_args(Demo, args)
    assert cfg.binary is True and cfg.steps == 3 and cfg.threshold is None


def test_cli_preset_under_explicit_flags():
    _, args = _parse(["--preset", "hard", "--sharpen", "2"])
    cfg = options.from_args(Demo, args)
    assert cfg.sharpen == 2.0 and cfg.binary is True  # the explicit flag wins, the rest comes from the preset
    _, args = _parse(["--preset", "hard", "--binary", "false"])
    assert options.from_args(Demo, args).binary is False


@dataclass
class TwoStems(base.Result):
    JSON_NAME: ClassVar[str] = "info.json"
    label: str = "x"

    def info(self):
        return {"label": self.label}

    def extra_files(self):
        return {"note.txt": lambda p: p.write_text("hello")}


def test_result_shapes_json_and_save(tmp_path):
    r = TwoStems(audio={"a": np.zeros(800, np.float32), "b": np.full((2, 800), 0.1, np.float32)},
                 sample_rate=8000, timings={"total": 0.05}, params={"k": 1}, label="y")
    assert r.audio["a"].shape == (1, 800) and r.duration == pytest.approx(0.1) and r.rtf == pytest.approx(0.5)
    files = r.save(tmp_path / "out")
    assert sorted(files) == ["a.wav", "b.wav", "info.json", "note.txt"]
    info = json.loads((tmp_path / "out" / "info.json").read_text())
    assert info["label"] == "y" and info["stems"]["b"]["channels"] == 2 and info["sample_rate"] == 8000
    with pytest.raises(ValueError, match="differ in length"):
        TwoStems(audio={"a": np.zeros(10), "b": np.zeros(11)}, sample_rate=8000)
    with pytest.raises(ValueError, match="FLAC cannot store FLOAT"):
        r.save(tmp_path / "f", fmt="flac", subtype="FLOAT")
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())


def test_result_save_never_replaces_an_input_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = out / "a.wav"
    src.write_bytes(b"input")
    r = TwoStems(audio={"a": np.zeros(80), "b": np.zeros(80)}, sample_rate=8000)
    with pytest.raises(Exception, match="input"):
        r.save(out, inputs=[src])
    assert src.read_bytes() == b"input" and sorted(p.name for p in out.iterdir()) == ["a.wav"]


class Echo(base.Engine):
    NAME = "echo"
    INPUTS = ("input", "ref")
    OPTIONAL_INPUTS = ("ref",)
    Config = Demo

    def _run(self, inputs, config, progress):
        return base.Result(audio={"out": np.asarray(inputs["input"]) * config.sharpen}, sample_rate=100,
                           params=config.to_dict())


def test_engine_run_takes_one_source_or_a_mapping_and_checks_them():
    e = Echo()
    assert np.allclose(e.run(np.ones(5), "hard").audio["out"], 4.0)
    assert np.allclose(e.run({"input": np.ones(5)}, {"sharpen": 2.0}).audio["out"], 2.0)
    assert e.run(np.ones(5), Demo(), sharpen=3.0).params["sharpen"] == 3.0
    with pytest.raises(ValueError, match="not query"):
        e.run({"input": np.ones(5), "query": 1})
    with pytest.raises(ValueError, match="Missing input: input"):
        e.run({"ref": np.ones(5)})


def test_device_resolution():
    assert device.resolve("cpu").type == "cpu"
    assert device.resolve("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="Unknown device"):
        device.resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            device.resolve("cuda")


@pytest.mark.parametrize("kw", [dict(chunk=700, context=130), dict(chunk=700, overlap=90),
                                dict(chunk=700, overlap=90, batch=True)])
def test_chunked_equals_whole_for_a_local_function(kw):
    torch.manual_seed(0)
    x = torch.randn(2, 5000)
    conv = torch.nn.Conv1d(2, 2, 9, padding=4)
    fn = lambda t: conv(t[None])[0] if t.dim() == 2 else conv(t)  # noqa: E731
    with torch.no_grad():
        whole = fn(x)
        xs = x[None] if kw.get("batch") else x
        parts = chunking.run_chunked(fn, xs, **kw)
    parts = parts[0] if kw.get("batch") else parts
    if "context" in kw:  # a receptive field inside the context: exact
        assert torch.allclose(parts, whole, atol=1e-5)
    else:  # cross-fading: the window edges leak (weights 1/(overlap+1) there), but the ramps sum to one
        pointwise = lambda t: torch.tanh(2 * t) + t  # noqa: E731
        xs = x[None] if kw.get("batch") else x
        p2 = chunking.run_chunked(pointwise, xs, **kw)
        assert torch.allclose(p2[0] if kw.get("batch") else p2, pointwise(x), atol=1e-5)
        assert (parts - whole).abs().mean() < 0.05 * whole.abs().mean()


def test_chunked_frames_mode_matches_the_whole_stft():
    from engines.audio.spectral import stft

    x = torch.randn(1, 16000)
    whole = stft(x, 512, 256).abs()
    parts = chunking.run_chunked(lambda t: stft(t, 512, 256).abs(), x, 4096, context=1024, hop=256)
    assert parts.shape == whole.shape and torch.allclose(parts, whole, atol=1e-4)


def test_levels():
    x = np.full(1000, 0.5, np.float32)
    assert levels.rms(x) == pytest.approx(0.5) and levels.rms_db(x) == pytest.approx(-6.02, abs=0.01)
    y = levels.normalize_rms(x, -20.0, peak_limit=None)
    assert levels.rms_db(y) == pytest.approx(-20.0, abs=1e-3)
    a, b = levels.limit_peak(np.array([2.0, -1.0]), 0.999, np.array([0.5]))
    assert max(abs(a)) == pytest.approx(0.999) and b[0] == pytest.approx(0.5 * 0.999 / 2)
    assert levels.limit_peak(np.array([0.2])) [0] == pytest.approx(0.2)
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    matched, g = levels.match_loudness(tone, 48000, -23.0)
    assert levels.lufs(matched, 48000) == pytest.approx(-23.0, abs=0.05) and g != 0


def test_si_sdr_numpy_and_torch_agree_and_mrstft_orders_distances():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4000)
    est = ref + 0.3 * rng.standard_normal(4000)
    assert float(losses.si_sdr(torch.tensor(ref), torch.tensor(est))) == pytest.approx(metrics.si_sdr(ref, est), abs=1e-4)
    r = torch.tensor(ref, dtype=torch.float32)[None, None]
    near = losses.mrstft(r + 0.01 * torch.randn_like(r), r)
    far = losses.mrstft(torch.randn_like(r), r)
    assert float(near) < float(far)
