"""``python launch.py fuse --a A --b B --out_dir DIR ...``: writes DIR/fusion.wav and DIR/fusion.json.

``--b`` may be repeated and may name a folder of songs: each B is fused with the one song A (same options) into
``DIR/<B's name>/fusion.wav`` + ``fusion.json``, with one engine for the whole run; an unreadable B is reported
(``error: ...``) and the others still run (exit code 2; ``--stop_on_error`` stops at the first).

Every option flag comes from :class:`engines.fusion.Config` (same names, same defaults; ``--preset``).
"""
from __future__ import annotations

import argparse
import sys

HELP = "A/B fusion: two songs -> one arrangement (A's patterns placed into B's context)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines import cli_common, device, options
    from engines.audio import limits

    from .config import Config

    io = p.add_argument_group("input / output")
    io.add_argument("--a", required=True, help="song A (the input: its tempo, bars and length lead)")
    io.add_argument("--b", required=True, action="append", metavar="B",
                    help="song B (the target), or a folder of songs; repeatable: each B is fused with song A "
                         "into OUT_DIR/<B's name>/")
    io.add_argument("--out_dir", required=True,
                    help="writes fusion.wav and fusion.json here (one folder per B when there are several)")
    io.add_argument("--stop_on_error", action="store_true", help="stop at the first unreadable B")
    groups = {"input / output": io}
    model = groups["model"] = p.add_argument_group("model")
    model.add_argument("--model", default=None, help="registry name of the cascade (default: the fusion default)")
    model.add_argument("--checkpoint", default=None, help="path of a cascade checkpoint (.safetensors)")
    options.add_arguments(p, Config, groups=groups)
    device.add_argument(p)
    p.add_argument("--threads", type=limits.thread_count, default=None,
                   help="torch CPU threads (default: at most 2)")
    cli_common.add_arguments(p)  # --format --subtype --bitrate --out_rate --out_channels --start --end --dry_run


def run(args) -> int:
    import torch

    from engines import cli_common, options
    from engines.atomic import OutputError, check_names
    from engines.audio.errors import AudioError
    from engines.audio.limits import set_threads
    from engines.messages import EXIT_USER_ERROR, user_message
    from engines.vocals.api import expand_inputs

    from .api import FusionEngine
    from .config import Config

    cfg = options.from_args(Config, args)
    fmt = cli_common.output_format(args, like=args.a)
    bs = expand_inputs(args.b)
    folders = cli_common.batch_folders(bs, args.out_dir)
    inputs = [args.a, *bs]
    check_names(args.out_dir, [], inputs)  # before the work: usable folders, no output over an input
    for folder in folders:
        check_names(folder, [f"fusion.{fmt}", "fusion.json"], inputs)
    set_threads(args.threads or max(1, min(2, torch.get_num_threads())))
    engine = FusionEngine.load(args.checkpoint or args.model, device=args.device, codec=cfg.codec)  # once
    a = cli_common.region(args, args.a, "Song A")
    if args.dry_run:
        if len(bs) > 1:
            print(f"{len(bs)} B songs: the estimate is for the first pair (A and {bs[0].name}); each of the "
                  f"others takes about as long.")
        return cli_common.print_estimate(engine, {"a": a, "b": str(bs[0])}, cfg, probe_seconds=4.0)
    show = cli_common.progress_printer()
    if len(bs) == 1:  # one pair: its error is the command's error
        _report(*_fuse(engine, a, bs[0], cfg, folders[0], inputs, fmt, show), fmt)
        return 0
    failed = 0
    for i, (b, folder) in enumerate(zip(bs, folders)):

        def sub(frac: float, msg: str = "", i=i, b=b) -> None:
            show((i + frac) / len(bs), f"{b.name}: {msg}")

        try:
            res, files = _fuse(engine, a, b, cfg, folder, inputs, fmt, sub)
        except (AudioError, OutputError) as err:
            if args.stop_on_error:
                raise
            failed += 1
            print(f"error: {b}: {user_message(err)}", file=sys.stderr)
            continue
        print(f"{b}:")
        _report(res, files, fmt)
    print(f"{len(bs) - failed} of {len(bs)} B songs fused into {args.out_dir}")
    return 0 if failed == 0 else EXIT_USER_ERROR


def _fuse(engine, a, b, cfg, folder, inputs, fmt, progress):
    """One pair: ``(result, files)``, its files written all-or-nothing into ``folder``."""
    res = engine.run({"a": a, "b": str(b)}, cfg, progress=progress)
    return res, res.save(folder, inputs=inputs, fmt=fmt)


def _report(res, files, fmt) -> None:
    t = res.params.get("tempo", {})
    print(f"Fused {res.duration:.1f} s ({res.mode}, {res.mask_type}) -> {files[f'fusion.{fmt}']}")
    if t:
        print(f"  tempo: A {t.get('a_bpm')} BPM, B {t.get('b_bpm')} BPM, stretch x{t.get('rate')}")
    if "key" in res.params:
        k = res.params["key"]
        print(f"  key: A {k['a']['name']}, B {k['b']['name']}, B shifted {k['b_semitones']:+d} semitones")
    share = res.share()
    print(f"  regions: A {share['A']:.0%}, B {share['B']:.0%}, both {share['both']:.0%}, none {share['neither']:.0%}")
    print(f"  time: {res.timings['total']:.2f} s (RTF {res.timings['rtf']:.3f}) on {res.params.get('device')}; "
          f"details in {files['fusion.json']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fuse", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
