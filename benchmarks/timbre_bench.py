#!/usr/bin/env python3
"""Benchmark the timbre engine on both bench sets (evaluation only; never trained on).

The sets are ../shared/bench/data/timbre (rendered) and ../shared/bench/data_real/timbre (freepats
piano inputs); they are printed side by side with each set's baselines (benchmarks/common.py).

For every case: piano.wav -> violin (scored by the shared scorer against the reference violin),
and piano.wav -> piano (reconstruction, scored with the same metrics against the input). Reports
the real-time factor (processing time / audio duration) with the requested threads.

    python benchmarks/timbre_bench.py [--model NAME | --checkpoint PATH] [--threads 2] [--device auto|cpu|cuda]
        [--preset fast|refined] [--phase input|griffinlim] [--gl_iters N]
        [--out /work/runs/timbre-bench] [--sets rendered real] [--limit N] [--register]

The transfer options are :class:`engines.timbre.Config`'s (same flags and defaults as ``launch.py timbre``);
the device used is reported in ``bench.json`` and the table's title.

``--register`` writes the measured means into the model's registry entry (``scores``; per set in
``scores["bench"][set]``, the flat keys stay the rendered set's).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import (add_set_arguments, list_cases, load_baselines, registry_set_scores,  # noqa: E402
                               results_json, score, scorer, selected_sets, set_label, side_by_side, write_json)


def run_set(eng, data: Path, out: Path, sc, args, cfg) -> dict:
    """piano -> violin on every case of one set (scored by score.py), piano -> piano reconstruction."""
    import numpy as np

    from engines.audio import io as audio_io

    pred = out / "pred"
    cases = [c.name for c in list_cases(data, "piano.wav", args.limit)]
    secs = dur = 0.0
    recon = []
    for case in cases:
        src = data / case / "piano.wav"
        t0 = time.time()
        res = eng.run({"input": str(src)}, cfg, target="violin")
        secs += time.time() - t0
        dur += res.duration
        res.save(pred / case, inputs=[src])  # pred/<case>/violin.wav, as the CLI writes it
        if not args.no_recon:
            rec = eng.run({"input": str(src)}, cfg, target="piano")
            ref, sr = audio_io.load(src, mono=True)
            m = sc.timbre_metrics(ref[0].astype(np.float64), rec.wave[0].astype(np.float64), sr)
            recon.append({"case": case, **{k: round(float(v), 4) for k, v in m.items()}})
        print(f"{case}: {res.seconds:.2f} s for {res.duration:.1f} s (rtf {res.rtf:.3f})", flush=True)
    means = score("timbre", data, pred, allow_missing=bool(args.limit), table=True)
    summary = {"mrstft": means.get("mrstft"), "logmel_l1": means.get("logmel_l1"), "chroma_cos": means.get("chroma_cos"),
               "rtf": round(secs / dur, 4), "threads": cfg.threads, "phase": cfg.phase, "gl_iters": cfg.gl_iters,
               "device": str(eng.device), "cases": len(cases)}
    if recon:
        for k in ("mrstft", "logmel_l1", "chroma_cos"):
            summary[f"recon_piano_{k}"] = round(float(np.mean([x[k] for x in recon])), 4)
    print("SUMMARY " + json.dumps(summary), flush=True)
    write_json(out / "summary.json", {"summary": summary, "recon": recon})
    return {"data": str(data), "summary": summary, "scores": means, "recon": recon,
            "baselines": load_baselines(data, "timbre", cases if args.limit else None)}


def figures(r: dict) -> dict:
    s = r["summary"]
    out = {"cases": s["cases"], "mrstft": s["mrstft"], "logmel_l1": s["logmel_l1"], "chroma_cos": s["chroma_cos"]}
    out.update({f"recon piano {k}": s[f"recon_piano_{k}"] for k in ("mrstft", "logmel_l1", "chroma_cos")
                if f"recon_piano_{k}" in s})
    out["rtf"] = s["rtf"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(p)
    p.add_argument("--data", default=None, help="run this one timbre folder instead of --sets")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None)
    g.add_argument("--checkpoint", default=None)
    p.add_argument("--out", default="/work/runs/timbre-bench")
    from engines import device as devices
    from engines import options
    from engines.timbre.config import Config

    options.add_arguments(p, Config, skip=("target", "threads"))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, the bench's figure)")
    devices.add_argument(p)
    p.add_argument("--no_recon", action="store_true", help="skip the piano -> piano reconstruction")
    p.add_argument("--register", action="store_true", help="store the scores in the model's registry entry")
    args = p.parse_args(argv)
    if args.register and (args.limit or args.data):
        p.error("--register needs whole bench sets (no --limit, no --data)")

    from engines.timbre import Engine

    cfg = options.from_args(Config, args, threads=args.threads)
    sc = scorer()
    eng = Engine.load(args.checkpoint or args.model, device=args.device)
    sets, out = selected_sets(args, "timbre"), Path(args.out)
    first = list_cases(next(iter(sets.values())), "piano.wav", 1)[0]
    eng.run({"input": str(first / "piano.wav")}, cfg, gl_iters=2)  # warm-up (imports, caches)
    per_set = {}
    for name, data in sets.items():
        print(f"== {name}: {data}", flush=True)
        per_set[name] = run_set(eng, data, out / name, sc, args, cfg)
    table = side_by_side("timbre", {n: figures(r) for n, r in per_set.items()},
                         {n: r["baselines"] for n, r in per_set.items()},
                         title=f"timbre piano -> violin ({getattr(eng, 'name', None) or args.model or args.checkpoint}, "
                               f"phase {cfg.phase}, {eng.device}), distances lower = better, chroma_cos higher = better")
    write_json(out / "bench.json", results_json("timbre", per_set, table, threads=cfg.threads, phase=cfg.phase,
                                                gl_iters=cfg.gl_iters, engine_device=str(eng.device),
                                                model=args.model, checkpoint=args.checkpoint))
    print(f"results: {out / 'bench.json'}")
    if args.register:
        from engines import registry

        name = args.model or registry.default("timbre")["name"]
        entry = registry.get(name)
        scores = dict(entry.get("scores", {}))
        for set_name, r in per_set.items():
            summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r["summary"].items()}
            b = r["baselines"].get("mean", {})
            figs = {"set": f"{set_label(set_name)}/timbre ({summary['cases']} pairs, piano -> violin)", **summary,
                    "do_nothing_piano_mrstft": round(b.get("do_nothing_piano", {}).get("mrstft", float("nan")), 4),
                    "other_soundfont_violin_mrstft": round(b.get("other_soundfont_violin", {}).get("mrstft", float("nan")), 4)}
            scores = registry_set_scores(scores, set_name, figs)
            if set_name == "rendered":  # the old flat keys stay the rendered set's figures
                scores.update(summary)
        scores["command"] = "python benchmarks/timbre_bench.py --register"
        entry["scores"] = scores
        registry.register(entry)
        print(f"Registered scores in {name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
