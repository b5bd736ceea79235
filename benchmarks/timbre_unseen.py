#!/usr/bin/env python3
"""Timbre transfer on a piano the model never saw: the share of the way, on pairs rendered with another piano.

Issue 17 asks for ">= 65 % of the way" on "any other unseen piano (another soundfont, a recorded piano outside
the bench)". The way is measured as the bench measures it: from doing nothing (the input piano, scored against
the reference violin) to the same notes on another soundfont's violin. Here both ends come from two renders of
one corpus seed (the renderer draws the notes, the reverb and the production chain from the seed alone, so the
two renders hold the same performances):

    python launch.py corpus --out A --kinds timbre --kind-minutes timbre=8 --seed 40 \\
        --piano-soundfont /usr/share/sounds/sf2/OPL-3_FM_128M.sf2     # the unseen piano + the target (FluidR3) violin
    python launch.py corpus --out B --kinds timbre --kind-minutes timbre=8 --seed 40 \\
        --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2                 # the same notes on another soundfont's violin
    python benchmarks/timbre_unseen.py --data A/timbre --other B/timbre [--model NAME | --checkpoint FILE]

Every pair of ``A`` counts (an evaluation render that nothing trains on; use a seed no training corpus used).
Per pair: the model's violin from A's piano through the engine as a user runs it, and the bench scorer's
metrics of (A's piano, the output, B's violin) against A's violin; the shares are computed on the means, as the
bench's share rows. The notes of A's and B's ``melody.json`` must agree (else the pair is refused).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEYS = ("mrstft", "logmel_l1", "chroma_cos")


def matched_pairs(data: str, other: str) -> list[tuple[str, str, str, str]]:
    """``[(id, piano, violin, other violin)]``: the pairs of ``data`` with the same id and notes in ``other``."""
    from trainers.timbre import discover

    others = {pid: v for pid, _, v in discover([other])[0]}
    out = []
    for pid, piano, violin in discover([data])[0]:
        if pid not in others:
            continue
        a = json.loads((Path(piano).parent / "melody.json").read_text())["notes"]
        b = json.loads((Path(others[pid]).parent / "melody.json").read_text())["notes"]
        if a != b:
            raise ValueError(f"{pid}: the two renders hold different notes; render both with the same --seed.")
        out.append((pid, piano, violin, others[pid]))
    return out


def measure(model: str | None, pairs, threads: int, limit: int | None) -> dict:
    import numpy as np

    from benchmarks.common import scorer
    from engines.audio import io as audio_io
    from engines.audio import limits
    from engines.timbre import Engine

    limits.set_threads(threads)
    sc = scorer()
    eng = Engine.load(model, device="cpu")
    rows, secs, dur = [], 0.0, 0.0
    for pid, piano, violin, other in pairs[:limit]:
        ref, sr = audio_io.load(violin, mono=True)
        t0 = time.time()
        res = eng.run({"input": piano}, threads=threads, target="violin")
        secs += time.time() - t0
        dur += res.duration
        y = res.wave if res.sample_rate == sr else audio_io.resample(res.wave, res.sample_rate, sr)
        row = {"pair": pid}
        for name, est in (("nothing", audio_io.load(piano, mono=True)[0]), ("output", y),
                          ("other_violin", audio_io.load(other, mono=True)[0])):
            n = min(ref.shape[-1], est.shape[-1])
            m = sc.timbre_metrics(ref[0, :n].astype(np.float64), est[0, :n].astype(np.float64), sr)
            row.update({f"{name}_{k}": round(float(m[k]), 4) for k in KEYS})
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k != "pair"}
    for k in ("mrstft", "logmel_l1"):
        gap = mean[f"nothing_{k}"] - mean[f"other_violin_{k}"]
        mean[f"share_{k}"] = round((mean[f"nothing_{k}"] - mean[f"output_{k}"]) / gap, 4) if gap else None
    mean["rtf"] = round(secs / max(dur, 1e-9), 4)
    return {"model": eng.name, "pairs": len(rows), "mean": mean, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="corpus timbre folder: the unseen piano + the target violin")
    p.add_argument("--other", required=True, help="the same seed rendered with another soundfont (its violins)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the registered default)")
    g.add_argument("--checkpoint", default=None, help="a model file (.safetensors)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the results here (JSON)")
    args = p.parse_args(argv)
    pairs = matched_pairs(args.data, args.other)
    if not pairs:
        p.error(f"no pair of {args.data} has a twin in {args.other}")
    res = measure(args.checkpoint or args.model, pairs, args.threads, args.limit)
    m = res["mean"]
    print(f"{res['model']} on {res['pairs']} pairs: MR-STFT {m['nothing_mrstft']} -> {m['output_mrstft']} "
          f"(other violin {m['other_violin_mrstft']}): {m['share_mrstft']:.1%} of the way; log-mel "
          f"{m['nothing_logmel_l1']} -> {m['output_logmel_l1']} (other violin {m['other_violin_logmel_l1']}): "
          f"{m['share_logmel_l1']:.1%}; chroma {m['output_chroma_cos']}; RTF {m['rtf']}", flush=True)
    if args.out:
        from benchmarks.common import write_json

        write_json(args.out, {"data": args.data, "other": args.other, **res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
