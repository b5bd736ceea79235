"""`timbre`: play a piano recording as a violin (or back), keeping the notes.

    python launch.py timbre --input X.wav --target violin --out_dir DIR [--style_ref CLIP]
                            [--model NAME | --checkpoint PATH] [--phase griffinlim|input]

writes ``DIR/<target>.wav`` (16-bit, the input's rate and length) and prints one JSON line.
"""
from __future__ import annotations

import json
import sys

HELP = "timbre transfer: piano <-> violin (writes OUT_DIR/<target>.wav at the input's length)"


def add_arguments(parser) -> None:
    from engines.audio import limits

    parser.add_argument("--input", required=True, help="audio file to transform")
    parser.add_argument("--target", required=True, choices=["violin", "piano"], help="instrument to render")
    parser.add_argument("--out_dir", required=True, help="output folder (created)")
    parser.add_argument("--style_ref", default=None, help="a clip of the target instrument to take its style from")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the registered default)")
    g.add_argument("--checkpoint", default=None, help="a .safetensors checkpoint from `train timbre`")
    parser.add_argument("--phase", default="input", choices=["griffinlim", "input"],
                        help="phase of the output: the input's refined by Griffin-Lim, or the input's")
    parser.add_argument("--gl_iters", type=limits.arg("timbre", "gl_iters"), default=32,
                        help="Griffin-Lim iterations (0-512; --phase griffinlim)")
    parser.add_argument("--threads", type=limits.thread_count, default=None, help="torch CPU threads")


def run(args) -> int:
    from engines.audio import io as audio_io

    from .api import load_engine

    from engines.atomic import OutputStage, check_names

    protect = [args.input] + ([args.style_ref] if args.style_ref else [])
    check_names(args.out_dir, [f"{args.target}.wav"], protect)  # before the work
    engine = load_engine(args.model, args.checkpoint, args.threads)
    res = engine.transfer(args.input, args.target, style_ref=args.style_ref, phase=args.phase,
                          gl_iters=args.gl_iters,
                          progress=lambda f, m: print(f"\r[{f:4.0%}] {m:<40}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    with OutputStage(args.out_dir, inputs=protect, names=[f"{res.target}.wav"]) as stage:
        audio_io.save(stage.path(f"{res.target}.wav"), res.audio, res.sample_rate)
    out = stage.published[f"{res.target}.wav"]
    print(json.dumps({"output": str(out), "target": res.target, "sample_rate": res.sample_rate,
                      "seconds": round(res.seconds, 3), "rtf": round(res.rtf, 3), "model": res.model,
                      "style": res.style, "input_instrument": res.source_probs}))
    return 0
