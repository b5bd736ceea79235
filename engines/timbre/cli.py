"""`timbre`: play a piano recording as a violin (or back), keeping the notes.

    python launch.py timbre --input X.wav --target violin --out_dir DIR [--style_ref CLIP] [--preset fast|refined]
                            [--model NAME | --checkpoint PATH] [--phase griffinlim|input] [--gl_iters N]
                            [--threads N] [--device auto|cpu|cuda]

The option flags come from :class:`engines.timbre.Config` (same names as its fields); this module adds the I/O
flags, ``--model`` / ``--checkpoint`` and ``--device``, holds one engine per run and writes ``DIR/<target>.wav``
(16-bit, the input's rate and length) through ``TimbreResult.save``; it prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys

HELP = ("timbre transfer: piano <-> violin (writes OUT_DIR/<target>.wav at the input's length); synthesis models "
        "(timbre-synth-*) are monophonic and warn on polyphonic input")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engines import cli_common, device, options

    from .config import Config

    parser.add_argument("--input", required=True, help="audio file to transform")
    parser.add_argument("--out_dir", required=True, help="output folder (created)")
    parser.add_argument("--style_ref", default=None, help="a clip of the target instrument to take its style from")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the registered default)")
    g.add_argument("--checkpoint", default=None, help="a .safetensors checkpoint from `train timbre`")
    options.add_arguments(parser, Config)
    for action in parser._actions:  # the instrument is always named on the command line (as before)
        if action.dest == "target":
            action.required = True
    device.add_argument(parser)
    cli_common.add_arguments(parser)  # --format --subtype --bitrate --out_rate --out_channels --start --end --dry_run


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launch.py timbre", description=HELP)
    add_arguments(p)
    return p


def run(args) -> int:
    from engines import cli_common, options
    from engines.atomic import check_names

    from .api import TimbreEngine
    from .config import Config

    cfg = options.from_args(Config, args)
    protect = [args.input] + ([args.style_ref] if args.style_ref else [])
    fmt = cli_common.output_format(args, like=args.input)
    check_names(args.out_dir, [f"{cfg.target}.{fmt}"], protect)  # before the work
    engine = TimbreEngine.load(args.checkpoint or args.model, device=args.device)
    job = {"input": cli_common.region(args, args.input), "style_ref": args.style_ref}
    if args.dry_run:
        return cli_common.print_estimate(engine, job, cfg)
    res = engine.run(job, cfg,
                     progress=lambda f, m: print(f"\r[{f:4.0%}] {m:<40}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    saved = res.save(args.out_dir, inputs=protect, fmt=fmt)
    if res.warning:  # e.g. a polyphonic input given to a (monophonic) synthesis model
        print(f"warning: {res.warning}", file=sys.stderr)
    print(json.dumps(res.summary(saved[f"{res.target}.{fmt}"])))
    return 0
