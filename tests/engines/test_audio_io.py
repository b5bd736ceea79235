import io
import os

import numpy as np
import pytest
import soundfile as sf

from engines.audio import errors as E
from engines.audio import io as aio


def _noise(c=2, n=8000, seed=0):
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, (c, n))).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype,atol", [
    ("WAV", "PCM_16", 1 / 32768), ("WAV", "PCM_24", 1 / 2**23), ("WAV", "FLOAT", 0),
    ("FLAC", "PCM_16", 1 / 32768), ("FLAC", "PCM_24", 1 / 2**23), ("OGG", "VORBIS", None),
])
def test_every_format_loads_back(tmp_path, fmt, subtype, atol):
    t = np.arange(8000) / 16000
    x = _noise() if atol is not None else np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in (440, 660)]).astype(np.float32)
    path = tmp_path / f"x.{ {'WAV': 'wav', 'FLAC': 'flac', 'OGG': 'ogg'}[fmt] }"
    sf.write(path, x.T, 16000, format=fmt, subtype=subtype)
    y, sr = aio.load(path)
    assert sr == 16000 and y.shape == x.shape and y.dtype == np.float32
    if atol is not None:
        np.testing.assert_allclose(y, x, atol=atol)
    else:  # lossy codec: close, not equal
        assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.9


def test_mp3_loads(tmp_path):
    x = _noise(1, 16000)
    path = tmp_path / "x.mp3"
    try:
        sf.write(path, x.T, 16000, format="MP3", subtype="MPEG_LAYER_III")
    except Exception:
        pytest.skip("this libsndfile cannot write mp3")
    y, sr = aio.load(path)
    assert sr == 16000 and y.shape[0] == 1 and abs(y.shape[1] - 16000) < 2000


def test_save_roundtrip_and_atomic(tmp_path):
    x = _noise()
    for sub, tol in [("PCM_16", 1 / 32768), ("PCM_24", 1 / 2**23), ("FLOAT", 0)]:
        p = aio.save(tmp_path / f"o_{sub}.wav", x, 22050, sub)
        y, sr = aio.load(p)
        np.testing.assert_allclose(y, x, atol=tol)
    p = aio.save(tmp_path / "o.flac", x, 22050, "24")
    assert aio.load(p)[0].shape == x.shape
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp files left


def test_save_refuses_input_and_protects_clipping(tmp_path):
    p = tmp_path / "in.wav"
    sf.write(p, _noise().T, 16000)
    aio.load(p)
    with pytest.raises(E.OverwriteInputError, match="overwrite"):
        aio.save(p, _noise(), 16000)
    loud = _noise() * 10
    y, _ = aio.load(aio.save(tmp_path / "loud.wav", loud, 16000))
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99
    other = tmp_path / "other.wav"
    with pytest.raises(E.OverwriteInputError):
        aio.save(other, _noise(), 16000, protect=[other])
    with pytest.raises(ValueError, match=".wav or .flac"):
        aio.save(tmp_path / "x.mp4", _noise(), 16000)
    with pytest.raises(E.NonFiniteError):
        aio.save(tmp_path / "nan.wav", np.full((1, 10), np.nan, np.float32), 16000)


def test_resample_and_channels(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    x = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)]).astype(np.float32)
    p = tmp_path / "s.wav"
    sf.write(p, x.T, sr, subtype="FLOAT")
    y, r = aio.load(p, sr=16000, mono=True)
    assert r == 16000 and y.shape == (1, 16000)
    spec = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spec) - 440) <= 1
    y6, _ = aio.load(p, channels=6)
    assert y6.shape == (6, sr)
    assert aio.to_channels(np.ones((3, 5), np.float32), 2).shape == (2, 5)


def _write_bytes(p, b):
    p.write_bytes(b)
    return p


