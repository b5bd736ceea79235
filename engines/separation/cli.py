"""``launch.py separate``: mixture + query clip -> target.wav, residual.wav, event.json, class-named
query and PNGs in ``--out_dir`` (written all-or-nothing by ``Result.save``).

The option flags are generated from :class:`engines.separation.config.Config` (same names as its fields,
its defaults, ``--preset``); the I/O flags, ``--device`` and the save switches are added here. One engine
per run. Exit code 3 (:data:`NOT_FOUND_EXIT`) when the query does not occur in the mixture.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from engines.options import str2bool  # noqa: F401 - the former name of this module's bool parser

HELP = "query separation: mixture + query clip -> target + residual"
logger = logging.getLogger(__name__)

#: exit code when the query does not occur: the outputs are complete (silent target, residual = mixture)
NOT_FOUND_EXIT = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines import cli_common, device, options

    from .config import Config

    B = dict(type=options.str2bool, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--mix_wav", required=True, help="mixture (any rate/channels)")
    p.add_argument("--query_wav", required=True, nargs="+", help="clip(s) of the wanted sound (several allowed)")
    p.add_argument("--negative_wav", default=None, help="optional clip of a sound to keep OUT of the target")
    p.add_argument("--out_dir", default="outputs")
    p.add_argument("--gt_wav", default=None, help="ground-truth target: prints SI-SDR, SDR, ... and the quality label")
    groups = options.add_arguments(p, Config)
    g = groups.get("output") or p.add_argument_group("output")
    g.add_argument("--save_trimmed_query", default=False, **B, help="also the trimmed query, when it was trimmed")
    g.add_argument("--save_renamed_query", default=True, **B, help="the query clip as <class>.wav")
    g.add_argument("--save_visualizations", default=True, **B, help="the comparison and timeline PNGs")
    device.add_argument(g)
    cli_common.add_arguments(p)  # --format --subtype --bitrate --out_rate --out_channels --start --end --dry_run


def run(args) -> int:
    import os

    from engines import cli_common, options

    from .config import Config

    cfg = options.from_args(Config, args)
    fmt = cli_common.output_format(args, like=args.mix_wav)
    if cfg.embedder != "ast":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from engines.atomic import check_names

    from .api import SeparationEngine

    inputs = [args.mix_wav, *args.query_wav] + [p for p in (args.gt_wav, args.negative_wav) if p]
    # before the work: the folder must be usable and the fixed names must not be inputs (the
    # class-named files are checked again, with every name, before anything is published)
    check_names(args.out_dir, [f"target.{fmt}", f"residual.{fmt}", "event.json"], inputs)
    queries = args.query_wav if len(args.query_wav) > 1 else args.query_wav[0]
    engine = SeparationEngine.load(config=cfg, device=args.device)
    job = {"mix": cli_common.region(args, args.mix_wav, "The mixture"), "query": queries,
           "gt": cli_common.region(args, args.gt_wav, "The ground truth") if args.gt_wav else None,
           "negative": args.negative_wav}
    if args.dry_run:
        return cli_common.print_estimate(engine, job, cfg)
    res = engine.run(job, cfg, progress=cli_common.progress_printer())
    files = res.save(args.out_dir, inputs=inputs, save_renamed_query=args.save_renamed_query,
                     save_trimmed_query=args.save_trimmed_query, save_visualizations=args.save_visualizations,
                     fmt=fmt)
    print(f"embedder: {res.embedder}   reference: {res.reference}   device: {engine.device}")
    print(f"query class: {res.query_class} ({res.class_probs.get(res.query_class, 0):.2f})")
    pres = res.presence_text()
    if res.found:
        segs = ", ".join(f"{s['start']:.2f}-{s['end']:.2f}s" for s in res.segments) or "none by the window gates"
        print(f"found{': ' + pres if pres else ''}")
        print(f"segments: {segs}")
    else:
        print(f"not found: the query does not occur in the mixture{' (' + pres + ')' if pres else ''} "
              "(target is silent, residual = mixture)")
    for w in res.warnings:
        if not w.startswith("not found"):
            print(f"warning: {w}", file=sys.stderr)
    if res.metrics:
        m = res.metrics
        print(f"SI-SDR {m['si_sdr']:.2f} dB (improvement {m['si_sdri']:+.2f})  SDR {m['sdr']:.2f} dB  "
              f"spectral convergence {m['spectral_convergence']:.3f}  cross-correlation {m['cross_correlation']:.3f}  "
              f"energy ratio {m['energy_ratio']:.3f}  quality: {m['quality']}")
    print("timings: " + json.dumps({k: round(v, 3) for k, v in res.timings.items()}))
    print(f"wrote {len(files)} files to {args.out_dir}: " + ", ".join(files))
    return 0 if res.found else NOT_FOUND_EXIT
