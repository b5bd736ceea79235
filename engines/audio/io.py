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
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO, Iterable, Union

import numpy as np
import soundfile as sf

from ..atomic import atomic_path
from .errors import (
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
    ZeroLengthError,
)

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, bytes, bytearray, BinaryIO]

#: Largest channel count accepted on input (7.1 surround).
MAX_CHANNELS = 8
#: Subtypes ``save`` accepts, by a short name.
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT", "PCM_16": "PCM_16",
            "PCM_24": "PCM_24", "FLOAT": "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
# Magic numbers of containers we recognise as audio (to tell "corrupt" from "not audio").
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff",
                b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\x1aE\xdf\xa3")
_AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a",
              ".aac", ".webm", ".wma", ".caf"}

# Resolved paths this process loaded: ``save`` never writes over them.
_INPUT_PATHS: set[str] = set()


def loaded_inputs() -> list[str]:
    """Resolved paths of every file this process has loaded (outputs must never replace them)."""
    return sorted(_INPUT_PATHS)


def _describe(src: Source) -> str:
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    return "the uploaded audio"


def _read_bytes(src: Source) -> tuple[bytes, str]:
    """Return the raw bytes of ``src`` and its file suffix (lower case, may be empty)."""
    if isinstance(src, (bytes, bytearray)):
        data, suffix = bytes(src), ""
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise MissingFileError(f"Audio file not found: '{path}'.")
        if path.is_dir():
            raise NotAudioError(f"'{path}' is a folder, not an audio file.")
        data, suffix = path.read_bytes(), path.suffix.lower()
        _INPUT_PATHS.add(str(path.resolve()))
    else:
        data = src.read()
        suffix = Path(getattr(src, "name", "") or "").suffix.lower()
    if len(data) == 0:
        raise EmptyFileError(f"{_describe(src).capitalize()} is empty (0 bytes).")
    return data, suffix


def _decode_ffmpeg(data: bytes) -> tuple[np.ndarray, int]:
    """Decode any container ffmpeg understands to float32 WAV in memory."""
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", "pipe:0", "-f", "wav", "-acodec", "pcm_f32le", "pipe:1"],
        input=data, capture_output=True, timeout=600,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:])
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return audio, sr


def _decode(data: bytes, suffix: str, what: str) -> tuple[np.ndarray, int]:
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return audio, sr
    except Exception as sf_err:  # soundfile raises LibsndfileError/RuntimeError
        sf_msg = str(sf_err)
    if shutil.which("ffmpeg"):
        try:
            return _decode_ffmpeg(data)
        except Exception as ff_err:  # noqa: BLE001 - reported below
            logger.debug("ffmpeg could not decode %s: %s", what, ff_err)
    looks_audio = data[:4].startswith(_AUDIO_MAGIC) or data[:3] == b"ID3" or suffix in _AUDIO_EXT \
        or data[4:8] == b"ftyp"
    if looks_audio:
        raise CorruptAudioError(f"{what.capitalize()} looks like audio but cannot be decoded "
                                f"(damaged or truncated file?): {sf_msg}")
    raise NotAudioError(f"{what.capitalize()} is not an audio file we can read "
                        f"(supported: wav, flac, ogg, mp3; other formats need ffmpeg).")


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


def load(src: Source, sr: int | None = None, *, mono: bool = False, channels: int | None = None,
         max_seconds: float | None = None, min_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Load audio as float32 ``(C, T)``.

    Args:
        src: a path, raw bytes or a binary file object.
        sr: resample to this rate (``None`` keeps the file's rate).
        mono: downmix to one channel (same as ``channels=1``).
        channels: convert to this many channels.
        max_seconds / min_seconds: duration limits, checked before resampling.

    Returns:
        ``(audio, rate)`` with ``audio.shape == (C, T)``.

    Raises:
        MissingFileError, EmptyFileError, NotAudioError, CorruptAudioError, ZeroLengthError,
        NonFiniteError, ChannelError, TooLongError, TooShortError.
    """
    what = _describe(src)
    data, suffix = _read_bytes(src)
    audio, rate = _decode(data, suffix, what)
    audio = np.ascontiguousarray(audio.T, dtype=np.float32)  # (C, T)
    n_ch, n = audio.shape
    if n == 0:
        raise ZeroLengthError(f"{what.capitalize()} contains no samples.")
    if n_ch < 1 or n_ch > MAX_CHANNELS:
        raise ChannelError(f"{what.capitalize()} has {n_ch} channels; at most {MAX_CHANNELS} are supported.")
    if not np.isfinite(audio).all():
        raise NonFiniteError(f"{what.capitalize()} contains NaN or infinite samples.")
    seconds = n / rate
    if max_seconds is not None and seconds > max_seconds:
        raise TooLongError(f"{what.capitalize()} is {seconds:.1f} s long; the limit is {max_seconds:g} s.")
    if min_seconds is not None and seconds < min_seconds:
        raise TooShortError(f"{what.capitalize()} is {seconds:.2f} s long; at least {min_seconds:g} s is needed.")
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
        raise NotAudioError(f"Cannot read the header of '{os.fspath(src)}': {err}") from err
    return {"sample_rate": i.samplerate, "channels": i.channels, "frames": i.frames,
            "seconds": i.frames / i.samplerate if i.samplerate else 0.0}


def check_not_silent(audio: np.ndarray, what: str = "The audio", threshold_db: float = -80.0) -> None:
    """Raise :class:`SilentAudioError` when ``audio`` is quieter than ``threshold_db`` dBFS RMS."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms <= 10 ** (threshold_db / 20):
        raise SilentAudioError(f"{what} is silent.")


def protect_against_clipping(audio: np.ndarray, peak: float = 0.999) -> np.ndarray:
    """Scale ``audio`` down so its peak is at most ``peak`` (no-op when it already is)."""
    m = float(np.max(np.abs(audio))) if audio.size else 0.0
    if m > peak:
        logger.info("Output peak %.3f would clip: scaled by %.3f", m, peak / m)
        return (audio * (peak / m)).astype(np.float32)
    return audio


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
    resolved = str(path.resolve())
    if resolved in _INPUT_PATHS or resolved in {str(Path(p).resolve()) for p in protect}:
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
