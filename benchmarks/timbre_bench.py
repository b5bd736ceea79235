#!/usr/bin/env python3
"""Benchmark the timbre engine on ../shared/bench/data/timbre (evaluation only; never trained on).

For every case: piano.wav -> violin (scored by the shared scorer against the reference violin),
and piano.wav -> piano (reconstruction, scored with the same metrics against the input). Reports
the real-time factor (processing time / audio duration) with the requested threads.

    python benchmarks/timbre_bench.py [--model NAME | --checkpoint PATH] [--threads 2]
        [--out /work/runs/timbre-bench] [--register]

``--register`` writes the measured means into the model's registry entry (``scores``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH = ROOT.parent / "shared" / "bench"


def _scorer():
    spec = importlib.util.spec_from_file_location("bench_score", BENCH / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(BENCH / "data" / "timbre"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None)
    g.add_argument("--checkpoint", default=None)
    p.add_argument("--out", default="/work/runs/timbre-bench")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--phase", default="input", choices=["griffinlim", "input"])
    p.add_argument("--gl_iters", type=int, default=32)
    p.add_argument("--no_recon", action="store_true", help="skip the piano -> piano reconstruction")
    p.add_argument("--register", action="store_true", help="store the scores in the model's registry entry")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from engines.audio import io as audio_io
    from engines.timbre.api import load_engine

    torch.set_num_threads(args.threads)
    score = _scorer()
    eng = load_engine(args.model, args.checkpoint, threads=args.threads)
    data, out = Path(args.data), Path(args.out)
    pred = out / "pred"
    cases = sorted(d.name for d in data.iterdir() if (d / "piano.wav").is_file())
    secs = dur = 0.0
    recon = []
    eng.transfer(str(data / cases[0] / "piano.wav"), "violin", gl_iters=2)  # warm-up (imports, caches)
    for case in cases:
        src = data / case / "piano.wav"
        t0 = time.time()
        res = eng.transfer(str(src), "violin", phase=args.phase, gl_iters=args.gl_iters)
        secs += time.time() - t0
        dur += res.duration
        audio_io.save(pred / case / "violin.wav", res.audio, res.sample_rate, protect=[src])
        if not args.no_recon:
            rec = eng.transfer(str(src), "piano", phase=args.phase, gl_iters=args.gl_iters)
            ref, sr = audio_io.load(src, mono=True)
            m = score.timbre_metrics(ref[0].astype(np.float64), rec.audio[0].astype(np.float64), sr)
            recon.append({"case": case, **{k: round(float(v), 4) for k, v in m.items()}})
        print(f"{case}: {res.seconds:.2f} s for {res.duration:.1f} s (rtf {res.rtf:.3f})", flush=True)
    js = out / "scores.json"
    r = subprocess.run([sys.executable, str(BENCH / "score.py"), "timbre", "--data", str(data), "--pred", str(pred),
                        "--json", str(js)], capture_output=True, text=True)
    print(r.stdout)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return r.returncode
    means = json.loads(r.stdout.strip().splitlines()[-1])
    summary = {"mrstft": means.get("mrstft"), "logmel_l1": means.get("logmel_l1"), "chroma_cos": means.get("chroma_cos"),
               "rtf": round(secs / dur, 4), "threads": args.threads, "phase": args.phase, "cases": len(cases)}
    if recon:
        for k in ("mrstft", "logmel_l1", "chroma_cos"):
            summary[f"recon_piano_{k}"] = round(float(np.mean([x[k] for x in recon])), 4)
    print("SUMMARY " + json.dumps(summary))
    (out / "summary.json").write_text(json.dumps({"summary": summary, "recon": recon}, indent=1))
    if args.register:
        from engines import registry

        name = args.model or registry.default("timbre")["name"]
        entry = registry.get(name)
        entry["scores"] = {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()},
                           "bench": "shared/bench/data/timbre (10 pairs, piano -> violin)",
                           "command": "python benchmarks/timbre_bench.py --register"}
        registry.register(entry)
        print(f"Registered scores in {name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
