"""Flags every engine CLI shares: the output format, a region of the main input, and ``--dry_run``.

One call in each engine's ``add_arguments``::

    cli_common.add_arguments(parser)        # --format --subtype --bitrate --out_rate --out_channels
                                            # --start --end --dry_run

and in its ``run``: ``cli_common.output_format(args, like=main_input)`` for ``Result.save(fmt=...)``,
``cli_common.region(args, main_input)`` for the main input (the whole file when neither ``--start`` nor
``--end`` is given) and, for ``--dry_run``, ``cli_common.print_estimate(engine, inputs, config)``.

The format options are a :class:`OutputConfig` (:mod:`engines.options`), so the studio builds its widgets from
the same declaration (``studio.widgets``). Nothing here imports torch.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from engines.audio.limits import Range
from engines.base import MP3_BITRATES, OutputFormat
from engines.options import ConfigBase, option
from engines import options

SUBTYPE_CHOICES = ("auto", "16", "24", "float", "PCM_16", "PCM_24", "FLOAT")


@dataclass(frozen=True)
class OutputConfig(ConfigBase):
    """How a run's audio files are written (``Result.save(fmt=OutputFormat(...))``)."""

    format: str = option("wav", "audio container: wav, flac or mp3", choices=("wav", "flac", "mp3"),
                         group="output format")
    subtype: str = option("auto", "sample format: auto (the input's bit depth), 16, 24 or float (wav only)",
                          choices=SUBTYPE_CHOICES, group="output format")
    bitrate: int = option(192, "MP3 bitrate in kbps (constant bitrate; mp3 only)", choices=MP3_BITRATES,
                          group="output format")
    out_rate: int | None = option(None, "output sample rate in Hz (default: the input's)",
                                  range=Range(8000, 384000, integer=True), group="output format")
    out_channels: int | None = option(None, "output channels (default: the input's)",
                                      range=Range(1, 8, integer=True), group="output format")

    def output_format(self, like: Any = None) -> OutputFormat:
        return OutputFormat(self.format, self.subtype, self.bitrate, self.out_rate, self.out_channels, like=like)


def add_arguments(parser: argparse.ArgumentParser, *, region: bool = True, dry_run: bool = True) -> None:
    """Add the output format flags (and ``--start``/``--end``, ``--dry_run``) to an engine's parser."""
    options.add_arguments(parser, OutputConfig)
    g = parser.add_argument_group("run")
    if region:
        g.add_argument("--start", type=Range(0, 86400).arg, default=None, metavar="SECONDS",
                       help="process the main input from this time (a quick preview of a region)")
        g.add_argument("--end", type=Range(0, 86400, lo_open=True).arg, default=None, metavar="SECONDS",
                       help="process the main input up to this time")
    if dry_run:
        g.add_argument("--dry_run", action="store_true",
                       help="estimate the time and peak memory from a short probe on this machine, then stop")


def output_format(args: argparse.Namespace, like: Any = None) -> OutputFormat:
    """The :class:`OutputFormat` of the parsed flags, following ``like`` (the main input) by default."""
    return options.from_args(OutputConfig, args).output_format(like=like)


def crop(audio, sr: int, start: float | None, end: float | None, what: str = "The input"):
    """``(C, T)`` audio between ``start`` and ``end`` seconds (either may be ``None``)."""
    n = audio.shape[-1]
    a = 0 if start is None else int(round(float(start) * sr))
    b = n if end is None else min(n, int(round(float(end) * sr)))
    if a >= n:
        raise ValueError(f"{what} is {n / sr:.2f} s long; the region starts at {start:g} s.")
    if b <= a:
        raise ValueError(f"The region is empty: end ({end:g} s) must be after start ({start or 0:g} s).")
    return audio[..., a:b]


def region(args: argparse.Namespace, src: Any, what: str = "The input"):
    """``src`` as it is without ``--start``/``--end``; else its region as ``(audio, rate)``."""
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if start is None and end is None:
        return src
    from engines.audio import io

    audio, sr = io.load(src)
    return crop(audio, sr, start, end, what), sr


