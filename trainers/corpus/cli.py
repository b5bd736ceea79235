"""``corpus`` command: render the training corpus of every default model.

    python launch.py corpus --out DIR --minutes M --seed S [--soundfont PATH] [--kinds ...] [--workers N]
                            [--effects S | --no-effects] [--real S | --no-real]
    python -m trainers.corpus.cli --out DIR --minutes M ...

``--minutes`` is the audio duration to plan *per kind* (songs: mixture length; timbre: melody
length of pairs and solos; fusion: length of a + b; clips: clip length; query: mixture length);
``--kind-minutes KIND=M`` overrides it for single kinds.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from . import KINDS
from .deps import CorpusDependencyError, check_all, find_soundfont

log = logging.getLogger(__name__)

HELP = ("Render the training corpus (songs, timbre, fusion, clips, query) from music21 scores, "
        "FluidSynth + a GM soundfont, espeak-ng and Debian sound themes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the corpus options to ``parser``."""
    parser.add_argument("--out", required=True, help="output folder (one subfolder per kind)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="audio minutes to render per kind (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed: the same seed gives identical files")
    parser.add_argument("--soundfont", default=None,
                        help="GM soundfont (.sf2); default FluidR3_GM, else TimGM6mb")
    parser.add_argument("--piano-soundfont", default=None,
                        help="timbre kind: render the pianos with this soundfont (.sf2) and the violins with "
                             "--soundfont: another piano's sound paired with the target violin, for "
                             "train timbre-synth --input_only (default: --soundfont for both)")
    parser.add_argument("--timbre-slow", type=float, default=0.0, metavar="SHARE",
                        help="timbre kind: play this share (0-1) of the melodies slowly, at a felt beat of 24-48 bpm, "
                             "so notes are held for seconds (default 0)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=None,
                        help="kinds to render, in this order (default: clips query songs timbre fusion)")
    parser.add_argument("--kind-minutes", nargs="*", default=[], metavar="KIND=M",
                        help="per-kind override of --minutes, e.g. fusion=15 songs=40")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--stereo", action="store_true", help="write stereo songs (default mono)")
    parser.add_argument("--effects", type=float, default=1.0, metavar="STRENGTH",
                        help="production chain per stem (reverb, EQ, compression, saturation, doubling, chorus, "
                             "band-limiting, mp3/ogg round trips, noise): 1 = the documented probabilities, "
                             "0 = none (see docs/corpus.md)")
    parser.add_argument("--no-effects", dest="effects", action="store_const", const=0.0,
                        help="no production chain (same as --effects 0)")
    parser.add_argument("--real", type=float, default=1.0, metavar="STRENGTH",
                        help="real recordings where installed (trainers/corpus/real_sources.py): scales the chance "
                             "of a real speaker, drum loop or kit, effect file or music bed instead of a render; "
                             "1 = the documented probabilities, 0 = renders only (see docs/corpus.md)")
    parser.add_argument("--no-real", dest="real", action="store_const", const=0.0,
                        help="renders only, no real recordings (same as --real 0)")
    parser.add_argument("--estimate", action="store_true", help="print the plan and estimates, render nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _kind_minutes(args: argparse.Namespace) -> dict[str, float]:
    out = {}
    for item in args.kind_minutes or []:
        k, _, v = item.partition("=")
        if k not in KINDS or not v:
            raise ValueError(f"--kind-minutes expects KIND=MINUTES with KIND in {KINDS}, got {item!r}")
        out[k] = float(v)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the command; return the process exit code."""
    from .kinds import KIND_CLASSES
    from .kinds.base import Context
    from .runner import plan_kind, render_plan

    kinds = args.kinds or list(KINDS)
    try:
        overrides = _kind_minutes(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        found = check_all(args.soundfont, need_espeak=any(k in ("songs", "clips", "query") for k in kinds))
    except CorpusDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from engines.audio.limits import Range

    for flag, value, allowed in (("--effects", args.effects, Range(0.0, 1.5)), ("--real", args.real, Range(0.0, 2.0)),
                                 ("--timbre-slow", args.timbre_slow, Range(0.0, 1.0))):
        problem = allowed.problem(value)
        if problem:  # before anything is created
            print(f"error: {flag} {value:g}: {problem}", file=sys.stderr)
            return 2
    piano_sf = None
    if args.piano_soundfont:
        try:
            piano_sf = str(find_soundfont(args.piano_soundfont))
        except CorpusDependencyError as exc:
            print(f"error: --piano-soundfont: {exc}", file=sys.stderr)
            return 2
    root = Path(args.out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    ctx = Context(root=root, soundfont=found["soundfont"], seed=int(args.seed), stereo=bool(args.stereo),
                  effects=float(args.effects), real=float(args.real), piano_soundfont=piano_sf,
                  timbre_slow=float(args.timbre_slow))
    workers = max(1, int(args.workers))

    plans = []
    for k in kinds:
        minutes = overrides.get(k, args.minutes)
        plans.append(plan_kind(KIND_CLASSES[k](), ctx.seed, minutes))
    total_t = sum(p.time_s(workers) for p in plans)
    total_b = sum(p.disk_bytes for p in plans)
    print(f"corpus -> {root}  seed={ctx.seed}  soundfont={Path(ctx.soundfont).name}  workers={workers}",
          file=sys.stderr)
    for p in plans:
        print(f"  {p.kind.name:7s} {len(p.items):5d} items  {p.seconds / 60:7.1f} audio min  "
              f"~{p.disk_bytes / 1e6:7.0f} MB  ~{p.time_s(workers) / 60:5.1f} min", file=sys.stderr)
    print(f"  total estimate: ~{total_b / 1e9:.2f} GB, ~{total_t / 60:.1f} min wall "
          "(rough; first use also parses scores)", file=sys.stderr)
    if args.estimate:
        return 0
    summary = {"seed": ctx.seed, "soundfont": Path(ctx.soundfont).name, "stereo": ctx.stereo,
               **({"piano_soundfont": Path(piano_sf).name} if piano_sf else {}),
               **({"timbre_slow": ctx.timbre_slow} if ctx.timbre_slow else {}),
               "effects": ctx.effects, "real": ctx.real, "kinds": {}}
    failed = 0
    for p in plans:
        t0 = time.time()
        stats = render_plan(p, ctx, workers, progress=not args.no_progress)
        failed += stats["failed"]
        rate = (stats["wall_seconds"] / 60.0) / (stats["audio_seconds"] / 3600.0) if stats["audio_seconds"] else 0.0
        print(f"  {p.kind.name}: rendered {stats['rendered']}, skipped {stats['skipped']}, failed "
              f"{stats['failed']} in {time.time() - t0:.1f} s"
              + (f"  ({rate:.1f} wall min per audio hour)" if rate else ""), file=sys.stderr)
        summary["kinds"][p.kind.name] = {"items": len(p.items), "planned_minutes": round(p.seconds / 60, 2)}
    (root / "corpus.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m trainers.corpus.cli``."""
    parser = argparse.ArgumentParser(prog="corpus", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
