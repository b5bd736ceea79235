"""One place for the limits every engine enforces: duration, threads and the range of every numeric option.

* :func:`max_seconds` -- the longest input any engine (CLI, API, studio) accepts: :data:`DEFAULT_MAX_SECONDS`
  (900 s), overridable with the environment variable ``AUDIO_STUDIO_MAX_SECONDS``.
* :data:`MIN_SECONDS` -- the shortest input each engine accepts.
* :func:`set_threads` / :func:`thread_count` -- torch CPU threads, ``None`` or ``1 .. 4 x cores``.
* :class:`Range` and :data:`OPTIONS` -- the allowed range of every numeric option of the four engines. The CLIs
  use ``Range.arg`` as the argparse ``type`` (so ``--sharpen nan`` is refused before any work) and the APIs call
  :func:`check` (so the studio, which calls the APIs, gets the same refusal with the same words).

Nothing here imports torch at module level: the command-line parsers stay fast.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

#: default longest input, seconds (15 minutes)
DEFAULT_MAX_SECONDS = 900.0
#: the environment variable that overrides it (also read by the studio)
ENV_MAX_SECONDS = "AUDIO_STUDIO_MAX_SECONDS"
#: shortest input per engine, seconds (the main input; queries and references have their own minimum)
MIN_SECONDS = {"separate": 0.5, "vocals": 1.0, "fuse": 1.0, "timbre": 0.05}


def max_seconds() -> float:
    """The longest input in seconds: ``$AUDIO_STUDIO_MAX_SECONDS`` or :data:`DEFAULT_MAX_SECONDS`.

    Raises:
        ValueError: the environment variable is not a positive finite number.
    """
    raw = os.environ.get(ENV_MAX_SECONDS, "").strip()
    if not raw:
        return DEFAULT_MAX_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{ENV_MAX_SECONDS}={raw!r} is not a valid duration: give a positive number of seconds.")
    return value


# --------------------------------------------------------------------------------------------- ranges
@dataclass(frozen=True)
class Range:
    """A closed (or half-open) numeric range of one option.

    Args:
        lo, hi: bounds (``None`` = unbounded on that side; values must still be finite).
        integer: the option is an integer.
        lo_open: ``lo`` itself is excluded (``> lo``).
        allow: extra values accepted outside the range (e.g. ``0`` = "detect").
        power_of_two: the value must be a power of two.
        note: a few words appended to the message (what the special values mean).
    """

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False
    allow: tuple = ()
    power_of_two: bool = False
    note: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.power_of_two:
            kind = "a power of two"
        if self.lo is not None and self.hi is not None:
            if self.lo_open:
                text = f"{kind} above {self.lo:g} and at most {self.hi:g}"
            else:
                text = f"{kind} from {self.lo:g} to {self.hi:g}"
        elif self.lo is not None:
            text = f"{kind} {'above' if self.lo_open else 'of at least'} {self.lo:g}"
        elif self.hi is not None:
            text = f"{kind} of at most {self.hi:g}"
        else:
            text = f"a finite {kind[2:] if kind.startswith('a ') else kind}"
        if self.allow:
            text += " (or " + " or ".join(f"{a:g}" for a in self.allow) + ")"
        if self.note:
            text += f"; {self.note}"
        return text

    def problem(self, value) -> str | None:
        """``None`` when ``value`` is allowed, else ``"expected ..."``."""
        expected = f"expected {self.describe()}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            return expected
        try:
            v = float(value)
        except (TypeError, ValueError):
            return expected
        if not math.isfinite(v) or (self.integer and v != int(v)):
            return expected
        if v in self.allow:
            return None
        bad = (self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)) or \
              (self.hi is not None and v > self.hi)
        if self.power_of_two and not bad:
            bad = v < 1 or int(v) & (int(v) - 1) != 0
        return expected if bad else None

    def arg(self, text: str):
        """argparse ``type``: parse ``text`` and check it (``argparse.ArgumentTypeError`` on a bad value)."""
        try:
            if self.integer:
                value = int(str(text).strip(), 10)
            else:
                value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if self.integer else 'a number'}; "
                                             f"expected {self.describe()}") from None
        msg = self.problem(value)
        if msg:
            raise argparse.ArgumentTypeError(f"got {str(text).strip()}; {msg}")
        return value

    def optional_arg(self, text: str):
        """Like :meth:`arg`, but ``None``/``none``/empty give ``None``."""
        return None if str(text).strip().lower() in ("none", "") else self.arg(text)


def finite_float(text: str) -> float:
    """argparse ``type``: any finite number (refuses ``nan``, ``inf``)."""
    return Range().arg(text)


def positive_float(text: str) -> float:
    """argparse ``type``: a finite number above 0."""
    return Range(0, None, lo_open=True).arg(text)


def bounded_int(lo: int, hi: int):
    """argparse ``type`` for an integer within ``lo .. hi``."""
    return Range(lo, hi, integer=True).arg


# one name (as the API and the CLI flag spell it) -> its range, per engine
_SEC = Range(0, 3600, lo_open=True)
OPTIONS: dict[str, dict[str, Range]] = {
    # vocals: engines.vocals.Config holds its ranges
    # "fuse": the ranges are the fields of engines.fusion.Config
    # timbre: engines.timbre.Config holds its ranges
}


def arg(engine: str, name: str, *, optional: bool = False):
    """argparse ``type`` of option ``name`` of ``engine`` (see :data:`OPTIONS`)."""
    r = OPTIONS[engine][name]
    return r.optional_arg if optional else r.arg


def check(engine: str, **values) -> None:
    """Refuse any option of ``engine`` outside its range (``None`` values are skipped: "use the default").

    Raises:
        ValueError: ``"Invalid setting: <name> ... ; expected ..."`` for the first bad value.
    """
    table = OPTIONS[engine]
    for name, value in values.items():
        if value is None:
            continue
        msg = table[name].problem(value)
        if msg:
            raise ValueError(f"Invalid setting: {name} = {value!r}; {msg}.")


# --------------------------------------------------------------------------------------------- threads
def max_threads() -> int:
    """The most CPU threads an option may ask for (4 per core)."""
    return 4 * (os.cpu_count() or 1)


def check_threads(n) -> int | None:
    """``None`` (torch's default) or an integer ``1 .. max_threads()``; raises ``ValueError`` otherwise."""
    if n is None:
        return None
    r = Range(1, max_threads(), integer=True)
    msg = r.problem(n)
    if msg:
        raise ValueError(f"Invalid setting: threads = {n!r}; {msg} (this machine has {os.cpu_count() or 1} cores).")
    return int(n)


def thread_count(text: str) -> int:
    """argparse ``type`` for ``--threads``."""
    try:
        n = int(str(text).strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer; expected 1 to {max_threads()}") from None
    msg = Range(1, max_threads(), integer=True).problem(n)
    if msg:
        raise argparse.ArgumentTypeError(f"got {n}; {msg} (this machine has {os.cpu_count() or 1} cores)")
    return n


def set_threads(n: int | None) -> int:
    """Set torch's CPU threads to ``n`` (checked; ``None`` leaves torch's default). Returns the count in use."""
    n = check_threads(n)
    import torch

    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()
