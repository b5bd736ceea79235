"""`python launch.py vocals`: song(s) -> vocals + accompaniment.

The option flags come from :class:`engines.vocals.Config` (same names as its fields, ``--preset``); this module
adds the I/O flags, ``--model`` / ``--checkpoint`` and ``--device``, holds one engine per run and writes every
song through ``VocalsResult.save``.
"""
from __future__ import annotations

import argparse
import sys

HELP = ("vocal isolation: writes OUT_DIR/vocals.wav and OUT_DIR/accompaniment.wav (= mixture - vocals) "
        "(--stems 4: vocals, drums, bass, other) for one input, OUT_DIR/<name>/... for several inputs or a folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engines import cli_common, device, options

    from .config import Config

    parser.add_argument("--input", "-i", action="append", required=True, metavar="MIX",
                        help="a song file or a folder of songs (repeatable)")
    parser.add_argument("--out_dir", "-o", required=True, help="output folder")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the registry's default vocals model)")
    g.add_argument("--checkpoint", default=None, help="path to a vocals .safetensors checkpoint")
    options.add_arguments(parser, Config)
    device.add_argument(parser)
    cli_common.add_arguments(parser, region=False)  # --format --subtype --bitrate --out_rate --out_channels --dry_run
    parser.add_argument("--stop_on_error", action="store_true", help="stop at the first unreadable song")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launch.py vocals", description=HELP)
    add_arguments(p)
    return p


def run(args) -> int:
    from engines import cli_common, options
    from engines.audio.limits import set_threads

    from .api import Engine, expand_inputs, isolate_to_files
    from .config import Config

    cfg = options.from_args(Config, args)
    set_threads(cfg.threads)
    fmt = cli_common.output_format(args)  # each song's own rate, channels and bit depth by default
    eng = Engine.load(args.checkpoint or args.model, device=args.device)
    if args.dry_run:
        from engines.audio import io as audio_io

        songs = expand_inputs(args.input)
        total = sum(audio_io.info(f)["seconds"] for f in songs)
        return cli_common.print_estimate(eng, {"mix": songs[0]}, cfg, total_seconds=total)
    last = [-1]

    def progress(frac: float, msg: str) -> None:
        pct = int(frac * 100)
        if not args.quiet and pct // 10 != last[0] // 10:
            last[0] = pct
            print(f"[{pct:3d}%] {msg}", file=sys.stderr, flush=True)

    outcomes = isolate_to_files(args.input, args.out_dir, isolator=eng, config=cfg, fmt=fmt,
                                progress=progress, keep_going=not args.stop_on_error)
    from . import api

    failed = 0
    for o in outcomes:
        if o.error:
            failed += 1
            print(f"error: {o.input}: {o.error}", file=sys.stderr)
        else:
            written = ", ".join(str(o.paths[n]) for n in (api.STEMS_4 if cfg.stems == 4 else api.STEMS))
            print(f"{o.input} -> {written} "
                  f"({o.duration_s:.1f} s in {o.elapsed_s:.2f} s, model {eng.model_name}, {eng.device})")
    return 0 if failed == 0 else 2


def main(argv: list[str] | None = None) -> int:
    return run(get_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