# ---------------------------------------------------------------------------------------------- estimate
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakRSS:
    """Peak resident memory of this process while the ``with`` block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        return False


def estimate(engine, inputs: Any, config=None, *, probe_seconds: float = 2.0,
             total_seconds: float | None = None, max_probe_seconds: float = 8.0,
             run: Callable | None = None) -> dict[str, Any]:
    """Time and peak memory of ``engine.run(inputs, config)`` on this machine, from short probes.

    The main input (``engine.INPUTS[0]``) is cut to ``probe_seconds`` and to twice that (at most its length and
    ``max_probe_seconds``); after one warm-up run, both are timed and their peak resident memory measured, and
    both figures are extrapolated linearly to the input's length (or ``total_seconds``, e.g. a batch). An input
    no longer than the probe is simply run and measured. Returns ``{"seconds", "time_s", "peak_mb",
    "probes": [{"seconds", "time_s", "peak_mb"}], "method", "warmup_s"}`` (``warmup_s``: what the first call
    took beyond its share: the one-time start-up a fresh process pays).
    """
    from engines.audio import io

    named = engine.inputs_of(dict(inputs) if isinstance(inputs, Mapping) else inputs)
    main = engine.INPUTS[0]
    audio, sr = io.load(named[main])
    length = audio.shape[-1] / sr
    total = float(total_seconds if total_seconds is not None else length)
    run = run or (lambda x: engine.run(x, config))
    p1 = min(length, max(0.5, float(probe_seconds)))
    p2 = min(length, max_probe_seconds, 2 * p1)
    probes = []

    def one(seconds: float) -> dict[str, float]:
        n = max(1, int(round(seconds * sr)))
        x = {**named, main: (audio[:, :n], sr)}
        with _PeakRSS() as mem:
            t = time.perf_counter()
            run(x)
            dt = time.perf_counter() - t
        return {"seconds": round(n / sr, 3), "time_s": round(dt, 3), "peak_mb": round(mem.peak / 2**20, 1)}

    warmup = one(min(p1, 1.0))  # lazy initialisation (JIT, caches) is not part of the per-second cost
    probes.append(one(p1))
    if p2 - p1 >= 0.25:
        probes.append(one(p2))
    if len(probes) == 2:
        (a, b) = probes
        slope_t = max(0.0, (b["time_s"] - a["time_s"]) / (b["seconds"] - a["seconds"]))
        slope_m = max(0.0, (b["peak_mb"] - a["peak_mb"]) / (b["seconds"] - a["seconds"]))
        time_s = b["time_s"] + slope_t * max(0.0, total - b["seconds"])
        peak = b["peak_mb"] + slope_m * max(0.0, total - b["seconds"])
        method = "linear from two probes"
    else:
        a = probes[0]
        time_s = a["time_s"] * max(1.0, total / max(a["seconds"], 1e-6))
        peak = a["peak_mb"]
        method = "measured" if total <= a["seconds"] + 1e-6 else "proportional to length from one probe"
    extra = warmup["time_s"] - probes[0]["time_s"] * warmup["seconds"] / probes[0]["seconds"]
    return {"seconds": round(total, 3), "time_s": round(time_s, 2), "peak_mb": round(max(peak, warmup["peak_mb"]), 1),
            "probes": probes, "method": method, "warmup_s": round(max(0.0, extra), 2)}


def describe(est: Mapping[str, Any]) -> str:
    """One line for people: "about 12.3 s and 850 MB peak for 180.0 s of audio (...)"."""
    probes = ", ".join(f"{p['seconds']:g} s in {p['time_s']:.2f} s" for p in est["probes"])
    first = f", plus about {est['warmup_s']:.1f} s of one-time start-up in a fresh process" \
        if est.get("warmup_s", 0) >= 0.1 else ""
    return (f"Estimate: about {est['time_s']:.1f} s and {est['peak_mb']:.0f} MB peak memory for "
            f"{est['seconds']:.1f} s of audio on this machine{first} ({est['method']}; probes: {probes}).")


def print_estimate(engine, inputs: Mapping[str, Any], config=None, **kw) -> int:
    """``--dry_run``: print the estimate and return 0 (nothing is written)."""
    print(describe(estimate(engine, inputs, config, **kw)))
    print("dry run: nothing was written.", file=sys.stderr)
    return 0


def progress_printer(stream=None, step: int = 10) -> Callable[[float, str], None]:
    """An engine ``progress(fraction, message)`` that prints ``[ 40%] message`` to stderr every ``step`` %."""
    last = [-step]

    def show(fraction: float, message: str = "") -> None:
        pct = int(max(0.0, min(1.0, float(fraction))) * 100)
        if pct - last[0] >= step or pct == 100 and last[0] != 100:
            last[0] = pct
            print(f"[{pct:3d}%] {message}", file=stream or sys.stderr, flush=True)

    return show


# ---------------------------------------------------------------------------------------------- batch
def batch_folders(files, out_dir) -> list:
    """One output folder per input of a batch: ``out_dir`` itself for a single input, else
    ``out_dir/<safe name of its stem>`` (a file stored as ``<song>/mixture.wav`` beside others of the same stem
    is named after its folder; a name used twice gets ``_2``, ``_3``...). Nothing is created."""
    from pathlib import Path

    from engines.atomic import safe_name

    files, out = [Path(f) for f in files], Path(out_dir)
    if len(files) == 1:
        return [out]
    stems = [f.stem for f in files]
    used: set[str] = set()
    folders = []
    for f in files:
        base = safe_name(f.parent.name if stems.count(f.stem) > 1 and f.parent.name else f.stem, "song")
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        folders.append(out / name)
    return folders
