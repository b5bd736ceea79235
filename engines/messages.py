"""The one place that turns an exception into a message for a person.

The CLI (``launch.py``) prints :func:`user_message` on one line and exits with :data:`EXIT_USER_ERROR`;
the studio raises ``gr.Error(user_message(err))``; the Train tab shows the trainer's one-line error
(the full trace goes to the log only). Errors written for people (typed audio errors, checkpoint,
output-folder and validation errors) are shown as they are; anything else is named with its type,
so a bug is recognisable without a traceback.
"""
from __future__ import annotations

#: exit code of the CLI for every error in the input or the options
EXIT_USER_ERROR = 2
#: exception classes (by name, anywhere in the MRO) whose message is written for people
READABLE = ("AudioError", "CheckpointError", "OutputError", "FileNotFoundError", "ValueError", "NotFoundError",
            "PermissionError", "IsADirectoryError", "NotADirectoryError", "PolicyError")
_MAX_CHARS = 600


def one_line(text: str, limit: int = _MAX_CHARS) -> str:
    """Collapse whitespace and newlines; cut very long messages."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def user_message(err: BaseException) -> str:
    """A one-line message for ``err`` (never a traceback)."""
    msg = str(err).strip()
    if isinstance(err, OSError) and getattr(err, "strerror", None) and getattr(err, "filename", None):
        msg = f"{err.strerror}: '{err.filename}'"
    msg = msg or type(err).__name__
    names = {c.__name__ for c in type(err).__mro__}
    if isinstance(err, MemoryError):
        return "Out of memory: try a shorter file or fewer files at once."
    if isinstance(err, OSError) and getattr(err, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
        return "The disk is full: nothing was written."
    if names & set(READABLE):
        return one_line(msg)
    return one_line(f"Something went wrong ({type(err).__name__}): {msg}")
