"""Calibrate the query engine's "not found" decision (engines/separation/presence.py) on corpus triples.

The calibration set is built from corpus query folders that no model was trained on (never the bench):
every mixture with its own query (present) and with ``--absent`` queries of other triples whose class cannot
occur in it (absent): not the target's class, no speech or singing query over babble, no instrument,
singing or drum query over music, no bird query over ambience. The rows are split in two halves by index
parity for a two-fold cross-validation: each half is scored by a logistic model and threshold (the highest
one that declares at most ``--max_miss`` of the present pairs absent) fitted on the other half, which
measures both error rates; the shipped calibration is then fitted the same way on every pair. ``--register`` stores the calibration in the model's registry entry (``presence``).

    python benchmarks/query_calibrate.py --data /work/corpus_q15cal/query [--checkpoint PATH] [--register]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEECH = {"speech", "singing"}
MUSIC = {"singing", "piano", "strings", "winds", "brass", "guitar", "bass", "organ", "drums"}


def can_be_absent(query_label: str, target_label: str, background: list[str]) -> bool:
    """Whether a query of ``query_label`` cannot occur in a mixture of ``target_label`` over ``background``."""
    if query_label == target_label:
        return False
    bg = set(background)
    if "babble" in bg and query_label in SPEECH:
        return False
    if "music" in bg and query_label in MUSIC:
        return False
    if "ambience" in bg and query_label in {"birds", "noise"}:
        return False
    return True


def pairs(folders: list[str], n_absent: int, seed: int = 0) -> list[dict]:
    """``{"row", "mix", "query", "present", "label", "query_label", "real"}`` for every row of ``folders``."""
    import numpy as np

    from trainers.data import kind_folder, read

    rows = []
    for f in folders:
        base = kind_folder(f, "query")
        for r in read(f, "query"):
            rows.append({"dir": base / r.path, "label": r.label, "real": bool(r.real),
                         "bg": list(r.info.get("background", [])), "source_type": r.info.get("source_type", r.label)})
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(rows):
        out.append({"row": i, "mix": r["dir"] / "mix.wav", "query": r["dir"] / "query.wav", "present": 1,
                    "label": r["label"], "query_label": r["label"], "real": r["real"], "bg": r["bg"],
                    "source_type": r["source_type"]})
        cand = [o for o in rows if can_be_absent(o["label"], r["label"], r["bg"])]
        for j in rng.choice(len(cand), size=min(n_absent, len(cand)), replace=False) if cand else []:
            o = cand[int(j)]
            out.append({"row": i, "mix": r["dir"] / "mix.wav", "query": o["dir"] / "query.wav", "present": 0,
                        "label": r["label"], "query_label": o["label"], "real": r["real"], "bg": r["bg"],
                        "source_type": r["source_type"]})
    return out


def measure(items: list[dict], models, threads: int = 1) -> list[dict]:
    """The presence features of every pair (the not-found gate off)."""
    from engines.separation.api import separate

    for k, it in enumerate(items):
        r = separate(str(it["mix"]), str(it["query"]), models=models, threads=threads, not_found_db=-1000.0,
                     presence_threshold=0.0)
        it["features"] = r.presence["features"]
        if k % 100 == 0:
            print(f"{k}/{len(items)}", flush=True)
    return items


def rates(p, y, thr) -> dict:
    import numpy as np

    p, y = np.asarray(p), np.asarray(y)
    pres, absn = p[y == 1], p[y == 0]
    return {"n_present": int(pres.size), "n_absent": int(absn.size),
            "present_declared_absent": round(float((pres < thr).mean()), 4) if pres.size else None,
            "absent_caught": round(float((absn < thr).mean()), 4) if absn.size else None}


def calibrate(items: list[dict], max_miss: float = 0.02) -> dict:
    """The shipped calibration (logistic model on every pair, threshold: the ``max_miss`` quantile of the
    present scores) and its error rates measured by two-fold cross-validation over the rows (each half
    scored by a model and threshold fitted on the other half only)."""
    import numpy as np

    from engines.separation import presence as pm

    x = np.array([[it["features"][f] for f in pm.FEATURES] for it in items], dtype=np.float64)
    y = np.array([it["present"] for it in items])
    half = np.array([it["row"] % 2 for it in items])
    folds, p_cv = {}, np.zeros(len(items))
    for a in (0, 1):
        fit = half == a
        cal_a = pm.fit(x[fit], y[fit])
        p = np.array([pm.score(it["features"], cal_a) for it in items])
        thr = pm.choose_threshold(p[fit & (y == 1)], max_miss)
        folds[f"fit on {'even' if a == 0 else 'odd'} rows, measured on the others"] = rates(p[~fit], y[~fit], thr)
        p_cv[~fit] = p[~fit] - thr  # scores relative to their fold's threshold
    cal = pm.fit(x, y)
    p = np.array([pm.score(it["features"], cal) for it in items])
    cal["threshold"] = round(pm.choose_threshold(p[y == 1], max_miss), 4)
    est = x[:, 0]
    by_kind = {}
    for kind in sorted({it["source_type"] for it in items}):
        sel = np.array([it["source_type"] == kind for it in items])
        by_kind[kind] = rates(p_cv[sel], y[sel], 0.0)
    by_query = {}
    for lab in sorted({it["query_label"] for it in items if not it["present"]}):
        sel = np.array([(not it["present"]) and it["query_label"] == lab for it in items])
        by_query[lab] = {"n": int(sel.sum()), "caught": round(float((p_cv[sel] < 0).mean()), 3)}
    cal["measured"] = {"cross-validated (2 folds)": rates(p_cv, y, 0.0), "folds": folds,
                       "fit set (optimistic)": rates(p, y, cal["threshold"])}
    cal["cross_validated_by_source_type"] = by_kind
    cal["cross_validated_absent_caught_by_query_class"] = by_query
    cal["legacy_rule_-25dB"] = rates(est - pm.LEGACY_DB, y, 0.0)
    return cal


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="corpus query folders never trained on")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--absent", type=int, default=2, help="absent queries per mixture")
    p.add_argument("--max_miss", type=float, default=0.02, help="share of present pairs allowed below the threshold")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", default=None, help="read/write the measured features here (JSON)")
    p.add_argument("--out", default=None, help="write the calibration JSON here")
    p.add_argument("--register", action="store_true", help="store the calibration in the model's registry entry")
    args = p.parse_args(argv)

    from engines.separation import Engine

    t0 = time.time()
    if args.features and Path(args.features).is_file():
        items = json.loads(Path(args.features).read_text())
    else:
        engine = Engine.load(args.checkpoint, device="cpu", embedder="builtin")
        items = measure(pairs(args.data, args.absent, args.seed), engine.models, args.threads)
        items = [{k: (str(v) if isinstance(v, Path) else v) for k, v in it.items()} for it in items]
        if args.features:
            Path(args.features).write_text(json.dumps(items))
    cal = calibrate(items, args.max_miss)
    n_rows = len({(it["mix"]) for it in items})
    kinds: dict = {}
    for it in items:
        if it["present"]:
            kinds[it["source_type"]] = kinds.get(it["source_type"], 0) + 1
    cal["calibration_set"] = {"folders": args.data, "mixtures": n_rows, "absent_per_mixture": args.absent,
                              "present_pairs": sum(it["present"] for it in items),
                              "absent_pairs": sum(1 - it["present"] for it in items),
                              "real_mixtures": sum(1 for it in items if it["present"] and it["real"]),
                              "present_by_source_type": dict(sorted(kinds.items())),
                              "fit": "every pair (logistic model + threshold); error rates by 2-fold "
                                     "cross-validation over the rows (even / odd)", "max_miss_fit": args.max_miss, "seconds": round(time.time() - t0, 1)}
    print(json.dumps({k: cal[k] for k in ("threshold", "measured", "legacy_rule_-25dB", "calibration_set")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(cal, indent=1))
    if args.register:
        from engines import registry

        name = "query-builtin"
        if args.checkpoint:
            match = [e for e in registry.entries("query")
                     if (registry._dir(None) / e["file"]).resolve() == Path(args.checkpoint).resolve()]
            if not match:
                p.error("--register: the checkpoint is not a registry entry's file")
            name = match[0]["name"]
        e = registry.get(name)
        e["presence"] = cal
        registry.register(e)
        print(f"registered the calibration in {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
