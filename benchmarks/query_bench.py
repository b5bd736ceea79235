"""Benchmark of the query separation engine on both bench sets (evaluation only).

The sets are ../shared/bench/data/query (rendered) and ../shared/bench/data_real/query (real
recordings); both are reported side by side with each set's baselines (benchmarks/common.py).
Writes OUT/<set>/<config>/<case>/target.wav with the default settings and the built-in model, scores them with
the bench scorer, times the in-process processing per 10 s mixture (models loaded once) and whole
CLI calls, and measures, in the same run, a configuration faithful to the original (stitching
reference + an AST-sized embedder with random weights) on a few cases for the speed ratio. The built-in
model runs on ``--device`` (auto: CUDA when available); the device used is in the results.

    python benchmarks/query_bench.py [--sets rendered real] [--register] [--faithful_cases 2] [--limit N] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (add_set_arguments, list_cases, load_baselines, registry_set_scores,  # noqa: E402
                               results_json, score, selected_sets, set_label, side_by_side, write_json)


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


def same_class(case: Path) -> bool:
    """A same-class case: a speech target over babble (one speaker among other speakers)."""
    meta = json.loads((case / "meta.json").read_text())
    bg = meta.get("background") or []
    kinds = {b.get("kind") if isinstance(b, dict) else b for b in (bg if isinstance(bg, list) else [bg])}
    return meta.get("target_kind") == "speech" and "babble" in kinds


def case_si_sdri(cases, pred: Path) -> dict[str, float]:
    """Per-case SI-SDRi of ``pred/<case>/target.wav`` against ``gt.flac`` (engines.audio.metrics.si_sdr)."""
    import soundfile as sf

    from engines.audio.metrics import si_sdr

    out = {}
    for c in cases:
        gt, _ = sf.read(c / "gt.flac", dtype="float32")
        mix, _ = sf.read(c / "mix.wav", dtype="float32")
        est, _ = sf.read(pred / c.name / "target.wav", dtype="float32")
        est = est if est.ndim == 1 else est.mean(1)
        out[c.name] = float(si_sdr(gt, est[:gt.size]) - si_sdr(gt, mix[:gt.size]))
    return out


def run_two_clips(cases, pred: Path, models, **cfg) -> None:
    """Every case with its query given as two clips (its two halves) instead of one."""
    from engines.audio import io as aio
    from engines.separation.api import separate

    for c in cases:
        q, sr = aio.load(str(c / "query.wav"), mono=True)
        h = q.shape[-1] // 2
        r = separate(str(c / "mix.wav"), [(q[:, :h], sr), (q[:, h:], sr)], models=models, **cfg)
        aio.save(pred / c.name / "target.wav", r.target, r.sr, "FLOAT")


def _dev_rows(dev: Path, limit: int | None) -> list[dict]:
    """The corpus's own dev split (typed rows, trainers.data) when it has one, else its first rows."""
    from trainers.data import kind_folder, read

    rows = read(dev, "query")
    held = [r for r in rows if r.split == "dev"] or rows
    base = kind_folder(dev, "query")
    return [{"path": str(base / r.path), "label": r.label, "real": r.real,
             "source_type": r.info.get("source_type", r.label),
             "same_class": r.label == "speech" and "babble" in r.info.get("background", [])} for r in held[:limit]]


def dev_eval(dev: Path, models, threads: int = 1, limit: int | None = None, **cfg) -> dict:
    """Mean SI-SDRi on a corpus query folder (``q_*/{mix,query,target}.wav``): its dev split, a
    development set rendered by the training corpus, never the bench."""
    import numpy as np
    import soundfile as sf

    from engines.audio.metrics import si_sdr
    from engines.separation.api import separate

    out: dict[str, list[float]] = {}
    by_real: dict[str, list[float]] = {}
    for row in _dev_rows(dev, limit):
        d = Path(row["path"])
        r = separate(str(d / "mix.wav"), str(d / "query.wav"), models=models, threads=threads, **cfg)
        tgt, _ = sf.read(d / "target.wav", dtype="float32")
        mix = r.mixture[0]
        v = si_sdr(tgt, r.target[0]) - si_sdr(tgt, mix)
        out.setdefault(row["source_type"], []).append(v)
        by_real.setdefault("real" if row["real"] else "rendered", []).append(v)
        if row["same_class"]:
            by_real.setdefault("same-class speech (over babble)", []).append(v)
    allv = [v for vs in out.values() for v in vs]  # by_real's same-class group repeats some of them
    return {"n": len(allv), "si_sdri_mean": round(float(np.mean(allv)), 2),
            "by_source_type": {k: round(float(np.mean(v)), 2) for k, v in sorted(out.items())},
            "by_material": {k: {"n": len(v), "si_sdri": round(float(np.mean(v)), 2)} for k, v in sorted(by_real.items())}}


