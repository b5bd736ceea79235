"""Loading and saving audio.

``load`` reads a path, raw bytes or a binary file object and returns float32 audio shaped
``(C, T)`` plus its sample rate. It resamples with soxr, converts channel counts and checks
duration limits, raising a typed :mod:`engines.audio.errors` error with a readable message.

``save`` writes atomically (temporary file in the target folder, then ``os.replace``), refuses
to overwrite any file this process loaded as input, and protects against clipping.
"""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Union

import numpy as np
import soundfile as sf

from ..atomic import InputSet, atomic_path, loaded_inputs  # noqa: F401 - loaded_inputs re-exported
from ..atomic import _LOADED_INPUTS as _INPUT_PATHS  # resolved paths this process loaded
from .errors import (
    AudioError,
    ChannelError,
    CorruptAudioError,
    EmptyFileError,
    MissingFileError,
    NonFiniteError,
    NotAudioError,
    OverwriteInputError,
    SilentAudioError,
    TooLongError,
    TooShortError,
    TruncatedAudioWarning,
    ZeroLengthError,
)

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, bytearray, BinaryIO]

#: Largest channel count accepted on input (7.1 surround).
MAX_CHANNELS = 8
#: Highest sample rate accepted on input: with the duration limit and MAX_CHANNELS it bounds the
#: memory one decoded file can take (a tiny compressed file cannot ask for gigabytes).
MAX_SAMPLE_RATE = 192000
#: Subtypes ``save`` accepts, by a short name.
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT", "PCM_16": "PCM_16",
            "PCM_24": "PCM_24", "FLOAT": "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
# Magic numbers of containers we recognise as audio (to tell "corrupt" from "not audio").
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff",
                b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\x1aE\xdf\xa3")
_AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a",
              ".aac", ".webm", ".wma", ".caf"}



def _cap(text: str) -> str:
    """First letter upper case, the rest as it is (``str.capitalize`` would lower-case a file name)."""
    return text[:1].upper() + text[1:]


def _describe(src: Source) -> str:
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    name = getattr(src, "name", None)
    if isinstance(name, str) and name and not name.startswith("<"):
        return f"'{name}'"
    return "the uploaded audio"


@dataclass
class _Input:
    """One source to decode: a file on disk (``path``) or bytes in memory (``data``)."""

    what: str
    suffix: str
    path: Path | None = None
    data: bytes | None = None

    def sf_source(self):
        """What soundfile reads: the path itself (seekable, no copy) or the bytes."""
        return os.fspath(self.path) if self.path is not None else io.BytesIO(self.data)

    def head(self, n: int) -> bytes:
        if self.path is None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data)


def _open(src: Source) -> _Input:
    """Check ``src`` exists and is not empty; a path stays a path (decoded from disk, never piped)."""
    what = _describe(src)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise MissingFileError(f"Audio file not found: '{path}'.")
        if path.is_dir():
            raise NotAudioError(f"'{path}' is a folder, not an audio file.")
        if not path.is_file():
            raise NotAudioError(f"'{path}' is not a regular file.")
        inp = _Input(what, path.suffix.lower(), path=path)
        _INPUT_PATHS.add(str(path.resolve()))
    elif isinstance(src, (bytes, bytearray, memoryview)):
        inp = _Input(what, "", data=bytes(src))
    else:
        data = src.read()
        inp = _Input(what, Path(getattr(src, "name", "") or "").suffix.lower() if isinstance(
            getattr(src, "name", None), str) else "", data=bytes(data or b""))
    if inp.size() == 0:
        raise EmptyFileError(f"{_cap(what)} is empty (0 bytes).")
    return inp


_SF_PREFIX = re.compile(r"^Error opening .*?: ", re.S)
_OBJ_REPR = re.compile(r"<_?[\w.]+ object at 0x[0-9a-fA-F]+>")


def _clean(msg: str, what: str) -> str:
    """soundfile's message without its "Error opening <path or object repr>:" prefix."""
    msg = _SF_PREFIX.sub("", str(msg).strip())
    msg = _OBJ_REPR.sub(what, msg).strip()
    return msg.rstrip(".") or "unknown format"


def _wav_truncation(inp: _Input) -> str | None:
    """For a RIFF/WAVE file: ``"the header promises X s, the file holds Y s"`` when the data chunk is cut short."""
    head = inp.head(1 << 20)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, rate, align = 12, 0, 0
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt " and body + 14 <= len(head):
            rate = struct.unpack("<I", head[body + 4:body + 8])[0]
            align = struct.unpack("<H", head[body + 12:body + 14])[0]
        elif cid == b"data":
            if size in (0, 0xFFFFFFFF) or not rate or not align:  # unknown length (streamed / RF64)
                return None
            held = max(inp.size() - body, 0)
            if held >= size:
                return None
            return (f"the header promises {size / align / rate:.1f} s, the file holds "
                    f"{held // align / rate:.1f} s")
        pos = body + size + (size & 1)
    return None


