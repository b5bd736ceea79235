"""Output formats of every engine (engines.base.OutputFormat, Result.save) and the shared CLI flags
(engines.cli_common: --format/--subtype/--bitrate/--out_rate/--out_channels, --start/--end, --dry_run)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from engines import cli_common
from engines.base import OutputFormat, Result, probe_format


class _R(Result):
    JSON_NAME = "r.json"


def _tone(sr, seconds=1.0, channels=2):
    t = np.arange(int(sr * seconds)) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([x, 0.5 * x])[:channels]


@pytest.fixture()
def src24(tmp_path):
    p = tmp_path / "in24.wav"
    sf.write(p, _tone(44100).T, 44100, subtype="PCM_24")
    return p


def test_plain_names_keep_the_former_behaviour(tmp_path):
    r = _R(audio={"a": _tone(16000, channels=1)}, sample_rate=16000)
    files = r.save(tmp_path / "o", subtype="PCM_24")
    i = sf.info(files["a.wav"])
    assert (i.samplerate, i.channels, i.subtype) == (16000, 1, "PCM_24")
    assert json.loads(files["r.json"].read_text())["output"]["subtype"] == "PCM_24"


def test_output_format_follows_the_input_rate_channels_and_depth(tmp_path, src24):
    r = _R(audio={"a": _tone(16000, channels=1)}, sample_rate=16000)
    r.input_format = probe_format(src24)
    assert r.input_format == {"sample_rate": 44100, "channels": 2, "subtype": "PCM_24"}
    files = r.save(tmp_path / "o", fmt=OutputFormat("wav"))
    y, sr = sf.read(files["a.wav"], always_2d=True)
    assert sr == 44100 and y.shape == (44100, 2) and sf.info(files["a.wav"]).subtype == "PCM_24"
    assert np.allclose(y[:, 0], y[:, 1])  # mono repeated to the input's two channels
    # explicit choices win; like= follows another file
    files = r.save(tmp_path / "o2", fmt=OutputFormat("flac", "16", sample_rate=22050, channels=1))
    i = sf.info(files["a.flac"])
    assert (i.samplerate, i.channels, i.subtype, i.format) == (22050, 1, "PCM_16", "FLAC")
    f32 = tmp_path / "f32.wav"
    sf.write(f32, _tone(8000).T, 8000, subtype="FLOAT")
    files = r.save(tmp_path / "o3", fmt=OutputFormat("wav", like=f32))
    assert (sf.info(files["a.wav"]).samplerate, sf.info(files["a.wav"]).subtype) == (8000, "FLOAT")
    files = r.save(tmp_path / "o4", fmt=OutputFormat("flac", like=f32))  # FLAC holds no float: 24 bit
    assert sf.info(files["a.flac"]).subtype == "PCM_24"


def test_mp3_bitrate_rate_and_decodes_back(tmp_path, src24):
    x = _tone(44100, seconds=4.0)
    r = _R(audio={"a": x}, sample_rate=44100)
    sizes = {}
    for kbps in (64, 320):
        files = r.save(tmp_path / f"m{kbps}", fmt=OutputFormat("mp3", bitrate=kbps))
        sizes[kbps] = files["a.mp3"].stat().st_size
        y, sr = sf.read(files["a.mp3"], always_2d=True)
        assert sr == 44100 and y.shape[1] == 2 and abs(y.shape[0] - x.shape[1]) < 2000
        assert json.loads(files["r.json"].read_text())["output"]["bitrate"] == kbps
    assert 60 < sizes[64] * 8 / 4 / 1000 < 75 and 300 < sizes[320] * 8 / 4 / 1000 < 340  # kbps as asked
    # a rate MP3 cannot hold goes to the nearest one it can
    hi = _R(audio={"a": _tone(96000, channels=1)}, sample_rate=96000)
    files = hi.save(tmp_path / "hi", fmt=OutputFormat("mp3"))
    assert sf.info(files["a.mp3"]).samplerate == 48000


def test_bad_formats_are_refused_with_a_message():
    with pytest.raises(ValueError, match="Unknown output format 'ogg'"):
        OutputFormat("ogg")
    with pytest.raises(ValueError, match="FLAC cannot store FLOAT"):
        OutputFormat("flac", "float")
    with pytest.raises(ValueError, match="bitrate"):
        OutputFormat("mp3", bitrate=1000)
    with pytest.raises(ValueError, match="sample rate"):
        OutputFormat("wav", sample_rate=100)


def test_cli_flags_region_and_defaults(src24):
    p = argparse.ArgumentParser()
    cli_common.add_arguments(p)
    args = p.parse_args([])
    fmt = cli_common.output_format(args)
    assert (fmt, fmt.subtype, fmt.bitrate, fmt.sample_rate, fmt.channels) == ("wav", "auto", 192, None, None)
    args = p.parse_args(["--format", "mp3", "--bitrate", "128", "--out_rate", "22050", "--start", "0.25",
                         "--end", "0.5"])
    fmt = cli_common.output_format(args)
    assert (fmt, fmt.bitrate, fmt.sample_rate) == ("mp3", 128, 22050)
    audio, sr = cli_common.region(args, src24)
    assert sr == 44100 and audio.shape == (2, int(0.25 * 44100))
    assert cli_common.region(p.parse_args([]), src24) == src24
    with pytest.raises(ValueError, match="region starts at 5 s"):
        cli_common.region(p.parse_args(["--start", "5"]), src24)
    with pytest.raises(SystemExit):
        p.parse_args(["--format", "ogg"])


def test_estimate_extrapolates_from_probes():
    class Slow:
        INPUTS = ("mix",)

        def inputs_of(self, x):
            return x

        def run(self, x, cfg):
            a, sr = x["mix"]
            import time
            time.sleep(0.05 * a.shape[-1] / sr)  # 50 ms per second of audio

    est = cli_common.estimate(Slow(), {"mix": (_tone(8000, seconds=3.0), 8000)}, probe_seconds=1.0,
                              total_seconds=30.0)
    assert [p["seconds"] for p in est["probes"]] == [1.0, 2.0]
    assert 1.2 < est["time_s"] < 2.0 and est["peak_mb"] > 10  # 30 s at 50 ms/s = 1.5 s
    assert "Estimate: about" in cli_common.describe(est)


def test_progress_printer_prints_every_ten_percent():
    import io

    buf = io.StringIO()
    show = cli_common.progress_printer(buf)
    for i in range(101):
        show(i / 100, f"step {i}")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[  0%] step 0" and lines[-1] == "[100%] step 100" and len(lines) == 11


def test_engine_clis_dry_run_and_formats(tmp_path, monkeypatch, capsys):
    """Every engine CLI takes the shared flags: --dry_run writes nothing, --format/--subtype/--bitrate/--start/
    --end reach Result.save; by default the outputs keep the input's rate, channels and bit depth."""
    import launch
    from tests.studio.tiny_models import make_models_dir

    models = tmp_path / "models"
    make_models_dir(models)
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(models))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sr = 22050
    t = np.arange(3 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    mix, q = tmp_path / "mix.wav", tmp_path / "q.wav"
    sf.write(mix, np.stack([x, 0.7 * x], 1), sr, subtype="PCM_24")
    sf.write(q, x[:sr], sr)
    rc = launch.main(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(tmp_path / "dry"),
                      "--embedder", "builtin", "--opt_steps", "1", "--dry_run"])
    assert rc == 0 and "Estimate: about" in capsys.readouterr().out and not (tmp_path / "dry").exists()
    rc = launch.main(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(tmp_path / "s"),
                      "--embedder", "builtin", "--opt_steps", "1", "--save_visualizations", "False",
                      "--start", "0.5", "--end", "2.5", "--not_found_db", "-200"])
    i = sf.info(tmp_path / "s" / "target.wav")  # float: separation's own depth is above the input's 24 bits
    assert rc == 0 and (i.samplerate, i.channels, i.subtype, round(i.duration, 2)) == (sr, 2, "FLOAT", 2.0)
    rc = launch.main(["vocals", "-i", str(mix), "-o", str(tmp_path / "v"), "--format", "flac", "--quiet"])
    i = sf.info(tmp_path / "v" / "vocals.flac")
    assert rc == 0 and (i.samplerate, i.channels, i.subtype) == (sr, 2, "PCM_24")  # the input's depth
    rc = launch.main(["timbre", "--input", str(mix), "--target", "violin", "--out_dir", str(tmp_path / "t"),
                      "--format", "mp3", "--bitrate", "128"])
    i = sf.info(tmp_path / "t" / "violin.mp3")
    assert rc == 0 and (i.samplerate, i.channels) == (sr, 2)  # the engine's mono output, as the input's 2
    capsys.readouterr()


def test_batch_folders_are_unique_and_named_after_songs(tmp_path):
    """One folder per input (the vocals and fuse CLIs): a single input writes into the folder itself; MUSDB-style
    ``<song>/mixture.wav`` files are named after their folder; a name taken twice gets a suffix that is itself free."""
    from engines.cli_common import batch_folders

    out = tmp_path / "out"
    assert batch_folders([tmp_path / "a.wav"], out) == [out]
    files = [tmp_path / "p" / "x.wav", tmp_path / "q" / "p" / "x.wav", tmp_path / "p_2.wav", tmp_path / "b c.wav"]
    got = [f.name for f in batch_folders(files, out)]
    assert got[:2] == ["p", "p_2"] and got[2] not in got[:2] and len(set(got)) == 4
    assert all(f.parent == out for f in batch_folders(files, out))
    assert not out.exists()  # nothing is created