def test_bad_input_matrix(tmp_path):
    with pytest.raises(E.MissingFileError, match="not found"):
        aio.load(tmp_path / "nope.wav")
    with pytest.raises(E.EmptyFileError, match="empty"):
        aio.load(_write_bytes(tmp_path / "empty.wav", b""))
    with pytest.raises(E.NotAudioError, match="not an audio file"):
        aio.load(_write_bytes(tmp_path / "notes.txt", b"hello, this is text" * 20))
    good = io.BytesIO()
    sf.write(good, _noise().T, 16000, format="WAV")
    with pytest.raises(E.CorruptAudioError, match="cannot be decoded"):
        aio.load(_write_bytes(tmp_path / "bad.wav", good.getvalue()[:30]))
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(E.ZeroLengthError, match="no samples"):
        aio.load(zero)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([[0.1], [np.nan], [0.2]], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(E.NonFiniteError, match="NaN"):
        aio.load(nan)
    many = tmp_path / "many.wav"
    sf.write(many, np.zeros((100, 12), np.float32), 16000)
    with pytest.raises(E.ChannelError, match="12 channels"):
        aio.load(many)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros((16000 * 3, 1), np.float32), 16000)
    with pytest.raises(E.TooLongError, match="limit is 2 s"):
        aio.load(long, max_seconds=2)
    with pytest.raises(E.TooShortError, match="at least 5 s"):
        aio.load(long, min_seconds=5)
    with pytest.raises(E.SilentAudioError, match="silent"):
        aio.check_not_silent(aio.load(long)[0], "The query")
    # every error is an AudioError (one type to catch) with a person-readable message
    assert issubclass(E.CorruptAudioError, E.AudioError) and issubclass(E.AudioError, ValueError)


def test_load_from_bytes_and_filelike():
    buf = io.BytesIO()
    x = _noise(1, 4000)
    sf.write(buf, x.T, 8000, format="FLAC")
    y, sr = aio.load(buf.getvalue())
    assert sr == 8000 and y.shape == (1, 4000)
    buf.seek(0)
    y2, _ = aio.load(buf)
    np.testing.assert_array_equal(y, y2)


needs_ffmpeg = pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="ffmpeg is not installed")


@needs_ffmpeg
def test_m4a_with_the_index_at_the_end_loads(tmp_path, monkeypatch):
    """ffmpeg's mp4 muxer writes the index ('moov') after the samples unless +faststart (iTunes does the
    same); ffmpeg must be able to seek, so it decodes from the file (bytes: a private temporary file)."""
    import subprocess
    import tempfile

    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * 16000) / 16000).astype(np.float32)
    wav = tmp_path / "x.wav"
    sf.write(wav, x, 16000)
    m4a = tmp_path / "x.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    data = m4a.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0  # the layout that failed through a pipe
    y, sr = aio.load(m4a)
    assert sr == 16000 and y.shape[0] == 1 and abs(y.shape[1] - x.size) < 2048
    assert np.corrcoef(y[0, 2048:x.size - 2048], x[2048:x.size - 2048])[0, 1] > 0.9
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    y2, _ = aio.load(data)  # bytes, no name: decoded from a temporary file, removed afterwards
    assert y2.shape == y.shape and list(scratch.iterdir()) == []
    y3, _ = aio.load(io.BytesIO(data))
    assert y3.shape == y.shape


