#!/usr/bin/env python3
"""Benchmark the timbre engine on both bench sets (evaluation only; never trained on).

The sets are ../shared/bench/data/timbre (rendered) and ../shared/bench/data_real/timbre (freepats
piano inputs); they are printed side by side with each set's baselines (benchmarks/common.py).

For every case: piano.wav -> violin (scored by the shared scorer against the reference violin),
violin.wav -> piano (the same pairs reversed, scored with the scorer's metric functions against the
piano; ``--no_reverse`` skips it), and piano.wav -> piano (reconstruction, scored with the same metrics
against the input; ``--no_recon`` skips it). Per case it prints before (the input itself as the
estimate: "do nothing") and after. Pitch: the share of the frames inside melody.json's notes whose
pitch (``engines.timbre.pitch.track`` on the output) is within 50 cents of the note. Reports the
real-time factor (processing time / audio duration) with the requested threads.

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
    recon, per_case = [], {}
    for case in cases:
        src = data / case / "piano.wav"
        t0 = time.time()
        res = eng.run({"input": str(src)}, cfg, target="violin")
        secs += time.time() - t0
        dur += res.duration
        res.save(pred / case, inputs=[src])  # pred/<case>/violin.wav, as the CLI writes it
        per_case[case] = case_figures(eng, data / case, res, sc, cfg, args)
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
    for key in ("pitch_pv", "pitch_vp", "vp_mrstft", "vp_logmel_l1", "vp_chroma_cos", "vp_before_mrstft",
                "vp_before_logmel_l1", "vp_before_chroma_cos"):
        vals = [c[key] for c in per_case.values() if key in c]
        if vals:
            summary[key] = round(float(np.mean(vals)), 4)
    for r in sc.score_timbre(str(data), str(pred), allow_missing=True):  # per case, the scorer's own rows
        per_case.setdefault(r["case"], {}).update(
            pv_mrstft=round(float(r["mrstft"]), 4), pv_before_mrstft=round(float(r["mrstft_piano"]), 4),
            pv_logmel_l1=round(float(r["logmel_l1"]), 4), pv_before_logmel_l1=round(float(r["logmel_l1_piano"]), 4),
            pv_chroma_cos=round(float(r["chroma_cos"]), 4))
    print_cases(per_case)
    if recon:
        for k in ("mrstft", "logmel_l1", "chroma_cos"):
            summary[f"recon_piano_{k}"] = round(float(np.mean([x[k] for x in recon])), 4)
    print("SUMMARY " + json.dumps(summary), flush=True)
    write_json(out / "summary.json", {"summary": summary, "recon": recon, "cases": per_case})
    return {"data": str(data), "summary": summary, "scores": means, "recon": recon, "cases": per_case,
            "baselines": load_baselines(data, "timbre", cases if args.limit else None)}


def case_figures(eng, case_dir: Path, res, sc, cfg, args) -> dict:
    """Per case: the pitch accuracy of piano -> violin and, unless ``--no_reverse``, violin -> piano against
    the piano (after) next to the violin itself as the piano estimate (before), plus its pitch accuracy."""
    import numpy as np

    from engines.audio import io as audio_io
    from engines.timbre import pitch

    notes = json.loads((case_dir / "melody.json").read_text())["notes"] if (case_dir / "melody.json").is_file() else None

    def pitch_acc(wave, rate):
        if not notes:
            return None
        y = audio_io.resample(wave[:1], rate, 22050)[0] if rate != 22050 else wave[0]
        return round(pitch.cents_accuracy(pitch.track(y)[0], notes), 4)

    out = {}
    acc = pitch_acc(res.wave, res.sample_rate)
    if acc is not None:
        out["pitch_pv"] = acc
    if not args.no_reverse and (case_dir / "violin.wav").is_file():
        vio, piano = case_dir / "violin.wav", case_dir / "piano.wav"
        rev = eng.run({"input": str(vio)}, cfg, target="piano")
        ref, sr = audio_io.load(piano, mono=True)
        inp, _ = audio_io.load(vio, mono=True, sr=sr)
        n = min(ref.shape[-1], rev.wave.shape[-1], inp.shape[-1])
        after = sc.timbre_metrics(ref[0, :n].astype(np.float64), rev.wave[0, :n].astype(np.float64), sr)
        before = sc.timbre_metrics(ref[0, :n].astype(np.float64), inp[0, :n].astype(np.float64), sr)
        for k in ("mrstft", "logmel_l1", "chroma_cos"):
            out[f"vp_{k}"], out[f"vp_before_{k}"] = round(float(after[k]), 4), round(float(before[k]), 4)
        acc = pitch_acc(rev.wave, rev.sample_rate)
        if acc is not None:
            out["pitch_vp"] = acc
    return out


def print_cases(per_case: dict) -> None:
    """One line per case: piano -> violin and violin -> piano, before (the input as the estimate) -> after."""
    for case, c in per_case.items():
        line = f"{case}:"
        if "pv_mrstft" in c:
            line += (f" piano->violin mrstft {c['pv_before_mrstft']:.3f} -> {c['pv_mrstft']:.3f}, log-mel "
                     f"{c['pv_before_logmel_l1']:.3f} -> {c['pv_logmel_l1']:.3f}, chroma {c['pv_chroma_cos']:.3f}")
        if "pitch_pv" in c:
            line += f", pitch {c['pitch_pv']:.1%}"
        if "vp_mrstft" in c:
            line += (f" | violin->piano mrstft {c['vp_before_mrstft']:.3f} -> {c['vp_mrstft']:.3f}, log-mel "
                     f"{c['vp_before_logmel_l1']:.3f} -> {c['vp_logmel_l1']:.3f}, chroma {c['vp_before_chroma_cos']:.3f}"
                     f" -> {c['vp_chroma_cos']:.3f}, pitch {c.get('pitch_vp', float('nan')):.1%}")
        print(line, flush=True)


def figures(r: dict) -> dict:
    s = r["summary"]
    out = {"cases": s["cases"], "mrstft": s["mrstft"], "logmel_l1": s["logmel_l1"], "chroma_cos": s["chroma_cos"]}
    out.update({f"recon piano {k}": s[f"recon_piano_{k}"] for k in ("mrstft", "logmel_l1", "chroma_cos")
                if f"recon_piano_{k}" in s})
    for k in ("pitch_pv", "vp_before_mrstft", "vp_mrstft", "vp_before_logmel_l1", "vp_logmel_l1",
              "vp_before_chroma_cos", "vp_chroma_cos", "pitch_vp"):
        if k in s:  # underscored names: the share-of-the-gap rows (piano -> violin baselines) skip them
            out[k] = s[k]
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
    p.add_argument("--no_reverse", action="store_true", help="skip violin -> piano (the pairs reversed)")
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
