"""Bad options and bad input are refused with one readable line before any work, by every engine.

CLI cases run ``launch.main([...])``: exit code 2, the message on the last stderr line, no traceback and
nothing written. API cases show the studio (which calls the APIs) gets the same refusal, before the input
is even read (a missing file would otherwise be the error).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import launch
from engines.audio import limits
from engines.audio.errors import TooLongError, TooShortError

torch.set_num_threads(1)
SR = 22050


@pytest.fixture
def song(tmp_path):
    t = np.arange(3 * SR) / SR
    x = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    p = tmp_path / "song.wav"
    sf.write(p, x, SR)
    return p


@pytest.fixture
def one_sample(tmp_path):
    p = tmp_path / "one.wav"
    sf.write(p, np.array([0.5], np.float32), SR)
    return p


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        rc = launch.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refuses the option before the command runs
        rc = exc.code
    err = capsys.readouterr().err
    return rc, err


def assert_refused(rc, err, *words, out_dir=None):
    assert rc == 2, err
    assert "Traceback" not in err and "0x" not in err
    last = [line for line in err.strip().splitlines() if line.strip()][-1]
    assert "error:" in last, err
    for w in words:
        assert w in last, last
    if out_dir is not None:
        assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())


def _cli(engine, song, out, *extra):
    base = {
        "vocals": ["vocals", "--input", song, "--out_dir", out],
        "timbre": ["timbre", "--input", song, "--target", "violin", "--out_dir", out],
        "separate": ["separate", "--mix_wav", song, "--query_wav", song, "--out_dir", out],
        "fuse": ["fuse", "--a", song, "--b", song, "--out_dir", out],
    }[engine]
    return base + list(extra)


OPTION_CASES = [
    ("vocals", ["--threads", "-1"], "--threads"),
    ("timbre", ["--threads", "-1"], "--threads"),
    ("separate", ["--threads", "-1"], "--threads"),
    ("fuse", ["--threads", "0"], "--threads"),
    ("vocals", ["--threads", "abc"], "not an integer"),
    ("fuse", ["--segment_length", "0"], "--segment_length"),
    ("fuse", ["--segment_length", "-2"], "--segment_length"),
    ("fuse", ["--crossfade_ms", "-5"], "--crossfade_ms"),
    ("fuse", ["--beats_per_bar", "-4"], "--beats_per_bar"),
    ("fuse", ["--beats_per_bar", "1"], "--beats_per_bar"),
    ("fuse", ["--mask_freq_split", "nan"], "--mask_freq_split"),
    ("fuse", ["--energy_smoothing_ms", "inf"], "--energy_smoothing_ms"),
    ("vocals", ["--sharpen", "-1"], "--sharpen"),
    ("vocals", ["--sharpen", "0"], "--sharpen"),
    ("vocals", ["--sharpen", "nan"], "--sharpen"),
    ("vocals", ["--chunk_seconds", "0"], "--chunk_seconds"),
    ("vocals", ["--chunk_seconds", "-inf"], "--chunk_seconds"),
    ("separate", ["--nfft", "500"], "power of two"),
    ("separate", ["--nfft", "64"], "--nfft"),
    ("separate", ["--window_sec", "0"], "--window_sec"),
    ("separate", ["--cls_threshold", "nan"], "--cls_threshold"),
    ("separate", ["--lr", "nan"], "--lr"),
    ("separate", ["--mask_floor", "1"], "--mask_floor"),
    ("separate", ["--opt_steps", "100000"], "--opt_steps"),
    ("timbre", ["--gl_iters", "100000"], "--gl_iters"),
    ("timbre", ["--gl_iters", "-1"], "--gl_iters"),
]


@pytest.mark.parametrize("engine,extra,word", OPTION_CASES)
def test_cli_refuses_bad_option_before_work(engine, extra, word, song, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run_cli(_cli(engine, song, out, *extra), capsys)
    assert_refused(rc, err, word, out_dir=out)
    assert "expected" in err or "not an integer" in err


def test_separate_cross_field_settings_refused(song, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run_cli(_cli("separate", song, out, "--nfft", "512", "--hop", "512"), capsys)
    assert_refused(rc, err, "hop", "half of nfft", out_dir=out)
    rc, err = run_cli(_cli("separate", song, out, "--window_sec", "0.5", "--hop_sec", "1"), capsys)
    assert_refused(rc, err, "hop_sec", out_dir=out)


@pytest.mark.parametrize("engine", ["vocals", "timbre", "separate", "fuse"])
def test_cli_refuses_a_one_sample_song(engine, one_sample, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run_cli(_cli(engine, one_sample, out), capsys)
    assert_refused(rc, err, out_dir=out)
    assert "short" in err or "at least" in err, err


@pytest.mark.parametrize("engine", ["vocals", "timbre", "separate", "fuse"])
def test_cli_refuses_a_song_over_the_limit(engine, song, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "2")
    out = tmp_path / "out"
    rc, err = run_cli(_cli(engine, song, out), capsys)
    assert_refused(rc, err, "limit is 2 s", out_dir=out)


# ------------------------------------------------------------------------------------------ API level
def test_fuse_api_refuses_options_before_reading(tmp_path):
    from engines.fusion.api import fuse

    missing = tmp_path / "missing.wav"
    for kw, word in [(dict(segment_length=0), "segment_length"), (dict(crossfade_ms=-1.0), "crossfade_ms"),
                     (dict(beats_per_bar=-4), "beats_per_bar"), (dict(mask_channel_keep=math.nan), "mask_channel_keep"),
                     (dict(seed=-1), "seed")]:
        with pytest.raises(ValueError, match=word):
            fuse(missing, missing, **kw)


def test_fuse_api_limits(song, monkeypatch):
    from engines.fusion.api import fuse

    with pytest.raises(TooShortError, match="Song A"):
        fuse((np.ones(10, np.float32) * 0.1, SR), song)
    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "2")
    with pytest.raises(TooLongError, match="limit is 2 s"):
        fuse(song, song)
    with pytest.raises(TooLongError):  # a caller's larger limit is capped to the engines' one
        fuse(song, song, max_seconds=100)


def test_vocals_api_refuses_sharpen_before_reading(tmp_path):
    from engines.vocals.api import VocalIsolator

    from .test_vocals import tiny_net

    iso = VocalIsolator(net=tiny_net())
    for bad in (-1.0, 0.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="sharpen"):
            iso.isolate(tmp_path / "missing.wav", sharpen=bad)
        with pytest.raises(ValueError, match="sharpen"):
            iso.separate(np.zeros((1, SR * 2), np.float32), SR, sharpen=bad)
    with pytest.raises(ValueError, match="chunk_seconds"):
        VocalIsolator(net=tiny_net(), chunk_seconds=0)


def test_vocals_api_duration_limit(song, monkeypatch):
    from engines.vocals.api import VocalIsolator

    from .test_vocals import tiny_net

    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "2")
    iso = VocalIsolator(net=tiny_net())
    with pytest.raises(TooLongError, match="limit is 2 s"):
        iso.isolate(song)
    with pytest.raises(TooLongError, match="limit is 2 s"):
        iso.separate(sf.read(song, dtype="float32")[0][None], SR)


def test_separation_config_refuses_bad_settings():
    from engines.separation.api import SeparationConfig

    for kw, word in [(dict(nfft=500), "nfft"), (dict(nfft=512, hop=512), "half of nfft"), (dict(lr=math.nan), "lr"),
                     (dict(threads=0), "threads"), (dict(window_sec=0.5, hop_sec=1.0), "hop_sec"),
                     (dict(cls_threshold=math.inf), "cls_threshold"), (dict(not_found_db=math.nan), "not_found_db")]:
        with pytest.raises(ValueError, match=word):
            SeparationConfig(**kw).validate()
    SeparationConfig().validate()  # the defaults are valid
    SeparationConfig(nfft=1024, hop=512).validate()


def test_separation_api_duration_limit(song, monkeypatch):
    from engines.separation.api import separate

    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "2")
    with pytest.raises(TooLongError, match="limit is 2 s"):
        separate(str(song), str(song))  # refused before any model is loaded


def test_timbre_api_refuses_before_reading(tmp_path, song, monkeypatch):
    from engines.timbre.api import TimbreEngine

    from .test_timbre import tiny

    eng = TimbreEngine(tiny())
    with pytest.raises(ValueError, match="gl_iters"):
        eng.transfer(tmp_path / "missing.wav", "violin", gl_iters=100000)
    with pytest.raises(ValueError, match="threads"):
        TimbreEngine(tiny(), threads=-1)
    with pytest.raises(TooShortError):
        eng.transfer(np.full(10, 0.1, np.float32), "violin", sr=SR)
    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "2")
    with pytest.raises(TooLongError, match="limit is 2 s"):
        eng.transfer(song, "violin")
    with pytest.raises(TooLongError, match="limit is 2 s"):
        eng.transfer(np.full(3 * SR, 0.1, np.float32), "violin", sr=SR)


def test_extend_band_blocks_equal_one_pass():
    from engines.timbre.api import extend_band

    rng = np.random.default_rng(0)
    y, x = (0.1 * rng.standard_normal((2, 48000 * 3))).astype(np.float32)
    assert np.abs(extend_band(y, x, 48000) - extend_band(y, x, 48000, block_seconds=0.5)).max() < 1e-6


# ------------------------------------------------------------------------------------------ helpers
def test_range_helpers():
    assert limits.finite_float("1.5") == 1.5
    for bad in ("nan", "inf", "-inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            limits.finite_float(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        limits.positive_float("0")
    assert limits.bounded_int(1, 3)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        limits.bounded_int(1, 3)("4")
    with pytest.raises(argparse.ArgumentTypeError):
        limits.bounded_int(1, 3)("2.5")
    from engines.fusion import Config as FusionConfig
    from engines.options import spec

    bpb = spec(FusionConfig, "beats_per_bar").range.arg
    assert [bpb(v) for v in ("0", "2", "12")] == [0, 2, 12]
    from engines.separation import Config as SeparationConfig

    nfft = spec(SeparationConfig, "nfft").range.arg
    assert nfft("1024") == 1024
    assert spec(SeparationConfig, "cls_threshold").range.optional_arg("None") is None
    from engines.vocals import Config as VocalsConfig

    assert VocalsConfig(sharpen=None).sharpen is None  # None = the model's mask_sharpen
    assert spec(VocalsConfig, "sharpen").range.optional_arg("none") is None
    assert limits.thread_count("1") == 1 and limits.check_threads(None) is None
    with pytest.raises(argparse.ArgumentTypeError):
        limits.thread_count(str(limits.max_threads() + 1))


def test_max_seconds_from_env(monkeypatch):
    monkeypatch.delenv(limits.ENV_MAX_SECONDS, raising=False)
    assert limits.max_seconds() == limits.DEFAULT_MAX_SECONDS == 900.0
    monkeypatch.setenv(limits.ENV_MAX_SECONDS, "120")
    assert limits.max_seconds() == 120.0
    for bad in ("0", "-5", "nan", "ten"):
        monkeypatch.setenv(limits.ENV_MAX_SECONDS, bad)
        with pytest.raises(ValueError, match=limits.ENV_MAX_SECONDS):
            limits.max_seconds()


def test_separation_chunked_reconstruction_equals_one_pass():
    """Long mixtures are masked a chunk of frames at a time at their own rate (bounded memory)."""
    from engines.separation.api import _reconstruct

    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, 44100 * 5))).astype(np.float32)
    for n_cols in (313, 900):  # the 16 kHz grid with the same frame count, and one that needs interpolation
        m = torch.rand(257, n_cols, generator=torch.Generator().manual_seed(n_cols))
        whole = _reconstruct(mix, m, 1412, 706, 44100)
        chunked = _reconstruct(mix, m, 1412, 706, 44100, chunk_frames=50)
        assert chunked.shape == whole.shape == mix.shape
        assert np.abs(chunked - whole).max() < 1e-4


@pytest.mark.filterwarnings("ignore::engines.audio.errors.TruncatedAudioWarning")
def test_cli_reports_a_truncated_input(tmp_path, caplog, capsys):
    """A cut WAV is processed (what is there) and the CLI says so in a warning line."""
    p = tmp_path / "cut.wav"
    t = np.arange(4 * SR) / SR
    sf.write(p, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, subtype="PCM_16")
    b = p.read_bytes()
    p.write_bytes(b[:44 + int(1.5 * SR) * 2])
    rc, err = run_cli(["vocals", "--input", p, "--out_dir", tmp_path / "out", "--quiet"], capsys)
    assert rc == 0, err
    assert any("cut.wav' is truncated: the header promises 4.0 s, the file holds 1.5 s" in r.getMessage()
               for r in caplog.records)
    assert (tmp_path / "out" / "vocals.wav").is_file()