def _truncated_wav(tmp_path, seconds=20.0, keep=6.7 / 20):
    sr = 8000
    p = tmp_path / "cut.wav"
    sf.write(p, (0.1 * np.random.default_rng(0).standard_normal(int(seconds * sr))).astype(np.float32), sr)
    b = p.read_bytes()
    p.write_bytes(b[:44 + int((len(b) - 44) * keep) // 2 * 2])
    return p, sr


def test_truncated_wav_is_loaded_with_a_warning(tmp_path, caplog):
    p, sr = _truncated_wav(tmp_path)
    with pytest.warns(E.TruncatedAudioWarning, match=r"cut.wav' is truncated: the header promises 20.0 s, "
                                                      r"the file holds 6.7 s"):
        y, r = aio.load(p)
    assert r == sr and abs(y.shape[1] / sr - 6.7) < 0.01
    assert any("truncated" in rec.getMessage() for rec in caplog.records)  # the CLI shows the log line
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", E.TruncatedAudioWarning)
        good = tmp_path / "good.wav"
        sf.write(good, np.zeros((800, 1), np.float32) + 0.1, 8000)
        aio.load(good)  # a complete file: no warning


@needs_ffmpeg
def test_truncated_flac_is_loaded_with_a_warning(tmp_path):
    p = tmp_path / "cut.flac"
    sf.write(p, (0.1 * np.random.default_rng(0).standard_normal(20 * 8000)).astype(np.float32), 8000)
    b = p.read_bytes()
    p.write_bytes(b[:len(b) // 3])
    with pytest.warns(E.TruncatedAudioWarning, match="header promises 20.0 s"):
        y, _ = aio.load(p)
    assert 0 < y.shape[1] < 10 * 8000


@pytest.mark.parametrize("make", [
    lambda: b"hello, this is text" * 20,
    lambda: io.BytesIO(b"hello, this is text" * 20),
    lambda: b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage",
    lambda: io.BytesIO(b"OggS" + b"\x00" * 60),
])
def test_messages_name_the_upload_never_an_object_repr(make):
    with pytest.raises(E.AudioError) as info:
        aio.load(make())
    msg = str(info.value)
    assert msg.startswith("The uploaded audio") and "BytesIO" not in msg and "0x" not in msg, msg


def test_too_long_is_refused_from_the_header_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros((16000 * 3, 1), np.float32) + 0.1, 16000)

    def no_decode(*a, **k):
        raise AssertionError("decoded a file that is over the limit")

    monkeypatch.setattr(aio, "_decode", no_decode)
    with pytest.raises(E.TooLongError, match="3.0 s long; the limit is 2 s"):
        aio.load(p, max_seconds=2)


def test_messages_keep_the_file_name_as_it_is(tmp_path):
    p = tmp_path / "My Song.WAV"
    p.write_bytes(b"hello, this is text" * 20)
    with pytest.raises(E.CorruptAudioError) as info:
        aio.load(p)
    assert str(info.value).startswith(f"'{p}'")  # not lower-cased


def test_rate_and_channels_are_refused_before_decoding(tmp_path, monkeypatch):
    """A small file cannot ask for gigabytes: rate and channel count are checked from the header."""
    import soundfile as sf

    from engines.audio import io as aio
    from engines.audio.errors import ChannelError

    sf.write(tmp_path / "hr.wav", np.zeros((64, 1), np.float32), 384000)
    sf.write(tmp_path / "mc.wav", np.zeros((64, 12), np.float32), 16000)

    def no_decode(*a, **k):
        raise AssertionError("decoded before the format was checked")

    monkeypatch.setattr(aio, "_read_channels_first", no_decode)
    with pytest.raises(ChannelError, match="192000 Hz"):
        aio.load(tmp_path / "hr.wav")
    with pytest.raises(ChannelError, match="12 channels"):
        aio.load(tmp_path / "mc.wav")


def test_load_takes_arrays_with_the_same_checks_as_files():
    import numpy as np

    from engines.audio import errors, io

    a, r = io.load((np.zeros((2000, 2), np.float32), 8000), sr=16000)  # (T, C) is recognised
    assert a.shape == (2, 4000) and r == 16000
    a, r = io.load(np.full(800, 0.1), rate=8000, mono=True)
    assert a.shape == (1, 800) and a.dtype == np.float32
    with pytest.raises(errors.NonFiniteError, match="The query contains NaN"):
        io.load((np.full(10, np.nan), 8000), what="the query")
    with pytest.raises(errors.ZeroLengthError):
        io.load((np.zeros(0), 8000))
    with pytest.raises(errors.ChannelError, match="shaped"):
        io.load((np.zeros((3, 3, 3)), 8000))
    with pytest.raises(ValueError, match="invalid sample rate 0"):
        io.load((np.zeros(100), 0))
    with pytest.raises(errors.TooLongError, match="The mixture is 5.0 s long; the limit is 2 s"):
        io.load((np.zeros(40000), 8000), max_seconds=2, what="the mixture")
    with pytest.raises(ValueError, match="give the sample rate"):
        io.load(np.zeros(100))
