"""Typed audio errors with messages a person understands.

Every error is a ``ValueError`` subclass (``AudioError``) so callers can catch one type;
the CLI prints ``str(err)`` and exits with code 2, the studio shows it as ``gr.Error``.
"""
from __future__ import annotations


class AudioError(ValueError):
    """Base class of every input problem the audio core reports."""


class MissingFileError(AudioError, FileNotFoundError):
    """The path does not exist."""


class EmptyFileError(AudioError):
    """The file exists but holds zero bytes."""


class NotAudioError(AudioError):
    """The file is not in an audio format we can read."""


class CorruptAudioError(AudioError):
    """The file looks like audio but cannot be decoded."""


class ZeroLengthError(AudioError):
    """The audio decodes to zero samples."""


class NonFiniteError(AudioError):
    """The audio contains NaN or infinite samples."""


class ChannelError(AudioError):
    """The channel count is not supported."""


class TooLongError(AudioError):
    """The audio is longer than the allowed duration."""


class TooShortError(AudioError):
    """The audio is shorter than the minimum duration."""


class SilentAudioError(AudioError):
    """The audio is (digitally) silent where sound is required."""


class OverwriteInputError(AudioError):
    """An output path would overwrite an input file."""


class TruncatedAudioWarning(UserWarning):
    """The file holds less audio than its header promises (cut short by a failed copy or download).

    :func:`engines.audio.io.load` loads what is there, logs the message and issues this warning, so a
    caller can record it (``warnings.catch_warnings(record=True)``) and show it with the result.
    """


import warnings as _warnings

# The message is also logged (the CLI prints it once); record it with
# ``warnings.catch_warnings(record=True)`` + ``warnings.simplefilter("always", TruncatedAudioWarning)``.
_warnings.filterwarnings("ignore", category=TruncatedAudioWarning)