def calibrate(dev: Path, models, threads: int = 1, limit: int = 30) -> dict:
    """Statistics for the "not found" rule on the development set: each mixture with its own query
    (present) and with the query of a case of another class (absent)."""
    import numpy as np

    from engines.separation.api import separate

    rows = _dev_rows(dev, limit)
    stats = {"present": [], "absent": []}
    for i, row in enumerate(rows):
        other = next((r for r in rows[i + 1:] + rows[:i] if r["label"] != row["label"]), None)
        for kind, q in (("present", row), ("absent", other)):
            if q is None:
                continue
            r = separate(str(Path(row["path"]) / "mix.wav"), str(Path(q["path"]) / "query.wav"), models=models,
                         threads=threads, not_found_db=-1000, presence_threshold=0.0)
            stats[kind].append((r.windows["estimated_target_db"], float(np.max(r.windows["cosine"])), len(r.segments)))
    out = {}
    for k, v in stats.items():
        a = np.array(v)
        out[k] = {"est_db_pcts": np.percentile(a[:, 0], [5, 25, 50, 75, 95]).round(1).tolist(),
                  "max_cos_pcts": np.percentile(a[:, 1], [5, 25, 50, 75, 95]).round(2).tolist(),
                  "with_segments": float((a[:, 2] > 0).mean())}
    return out


def run_set(name: str, data: Path, out: Path, models, args) -> dict:
    """Default and stitching-reference runs on one bench set, scored; CLI calls; the faithful config."""
    import numpy as np
    import torch

    cases = list_cases(data, "mix.wav", args.limit)
    res: dict = {"data": str(data), "n_cases": len(cases), "limited": bool(args.limit)}
    for cfg_name, cfg in (("default", {}), ("stitch_builtin", {"reference": "stitch"})):
        pred = out / cfg_name
        times = run_cases(cases, pred, models, threads=args.threads, **cfg)
        s = score("query", data, pred, allow_missing=bool(args.limit))
        res[cfg_name] = {"si_sdri_mean": round(s["si_sdri"], 2), "si_sdr_mean": round(s["si_sdr"], 2),
                         "sdr_mean": round(s["sdr"], 2), "per_kind_si_sdri": per_kind(s), "n_missing": s.get("n_missing"),
                         "sec_per_10s_mean": round(float(np.mean(times)), 3),
                         "sec_per_10s_max": round(float(np.max(times)), 3)}
        print(name, cfg_name, json.dumps(res[cfg_name]), flush=True)
    # same-class queries (one speaker among speakers) as their own kind
    per = case_si_sdri(cases, out / "default")
    import numpy as np

    sc = [per[c.name] for c in cases if same_class(c)]
    res["default"]["per_case_si_sdri"] = {k: round(v, 2) for k, v in per.items()}
    res["default"]["same_class_speech_si_sdri"] = {"n": len(sc), "si_sdri": round(float(np.mean(sc)), 2) if sc else None,
                                                   "cases": [c.name for c in cases if same_class(c)]}
    if args.two_clips:
        run_two_clips(cases, out / "two_clips", models, threads=args.threads)
        two = case_si_sdri(cases, out / "two_clips")
        res["two_clips"] = {"si_sdri_mean": round(float(np.mean(list(two.values()))), 2),
                            "one_clip_si_sdri_mean": round(float(np.mean(list(per.values()))), 2),
                            "per_case_si_sdri": {k: round(v, 2) for k, v in two.items()},
                            "clips": "the query's two halves, given as two query clips"}
        print(name, "two_clips", json.dumps({k: res["two_clips"][k] for k in ("si_sdri_mean", "one_clip_si_sdri_mean")}),
              flush=True)

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
        res["faithful"] = {"cases": min(args.faithful_cases, len(cases)), "sec_per_10s_mean": round(float(np.mean(ft)), 2),
                           "speedup_default_vs_faithful": round(float(np.mean(ft)) / d_t, 1)}
        print(name, "faithful", json.dumps(res["faithful"]), flush=True)
    res["baselines"] = load_baselines(data, "query", [c.name for c in cases] if args.limit else None)
    return res


