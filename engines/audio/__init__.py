"""Shared audio core: I/O, spectral operations, metrics and typed errors."""
from .errors import (AudioError, ChannelError, CorruptAudioError, EmptyFileError, MissingFileError,
                     NonFiniteError, NotAudioError, OverwriteInputError, SilentAudioError, TooLongError,
                     TooShortError, ZeroLengthError)
from .io import check_not_silent, info, load, resample, save, to_channels

__all__ = [
    "AudioError", "ChannelError", "CorruptAudioError", "EmptyFileError", "MissingFileError",
    "NonFiniteError", "NotAudioError", "OverwriteInputError", "SilentAudioError", "TooLongError",
    "TooShortError", "ZeroLengthError", "check_not_silent", "info", "load", "resample", "save",
    "to_channels",
]
