"""`python launch.py vocals`: song(s) -> vocals + accompaniment."""
from __future__ import annotations

import argparse
import sys

HELP = ("vocal isolation: writes OUT_DIR/vocals.wav and OUT_DIR/accompaniment.wav (= mixture - vocals) "
        "for one input, OUT_DIR/<name>/... for several inputs or a folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engines.audio import limits

    parser.add_argument("--input", "-i", action="append", required=True, metavar="MIX",
                        help="a song file or a folder of songs (repeatable)")
    parser.add_argument("--out_dir", "-o", required=True, help="output folder")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the registry's default vocals model)")
    g.add_argument("--checkpoint", default=None, help="path to a vocals .safetensors checkpoint")
    parser.add_argument("--binary_mask", action="store_true",
                        help="apply the thresholded (binary) mask instead of the soft one (mask_at_eval)")
    parser.add_argument("--sharpen", type=limits.arg("vocals", "sharpen"), default=None,
                        help="soft-mask logit scale, > 0 (>1 = harder mask; default: the model's mask_sharpen)")
    parser.add_argument("--chunk_seconds", type=limits.arg("vocals", "chunk_seconds"), default=30.0,
                        help="streamed chunk length, 1-600 s (memory vs. overhead)")
    parser.add_argument("--subtype", default="PCM_16", choices=["PCM_16", "PCM_24", "FLOAT"], help="output sample format")
    parser.add_argument("--threads", type=limits.thread_count, default=None, help="torch CPU threads")
    parser.add_argument("--stop_on_error", action="store_true", help="stop at the first unreadable song")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launch.py vocals", description=HELP)
    add_arguments(p)
    return p


def run(args) -> int:
    from engines.audio.limits import set_threads

    from .api import VocalIsolator, isolate_to_files

    set_threads(args.threads)
    iso = VocalIsolator(args.checkpoint or args.model, chunk_seconds=args.chunk_seconds)
    last = [-1]

    def progress(frac: float, msg: str) -> None:
        pct = int(frac * 100)
        if not args.quiet and pct // 10 != last[0] // 10:
            last[0] = pct
            print(f"[{pct:3d}%] {msg}", file=sys.stderr, flush=True)

    outcomes = isolate_to_files(args.input, args.out_dir, isolator=iso, binary_mask=args.binary_mask or None,
                                sharpen=args.sharpen, subtype=args.subtype, progress=progress,
                                keep_going=not args.stop_on_error)
    failed = 0
    for o in outcomes:
        if o.error:
            failed += 1
            print(f"error: {o.input}: {o.error}", file=sys.stderr)
        else:
            print(f"{o.input} -> {o.paths['vocals']}, {o.paths['accompaniment']} "
                  f"({o.duration_s:.1f} s in {o.elapsed_s:.2f} s, model {iso.model_name})")
    return 0 if failed == 0 else 2


def main(argv: list[str] | None = None) -> int:
    return run(get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