def figures(res: dict) -> dict:
    """The flat figures of one set for the side-by-side table."""
    d, st = res["default"], res["stitch_builtin"]
    out = {"cases": res["n_cases"], "si_sdr": d["si_sdr_mean"], "si_sdri": d["si_sdri_mean"], "sdr": d["sdr_mean"]}
    out.update({f"si_sdri [{k}]": v for k, v in d["per_kind_si_sdri"].items()})
    if d.get("same_class_speech_si_sdri", {}).get("n"):
        out["si_sdri [same-class speech]"] = d["same_class_speech_si_sdri"]["si_sdri"]
    if "two_clips" in res:
        out["si_sdri two query clips"] = res["two_clips"]["si_sdri_mean"]
    out.update({"stitch si_sdri": st["si_sdri_mean"], "stitch si_sdr": st["si_sdr_mean"],
                "sec per 10 s (in process, mean)": d["sec_per_10s_mean"], "sec per 10 s (max)": d["sec_per_10s_max"]})
    if res["cli_sec"]:
        out["CLI call s (mean)"] = round(sum(res["cli_sec"]) / len(res["cli_sec"]), 2)
    if "faithful" in res:
        out["faithful speed-up x"] = res["faithful"]["speedup_default_vs_faithful"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(p, limit=False)
    p.add_argument("--data", default=None, help="run this one query folder instead of --sets")
    p.add_argument("--out", default="/work/runs/query-bench")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="where the model runs: auto (CUDA when available), cpu, cuda")
    p.add_argument("--faithful_cases", type=int, default=2, help="cases run with the original-faithful config")
    p.add_argument("--cli_cases", type=int, default=2)
    p.add_argument("--register", action="store_true", help="write the scores into the model's registry entry")
    p.add_argument("--two_clips", action="store_true", help="also run every case with its query as two clips (halves)")
    p.add_argument("--dev", default=None, help="only evaluate on this corpus query folder (development set)")
    p.add_argument("--limit", type=int, default=None,
                   help="first N cases: of each bench set (baselines restricted to them), or with --dev (default 40)")
    p.add_argument("--calibrate", action="store_true", help="with --dev: statistics for the not-found rule")
    p.add_argument("--set", nargs="*", default=[], help="config overrides for --dev, e.g. opt_steps=0")
    args = p.parse_args(argv)
    if args.register and (args.limit or args.data):
        p.error("--register needs whole bench sets (no --limit, no --data)")

    from engines.separation import Config, Engine

    out = Path(args.out)
    engine = Engine.load(args.checkpoint, device=args.device, embedder="builtin")
    models = engine.models
    print(f"device: {engine.device}", flush=True)
    if args.dev and args.calibrate:
        print(json.dumps(calibrate(Path(args.dev), models, args.threads), indent=1))
        return 0
    if args.dev:
        def coerce(k, v):  # options whose default is None (presence_threshold, cls_threshold) take floats
            d = getattr(Config(), k)
            return None if v == "None" else float(v) if d is None else type(d)(v)

        over = {k: coerce(k, v) for k, v in (kv.split("=", 1) for kv in args.set)}
        print(json.dumps({"dev": args.dev, "overrides": over, "device": str(engine.device),
                          **dev_eval(Path(args.dev), models, args.threads, args.limit or 40, **over)}))
        return 0
    sets = selected_sets(args, "query")
    first = list_cases(next(iter(sets.values())), "mix.wav", 1)
    run_cases(first, out / "warmup", models, threads=args.threads)  # warm-up (first-call costs)

    per_set = {name: run_set(name, data, out / name, models, args) for name, data in sets.items()}
    table = side_by_side("query", {n: figures(r) for n, r in per_set.items()},
                         {n: r["baselines"] for n, r in per_set.items()},
                         title="query separation (query-builtin), SI-SDR in dB")
    res = results_json("query", per_set, table, threads=args.threads, checkpoint=args.checkpoint,
                       engine_device=str(engine.device))
    write_json(out / "bench.json", res)
    print(f"results: {out / 'bench.json'}")
    if args.register:
        from engines import registry

        e = registry.get("query-builtin")
        scores = dict(e.get("scores", {}))
        for name, r in per_set.items():
            d, b = r["default"], r["baselines"].get("mean", {})
            ideal = b.get("irm_mag", {}).get("si_sdri")
            scores = registry_set_scores(scores, name, {
                "set": f"{set_label(name)}/query ({r['n_cases']} cases)", "si_sdri_mean_db": d["si_sdri_mean"],
                "si_sdr_mean_db": d["si_sdr_mean"], "si_sdri_per_kind_db": d["per_kind_si_sdri"],
                "stitching_reference_si_sdri_db": r["stitch_builtin"]["si_sdri_mean"],
                "share_of_irm_mag_si_sdri": round(d["si_sdri_mean"] / ideal, 3) if ideal else None,
                "irm_mag_si_sdri_db": round(ideal, 2) if ideal else None,
                "mixture_si_sdr_db": round(b.get("mixture", {}).get("si_sdr", float("nan")), 2),
                "sec_per_10s_in_process": d["sec_per_10s_mean"]})
            if name == "rendered":  # the old flat keys stay the rendered set's figures
                scores.update({"si_sdri_mean_db": d["si_sdri_mean"], "si_sdri_per_kind_db": d["per_kind_si_sdri"],
                               "stitching_reference_si_sdri_db": r["stitch_builtin"]["si_sdri_mean"],
                               "sec_per_10s_in_process": d["sec_per_10s_mean"], "cli_sec": r["cli_sec"],
                               **({"faithful": r["faithful"]} if "faithful" in r else {})})
        scores["threads"] = args.threads
        e["scores"] = scores
        registry.register(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
