"""Benchmark of the query separation engine on ../shared/bench/data/query (evaluation only).

Writes PRED/<case>/target.wav with the default settings and the built-in model, scores them with
the bench scorer, times the in-process processing per 10 s mixture (models loaded once) and whole
CLI calls, and measures, in the same run, a configuration faithful to the original (stitching
reference + an AST-sized embedder with random weights) on a few cases for the speed ratio.

    python benchmarks/query_bench.py [--register] [--faithful_cases 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH = Path(os.environ.get("AUDIO_STUDIO_BENCH", ROOT.parent / "shared" / "bench"))


def score(pred: Path, data: Path) -> dict:
    out = pred / "scores.json"
    cmd = [sys.executable, str(BENCH / "score.py"), "query", "--data", str(data), "--pred", str(pred),
           "--json", str(out), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def per_kind(scores: dict) -> dict:
    return {k: round(v["si_sdri"], 2) for k, v in sorted(scores.get("by_kind", {}).items())}


def run_cases(cases, pred: Path, models, **cfg) -> list[float]:
    from engines.audio import io as aio
    from engines.separation.api import separate

    times = []
    for c in cases:
        t = time.perf_counter()
        r = separate(str(c / "mix.wav"), str(c / "query.wav"), models=models, **cfg)
        dt = time.perf_counter() - t
        times.append(dt * 10.0 / r.duration)
        aio.save(pred / c.name / "target.wav", r.target, r.sr, "FLOAT")
    return times


def dev_eval(dev: Path, models, threads: int = 1, limit: int | None = None, **cfg) -> dict:
    """Mean SI-SDRi on a corpus query folder (``q_*/{mix,query,target}.wav``): a development set
    rendered by the training corpus, never the bench."""
    import numpy as np
    import soundfile as sf

    from engines.audio.metrics import si_sdr
    from engines.separation.api import separate

    out: dict[str, list[float]] = {}
    for row in [json.loads(x) for x in (dev / "manifest.jsonl").read_text().splitlines() if x.strip()][:limit]:
        d = dev / row["path"]
        r = separate(str(d / "mix.wav"), str(d / "query.wav"), models=models, threads=threads, **cfg)
        tgt, _ = sf.read(d / "target.wav", dtype="float32")
        mix = r.mixture[0]
        v = si_sdr(tgt, r.target[0]) - si_sdr(tgt, mix)
        out.setdefault(row["source_type"], []).append(v)
    allv = [v for vs in out.values() for v in vs]
    return {"n": len(allv), "si_sdri_mean": round(float(np.mean(allv)), 2),
            "by_source_type": {k: round(float(np.mean(v)), 2) for k, v in sorted(out.items())}}


def calibrate(dev: Path, models, threads: int = 1, limit: int = 30) -> dict:
    """Statistics for the "not found" rule on the development set: each mixture with its own query
    (present) and with the query of a case of another class (absent)."""
    import numpy as np

    from engines.separation.api import separate

    rows = [json.loads(x) for x in (dev / "manifest.jsonl").read_text().splitlines() if x.strip()][:limit]
    stats = {"present": [], "absent": []}
    for i, row in enumerate(rows):
        other = next((r for r in rows[i + 1:] + rows[:i] if r["label"] != row["label"]), None)
        for kind, q in (("present", row), ("absent", other)):
            if q is None:
                continue
            r = separate(str(dev / row["path"] / "mix.wav"), str(dev / q["path"] / "query.wav"), models=models,
                         threads=threads, not_found_db=-1000)
            stats[kind].append((r.windows["estimated_target_db"], float(np.max(r.windows["cosine"])), len(r.segments)))
    out = {}
    for k, v in stats.items():
        a = np.array(v)
        out[k] = {"est_db_pcts": np.percentile(a[:, 0], [5, 25, 50, 75, 95]).round(1).tolist(),
                  "max_cos_pcts": np.percentile(a[:, 1], [5, 25, 50, 75, 95]).round(2).tolist(),
                  "with_segments": float((a[:, 2] > 0).mean())}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(BENCH / "data" / "query"))
    p.add_argument("--out", default="/work/runs/query-bench")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--faithful_cases", type=int, default=2, help="cases run with the original-faithful config")
    p.add_argument("--cli_cases", type=int, default=2)
    p.add_argument("--register", action="store_true", help="write the scores into the model's registry entry")
    p.add_argument("--dev", default=None, help="only evaluate on this corpus query folder (development set)")
    p.add_argument("--limit", type=int, default=40, help="with --dev: first N cases")
    p.add_argument("--calibrate", action="store_true", help="with --dev: statistics for the not-found rule")
    p.add_argument("--set", nargs="*", default=[], help="config overrides for --dev, e.g. opt_steps=0")
    args = p.parse_args(argv)
    import numpy as np
    import torch

    from engines.separation.api import get_models

    data, out = Path(args.data), Path(args.out)
    cases = sorted(d for d in data.iterdir() if (d / "mix.wav").is_file())
    res: dict = {"n_cases": len(cases), "threads": args.threads}
    models = get_models("builtin", checkpoint=args.checkpoint)
    if args.dev and args.calibrate:
        print(json.dumps(calibrate(Path(args.dev), models, args.threads), indent=1))
        return 0
    if args.dev:
        over = {k: type(getattr(__import__("engines.separation.api", fromlist=["x"]).SeparationConfig(), k))(v)
                for k, v in (kv.split("=", 1) for kv in args.set)}
        print(json.dumps({"dev": args.dev, "overrides": over,
                          **dev_eval(Path(args.dev), models, args.threads, args.limit, **over)}))
        return 0
    run_cases(cases[:1], out / "warmup", models, threads=args.threads)  # warm-up (first-call costs)

    for name, cfg in (("default", {}), ("stitch_builtin", {"reference": "stitch"})):
        pred = out / name
        times = run_cases(cases, pred, models, threads=args.threads, **cfg)
        s = score(pred, data)
        res[name] = {"si_sdri_mean": round(s["si_sdri"], 2), "si_sdr_mean": round(s["si_sdr"], 2),
                     "per_kind_si_sdri": per_kind(s), "n_missing": s.get("n_missing"), "sec_per_10s_mean": round(float(np.mean(times)), 3),
                     "sec_per_10s_max": round(float(np.max(times)), 3)}
        print(name, json.dumps(res[name]), flush=True)

    # whole CLI calls (fresh process: imports + model load + plots)
    cli = []
    for c in cases[:args.cli_cases]:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, str(ROOT / "launch.py"), "separate", "--mix_wav", str(c / "mix.wav"),
                            "--query_wav", str(c / "query.wav"), "--out_dir", str(out / "cli" / c.name),
                            "--embedder", "builtin"], capture_output=True, text=True)
        if p.returncode not in (0, 3):  # 3: the query was judged absent (outputs still written)
            raise RuntimeError(f"separate failed on {c.name}: {p.stderr[-500:]}")
        cli.append(time.perf_counter() - t)
    res["cli_sec"] = [round(v, 2) for v in cli]

    # original-faithful: stitching reference + AST-sized embedder (ASTConfig defaults, random weights)
    if args.faithful_cases:
        from transformers import ASTConfig, ASTForAudioClassification

        from engines.separation.embedders import ASTEmbedder

        torch.manual_seed(0)
        ast = ASTEmbedder.from_model(ASTForAudioClassification(ASTConfig()), name="ast:random-full-size")
        ft = run_cases(cases[:args.faithful_cases], out / "faithful", (ast, None), threads=args.threads,
                       reference="stitch")
        d_t = res["default"]["sec_per_10s_mean"]
        res["faithful"] = {"cases": args.faithful_cases, "sec_per_10s_mean": round(float(np.mean(ft)), 2),
                           "speedup_default_vs_faithful": round(float(np.mean(ft)) / d_t, 1)}
        print("faithful", json.dumps(res["faithful"]), flush=True)
    (out / "bench.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    if args.register:
        from engines import registry

        e = registry.get("query-builtin")
        e["scores"] = {**e.get("scores", {}), "bench": "shared/bench/data/query (16 cases)", "si_sdri_mean_db": res["default"]["si_sdri_mean"],
                       "si_sdri_per_kind_db": res["default"]["per_kind_si_sdri"],
                       "stitching_reference_si_sdri_db": res["stitch_builtin"]["si_sdri_mean"],
                       "sec_per_10s_in_process": res["default"]["sec_per_10s_mean"], "cli_sec": res["cli_sec"],
                       "threads": args.threads, **({"faithful": res["faithful"]} if "faithful" in res else {})}
        registry.register(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