def _check_format(channels: int, rate: int, what: str) -> None:
    """Refuse, before decoding, a channel count or a sample rate outside what the studio handles."""
    if channels > MAX_CHANNELS:
        raise ChannelError(f"{_cap(what)} has {channels} channels; at most {MAX_CHANNELS} are supported.")
    if rate > MAX_SAMPLE_RATE or rate < 1:
        raise ChannelError(f"{_cap(what)} has a sample rate of {rate} Hz; at most {MAX_SAMPLE_RATE} Hz is supported.")


def _probe(src: Path) -> tuple[int, int] | None:
    """(channels, rate) of the first audio stream by ffprobe, or None when it cannot tell."""
    if not shutil.which("ffprobe"):
        return None
    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                           "stream=channels,sample_rate", "-of", "csv=p=0", f"file:{src}"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    try:
        rate, channels = (int(float(x)) for x in proc.stdout.decode().strip().splitlines()[0].split(",")[:2])
        return channels, rate
    except (ValueError, IndexError):
        return None


def _decode_ffmpeg(inp: _Input, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode any container ffmpeg understands, from a file (so it can seek: mp4/m4a with the index at the
    end). Bytes are written to a private temporary folder first; the folder is removed afterwards. At most
    ``max_seconds + 1`` s are decoded (memory stays bounded for very long files)."""
    with tempfile.TemporaryDirectory(prefix="audio-studio-decode-") as tmp:  # mode 0700
        if inp.path is not None:
            src = Path(inp.path).resolve()
        else:
            suffix = inp.suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", inp.suffix) else ""
            src = Path(tmp) / f"input{suffix}"
            src.write_bytes(inp.data)
        out = Path(tmp) / "decoded.wav"
        fmt = _probe(src)
        if fmt is not None:
            _check_format(fmt[0], fmt[1], inp.what)
        # "file:" keeps names with ':' or a leading '-' from being read as protocols or options
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", f"file:{src}", "-vn", "-map", "0:a:0"]
        if max_seconds is not None:
            cmd += ["-t", f"{max_seconds + 1:.3f}"]
        cmd += ["-f", "wav", "-acodec", "pcm_f32le", f"file:{out}"]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:] or "ffmpeg failed")
        return _read_channels_first(out)


_BLOCK_FRAMES = 1 << 18


def _read_channels_first(source) -> tuple[np.ndarray, int]:
    """soundfile read straight into a ``(C, T)`` float32 array, a block at a time (no ``(T, C)`` copy)."""
    with sf.SoundFile(source) as f:
        sr, n_ch = f.samplerate, f.channels
        out = np.empty((n_ch, max(int(f.frames), 0)), np.float32)
        pos = 0
        while True:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            n = len(block)
            if n == 0:
                break
            if pos + n > out.shape[1]:  # the header under-counted (some compressed formats): grow
                grown = np.empty((n_ch, max(pos + n, 2 * out.shape[1])), np.float32)
                grown[:, :pos] = out[:, :pos]
                out = grown
            out[:, pos:pos + n] = block.T
            pos += n
    return (out if pos == out.shape[1] else out[:, :pos].copy()), sr


def _decode(inp: _Input, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """-> ``(audio (C, T) float32, rate)``."""
    what = inp.what
    try:
        return _read_channels_first(inp.sf_source())
    except Exception as sf_err:  # noqa: BLE001 - soundfile raises LibsndfileError/RuntimeError
        sf_msg = _clean(str(sf_err), what)
    if shutil.which("ffmpeg"):
        try:
            return _decode_ffmpeg(inp, max_seconds)
        except ChannelError:
            raise
        except Exception as ff_err:  # noqa: BLE001 - reported below
            logger.debug("ffmpeg could not decode %s: %s", what, ff_err)
    head = inp.head(12)
    looks_audio = head[:4].startswith(_AUDIO_MAGIC) or head[:3] == b"ID3" or inp.suffix in _AUDIO_EXT \
        or head[4:8] == b"ftyp"
    if looks_audio:
        raise CorruptAudioError(f"{_cap(what)} looks like audio but cannot be decoded "
                                f"(damaged or truncated file?): {sf_msg}.")
    raise NotAudioError(f"{_cap(what)} is not an audio file we can read "
                        f"(supported: wav, flac, ogg, mp3{', m4a/aac and more with ffmpeg' if shutil.which('ffmpeg') else '; other formats need ffmpeg'}).")


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(C, T)`` audio to ``channels`` channels (mean downmix, repeat upmix)."""
    c = audio.shape[0]
    if c == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if c == 1:
        return np.repeat(audio, channels, axis=0)
    if channels < 1:
        raise ChannelError(f"Cannot convert {c} channels to {channels}.")
    if channels < c:
        return audio[:channels]
    return audio[np.arange(channels) % c]  # upmix by repeating the channels in order


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample ``(C, T)`` float32 audio with soxr (high quality)."""
    if sr_from == sr_to:
        return audio
    import soxr

    out = soxr.resample(np.ascontiguousarray(audio.T), sr_from, sr_to, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def _from_array(audio, rate, what: str) -> tuple[np.ndarray, int]:
    """``(C, T)`` float32 and the rate of an in-memory array (``(T,)``, ``(C, T)`` or ``(T, C)``)."""
    try:
        audio = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError):
        raise NotAudioError(f"{_cap(what)} is not an array of samples.") from None
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ChannelError(f"{_cap(what)} must be shaped (channels, samples), got {audio.shape}.")
    if audio.shape[0] > MAX_CHANNELS and audio.shape[1] <= MAX_CHANNELS:
        audio = audio.T  # (T, C) given
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise ValueError(f"{_cap(what)}: the sample rate {rate!r} is not a number.") from None
    if rate <= 0:
        raise AudioError(f"{_cap(what)}: invalid sample rate {rate} Hz.")
    _check_format(audio.shape[0], rate, what)
    return np.ascontiguousarray(audio), rate


def load(src: "Source | tuple | np.ndarray", sr: int | None = None, *, mono: bool = False,
         channels: int | None = None, max_seconds: float | None = None, min_seconds: float | None = None,
         rate: int | None = None, what: str | None = None) -> tuple[np.ndarray, int]:
    """Load audio as float32 ``(C, T)``.

    Args:
        src: a path, raw bytes, a binary file object, an ``(array, rate)`` pair or an array (then ``rate``);
            arrays may be ``(T,)``, ``(C, T)`` or ``(T, C)`` and get the same checks as decoded files.
        sr: resample to this rate (``None`` keeps the file's rate).
        mono: downmix to one channel (same as ``channels=1``).
        channels: convert to this many channels.
        max_seconds / min_seconds: duration limits, checked before resampling (and, when the header
            tells the length, before decoding: a too-long file is refused without reading it).

    Returns:
        ``(audio, rate)`` with ``audio.shape == (C, T)``.

    Raises:
        MissingFileError, EmptyFileError, NotAudioError, CorruptAudioError, ZeroLengthError,
        NonFiniteError, ChannelError, TooLongError, TooShortError. Every message names the file
        (or "the uploaded audio").

        rate: the sample rate of a bare array ``src``.
        what: how messages name an in-memory input (default "the audio").

    Warns:
        TruncatedAudioWarning (and a logged warning) when a WAV file holds less audio than its header
        promises; what is there is loaded.
    """
    if isinstance(src, np.ndarray) or (isinstance(src, tuple) and len(src) == 2):
        if isinstance(src, np.ndarray):
            if rate is None:
                raise ValueError(f"{_cap(what or 'the audio')}: give the sample rate with an array.")
            src = (src, rate)
        return _checked(*_from_array(src[0], src[1], what or "the audio"), what or "the audio", truncated=None,
                        decoded=False, mono=mono, channels=channels, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds)
    inp = _open(src)
    what = inp.what
    try:
        head = sf.info(inp.sf_source())
        head_seconds = head.frames / head.samplerate if head.samplerate else 0.0
    except Exception:  # noqa: BLE001 - no header soundfile knows: decode decides
        head, head_seconds = None, 0.0
    if max_seconds is not None and head_seconds > max_seconds:
        raise TooLongError(f"{_cap(what)} is {head_seconds:.1f} s long; the limit is {max_seconds:g} s.")
    if head is not None:
        _check_format(head.channels, head.samplerate, what)
    truncated = _wav_truncation(inp)
    audio, rate = _decode(inp, max_seconds)  # (C, T)
    n_ch, n = audio.shape
    if not truncated and head is not None and head.format == "FLAC" and head.samplerate == rate \
            and n < head.frames - max(0.01 * head.frames, 0.1 * rate):
        # a cut FLAC: soundfile stops ("lost sync"), ffmpeg decodes the frames that are there
        truncated = f"the header promises {head_seconds:.1f} s, the file holds {n / rate:.1f} s"
    return _checked(audio, rate, what, truncated=truncated, mono=mono, channels=channels, sr=sr,
                    max_seconds=max_seconds, min_seconds=min_seconds)


def _checked(audio: np.ndarray, rate: int, what: str, *, truncated, mono, channels, sr, max_seconds,
             min_seconds, decoded: bool = True) -> tuple[np.ndarray, int]:
    """The checks every input gets (length, channels, duration, finite), then channels and rate."""
    n_ch, n = audio.shape
    if n == 0:
        raise ZeroLengthError(f"{_cap(what)} contains no samples.")
    if n_ch < 1 or n_ch > MAX_CHANNELS:
        raise ChannelError(f"{_cap(what)} has {n_ch} channels; at most {MAX_CHANNELS} are supported.")
    seconds = n / rate
    if max_seconds is not None and seconds > max_seconds:
        raise TooLongError(f"{_cap(what)} is {'more than ' if decoded and seconds >= max_seconds + 0.999 else ''}"
                           f"{seconds:.1f} s long; the limit is {max_seconds:g} s.")
    if min_seconds is not None and seconds < min_seconds:
        raise TooShortError(f"{_cap(what)} is {seconds:.2f} s long; at least {min_seconds:g} s is needed.")
    if not all(np.isfinite(audio[:, i:i + _BLOCK_FRAMES]).all() for i in range(0, n, _BLOCK_FRAMES)):
        raise NonFiniteError(f"{_cap(what)} contains NaN or infinite samples.")
    if truncated:
        msg = f"{_cap(what)} is truncated: {truncated}; only that part is used."
        logger.warning(msg)
        warnings.warn(TruncatedAudioWarning(msg), stacklevel=2)
    if mono:
        channels = 1
    if channels is not None:
        audio = to_channels(audio, channels)
    if sr is not None and sr != rate:
        audio, rate = resample(audio, rate, sr), sr
    return audio, rate


def info(src: Union[str, os.PathLike]) -> dict:
    """Cheap header information (rate, channels, frames, seconds) without decoding."""
    try:
        i = sf.info(os.fspath(src))
    except Exception as err:  # noqa: BLE001
        raise NotAudioError(f"Cannot read the header of '{os.fspath(src)}': {_clean(str(err), 'the file')}.") from err
    return {"sample_rate": i.samplerate, "channels": i.channels, "frames": i.frames,
            "seconds": i.frames / i.samplerate if i.samplerate else 0.0}


def check_not_silent(audio: np.ndarray, what: str = "The audio", threshold_db: float = -80.0) -> None:
    """Raise :class:`SilentAudioError` when ``audio`` is quieter than ``threshold_db`` dBFS RMS."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms <= 10 ** (threshold_db / 20):
        raise SilentAudioError(f"{what} is silent.")


def protect_against_clipping(audio: np.ndarray, peak: float = 0.999) -> np.ndarray:
    """Scale ``audio`` down so its peak is at most ``peak`` (no-op when it already is):
    :func:`engines.audio.levels.limit_peak`."""
    from .levels import limit_peak

    return limit_peak(audio, peak)


def save(path: Union[str, os.PathLike], audio: np.ndarray, sr: int, subtype: str = "PCM_16", *,
         protect: Iterable[Union[str, os.PathLike]] = (), clip_protect: bool = True) -> Path:
    """Write ``(C, T)`` (or ``(T,)``) audio atomically as wav or flac.

    Args:
        path: destination; the format comes from the suffix (``.wav`` / ``.flac``).
        subtype: ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"`` (or ``"16"``, ``"24"``, ``"float"``).
        protect: extra paths that must never be overwritten (inputs of the current job).
        clip_protect: scale down audio that would clip (ignored for float output).

    Raises:
        OverwriteInputError: ``path`` is an input file.
        NonFiniteError: the audio holds NaN/inf.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Cannot write '{path.name}': use a .wav or .flac file name.")
    sub = SUBTYPES.get(subtype)
    if sub is None:
        raise ValueError(f"Unknown sample format '{subtype}'; use 16, 24 or float.")
    if fmt == "FLAC" and sub == "FLOAT":
        raise ValueError("FLAC cannot store float samples; use 16 or 24 bit.")
    if path in InputSet([*_INPUT_PATHS, *protect]):
        raise OverwriteInputError(f"Refusing to overwrite the input file '{path}'.")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"Expected audio shaped (C, T), got {audio.shape}.")
    if not np.isfinite(audio).all():
        raise NonFiniteError("Refusing to save audio that contains NaN or infinite samples.")
    if clip_protect and sub != "FLOAT":
        audio = protect_against_clipping(audio)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio.T, int(sr), subtype=sub, format=fmt)
    return path
