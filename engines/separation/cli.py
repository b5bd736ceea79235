"""``launch.py separate``: mixture + query clip -> target.wav, residual.wav, event.json, class-named
query and PNGs in ``--out_dir`` (written all-or-nothing)."""
from __future__ import annotations

import argparse
import json
import logging
import sys

HELP = "query separation: mixture + query clip -> target + residual"
logger = logging.getLogger(__name__)


def str2bool(v) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got '{v}'")


def add_arguments(p: argparse.ArgumentParser) -> None:
    B = dict(type=str2bool, nargs="?", const=True, metavar="BOOL")
    from engines.audio import limits

    def R(name):  # the option's range (engines.audio.limits.OPTIONS), checked by argparse
        return limits.arg("separate", name)

    p.add_argument("--mix_wav", required=True, help="mixture (any rate/channels)")
    p.add_argument("--query_wav", required=True, nargs="+", help="clip(s) of the wanted sound (several allowed)")
    p.add_argument("--negative_wav", default=None, help="optional clip of a sound to keep OUT of the target")
    p.add_argument("--out_dir", default="outputs")
    p.add_argument("--gt_wav", default=None, help="ground-truth target: prints SI-SDR, SDR, ... and the quality label")
    g = p.add_argument_group("detection")
    g.add_argument("--window_sec", type=R("window_sec"), default=1.0)
    g.add_argument("--hop_sec", type=R("hop_sec"), default=0.5)
    g.add_argument("--cls_threshold", type=limits.arg("separate", "cls_threshold", optional=True), default=None,
                   help="class gate, 0-1 (None: use --cls_percentile)")
    g.add_argument("--cls_percentile", type=R("cls_percentile"), default=92)
    g.add_argument("--use_cosine_gate", default=True, **B)
    g.add_argument("--cosine_threshold", type=R("cosine_threshold"), default=0.45)
    g.add_argument("--min_dur_ms", type=R("min_dur_ms"), default=500)
    g.add_argument("--merge_gap_ms", type=R("merge_gap_ms"), default=200)
    g.add_argument("--segment_padding_ms", type=R("segment_padding_ms"), default=50)
    g.add_argument("--time_mask_sharpening", type=R("time_mask_sharpening"), default=1.2)
    g = p.add_argument_group("mask")
    g.add_argument("--nfft", type=R("nfft"), default=512)
    g.add_argument("--hop", type=R("hop"), default=256)
    g.add_argument("--n_mels", type=R("n_mels"), default=64)
    g.add_argument("--opt_steps", type=R("opt_steps"), default=18)
    g.add_argument("--lr", type=R("lr"), default=0.28)
    g.add_argument("--lambda_tv", type=R("lambda_tv"), default=0.008)
    g.add_argument("--lambda_sat", type=R("lambda_sat"), default=0.0010)
    g.add_argument("--gamma_profile", type=R("gamma_profile"), default=0.25)
    g.add_argument("--mask_floor", type=R("mask_floor"), default=0.08)
    g.add_argument("--soft_masking", default=True, **B)
    g.add_argument("--use_embedding_masking", default=False, **B)
    g.add_argument("--use_spectrogram_features", default=False, **B, help="2-D masking from AST patches (AST only)")
    g.add_argument("--semantic_blending", type=R("semantic_blending"), default=0.7)
    g.add_argument("--similarity_smoothing", type=R("similarity_smoothing"), default=1.0)
    g = p.add_argument_group("models")
    g.add_argument("--embedder", choices=["auto", "ast", "builtin"], default="auto",
                   help="auto: AST only if its weights are already on disk (never downloads), else built-in")
    g.add_argument("--ast_model", default="MIT/ast-finetuned-audioset-10-10-0.4593", help="hub id or local folder")
    g.add_argument("--checkpoint", default=None, help="built-in model: registry name or .safetensors path")
    g.add_argument("--reference", choices=["fitted", "stitch"], default="fitted",
                   help="fitted: query-conditioned mask net (default); stitch: the original's query stitching")
    g.add_argument("--not_found_db", type=R("not_found_db"), default=-25.0,
                   help="fitted: 'not found' when the estimated target is below this (dB re mixture)")
    g.add_argument("--refine_net_mask", default=False, **B,
                   help="fitted: also run the DGMO optimisation (--opt_steps ...) and --mask_floor on the mask net's "
                        "mask (off by default: on held-out corpus triples they did not help)")
    g.add_argument("--max_query_sec", type=R("max_query_sec"), default=3.0, help="longer queries are trimmed to their most typical part")
    g = p.add_argument_group("output")
    g.add_argument("--threads", type=limits.thread_count, default=2)
    g.add_argument("--save_trimmed_query", default=False, **B)
    g.add_argument("--save_renamed_query", default=True, **B)
    g.add_argument("--save_visualizations", default=True, **B)


CONFIG_KEYS = ("window_sec", "hop_sec", "cls_threshold", "cls_percentile", "use_cosine_gate", "cosine_threshold",
               "min_dur_ms", "merge_gap_ms", "segment_padding_ms", "time_mask_sharpening", "nfft", "hop", "n_mels",
               "opt_steps", "lr", "lambda_tv", "lambda_sat", "gamma_profile", "mask_floor", "soft_masking",
               "use_embedding_masking", "use_spectrogram_features", "semantic_blending", "similarity_smoothing",
               "threads", "embedder", "ast_model", "checkpoint", "reference", "max_query_sec", "not_found_db",
               "refine_net_mask")


#: exit code when the query does not occur: the outputs are complete (silent target, residual = mixture)
NOT_FOUND_EXIT = 3


def run(args) -> int:
    import os

    if args.embedder != "ast":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .api import SeparationConfig, separate, write_outputs

    from engines.atomic import check_names

    inputs = [args.mix_wav, *args.query_wav] + [p for p in (args.gt_wav, args.negative_wav) if p]
    # before the work: the folder must be usable and the fixed names must not be inputs (the
    # class-named files are checked again, with every name, before anything is published)
    check_names(args.out_dir, ["target.wav", "residual.wav", "event.json"], inputs)
    cfg = SeparationConfig(**{k: getattr(args, k) for k in CONFIG_KEYS})
    queries = args.query_wav if len(args.query_wav) > 1 else args.query_wav[0]
    res = separate(args.mix_wav, queries, config=cfg, gt=args.gt_wav, negative=args.negative_wav)
    files = write_outputs(res, args.out_dir, save_renamed_query=args.save_renamed_query,
                          save_trimmed_query=args.save_trimmed_query, save_visualizations=args.save_visualizations,
                          protect=inputs)
    print(f"embedder: {res.embedder}   reference: {res.reference}")
    print(f"query class: {res.query_class} ({res.class_probs.get(res.query_class, 0):.2f})")
    if res.found:
        segs = ", ".join(f"{s['start']:.2f}-{s['end']:.2f}s" for s in res.segments) or "none by the window gates"
        print(f"segments: {segs}")
    else:
        print("not found: the query does not occur in the mixture (target is silent, residual = mixture)")
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
