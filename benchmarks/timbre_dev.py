#!/usr/bin/env python3
"""Score timbre models on the corpus's held-out (dev) pairs: the split models are chosen on.

Dev pairs are the rows whose split is "dev"; a corpus without dev rows gives up the pairs whose row
index ends in 9 (``--dev_every 10``, the rule of ``train timbre-synth``, which never trains on them).
Both directions (piano -> violin against the violin, violin -> piano against the piano) through the
engine as a user runs it (files in, the file's rate out), with the bench scorer's metric functions,
plus the pitch accuracy against the row's notes (``melody.json``) when the row has them.

    python benchmarks/timbre_dev.py --data /work/corpus_r3/timbre --model timbre-v3 --checkpoint X.safetensors ...
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def dev_pairs(data: str, dev_every: int) -> list[tuple[str, str, str]]:
    from trainers.timbre import discover
    from trainers.timbre_synth import held_out

    dev = discover([data], split="dev", required=False)[0]
    return dev if dev else held_out(discover([data])[0], dev_every)[0]


def score_model(name_or_path: str, pairs, threads: int, limit: int | None) -> dict:
    import numpy as np

    from benchmarks.common import scorer
    from engines.audio import io as audio_io
    from engines.audio import limits
    from engines.timbre import Engine, pitch

    limits.set_threads(threads)
    sc = scorer()
    eng = Engine.load(name_or_path, device="cpu")
    rows, secs, dur = [], 0.0, 0.0
    for pid, piano, violin in pairs[:limit]:
        notes_file = Path(piano).parent / "melody.json"
        notes = json.loads(notes_file.read_text()).get("notes") if notes_file.is_file() else None
        row = {"pair": pid}
        for src, ref, tgt, key in ((piano, violin, "violin", "pv"), (violin, piano, "piano", "vp")):
            t0 = time.time()
            res = eng.run({"input": src}, threads=threads, target=tgt)
            secs += time.time() - t0
            dur += res.duration
            r, sr = audio_io.load(ref, mono=True)
            y = res.wave
            if res.sample_rate != sr:
                y = audio_io.resample(y, res.sample_rate, sr)
            n = min(r.shape[-1], y.shape[-1])
            m = sc.timbre_metrics(r[0, :n].astype(np.float64), y[0, :n].astype(np.float64), sr)
            row.update({f"{key}_{k}": round(float(m[k]), 4) for k in ("mrstft", "logmel_l1", "chroma_cos")})
            if notes:
                y22 = audio_io.resample(y[:1], sr, 22050)[0] if sr != 22050 else y[0]
                row[f"{key}_pitch"] = round(pitch.cents_accuracy(pitch.track(y22)[0], notes), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k != "pair"] if rows else []
    mean = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
    mean["rtf"] = round(secs / max(dur, 1e-9), 4)
    return {"model": str(name_or_path), "pairs": len(rows), "mean": mean, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a corpus timbre folder (typed rows)")
    p.add_argument("--model", action="append", default=[], help="registered model name or checkpoint (repeatable)")
    p.add_argument("--dev_every", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="at most this many dev pairs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the results here (JSON)")
    args = p.parse_args(argv)
    pairs = dev_pairs(args.data, args.dev_every)
    if not pairs:
        p.error(f"no dev pairs in {args.data}")
    print(f"{len(pairs)} dev pairs: {', '.join(x[0] for x in pairs[:args.limit])}", flush=True)
    results = [score_model(m, pairs, args.threads, args.limit) for m in (args.model or [None])]
    for r in results:
        print(f"{r['model']}: " + json.dumps(r["mean"]), flush=True)
    if args.out:
        from benchmarks.common import write_json

        write_json(args.out, {"data": args.data, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
