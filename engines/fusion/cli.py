"""``python launch.py fuse --a A --b B --out_dir DIR ...``: writes DIR/fusion.wav and DIR/fusion.json.

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
    io.add_argument("--b", required=True, help="song B (the target)")
    io.add_argument("--out_dir", required=True, help="writes fusion.wav and fusion.json here")
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
    from engines.atomic import check_names
    from engines.audio.limits import set_threads

    from .api import FusionEngine
    from .config import Config

    cfg = options.from_args(Config, args)
    fmt = cli_common.output_format(args, like=args.a)
    check_names(args.out_dir, [f"fusion.{fmt}", "fusion.json"], [args.a, args.b])  # before the work
    set_threads(args.threads or max(1, min(2, torch.get_num_threads())))
    engine = FusionEngine.load(args.checkpoint or args.model, device=args.device, codec=cfg.codec)
    job = {"a": cli_common.region(args, args.a, "Song A"), "b": args.b}
    if args.dry_run:
        return cli_common.print_estimate(engine, job, cfg, probe_seconds=4.0)
    res = engine.run(job, cfg, progress=cli_common.progress_printer())
    files = res.save(args.out_dir, inputs=[args.a, args.b], fmt=fmt)  # all-or-nothing
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
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fuse", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
