#!/usr/bin/env python3
"""Measure the fusion engine on ``../shared/bench/data/fusion`` (evaluation only; never train on it).

Figures (per pair and means):
* built-in codec reconstruction of a.wav / b.wav: SI-SDR and multi-resolution STFT distance, both
  with the bench scorer's own functions (``score.py``: ``si_sdr``, ``mrstft``);
* complementarity per mask type for ``direct`` and ``learned`` (definition: ``engines.fusion.api.
  complementarity``: over the regions a mask defines, the energy-weighted share of regions where the
  output's magnitude spectrogram is closer (cosine) to the source assigned there than to the other);
* unity test of the learned model: ``fuse(a, a)`` vs ``a``, RMS (and RMS relative to a's RMS) per
  mask type whose masks cover the latent;
* real-time factor of ``fuse`` (wall time / audio duration) after one warm-up call, direct and
  learned, with ``--threads`` torch threads (the CLI's default is 2); the cold first call is
  reported apart.

``python benchmarks/fusion_bench.py [--model NAME | --checkpoint PATH] [--json out.json] [--register]``
``--register`` writes the means into the model's registry entry (``scores``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT.parent / "shared" / "bench"
if not BENCH.is_dir():
    BENCH = Path("/work/shared/bench")

MASKS = ("temporal", "frequency", "spectral", "energy", "hybrid")
UNITY_MASKS = ("none", "temporal", "frequency", "spectral", "energy")


def _scorer():
    spec = importlib.util.spec_from_file_location("bench_score", BENCH / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _arrangement_distance(r, sc) -> float:
    """MR-STFT distance (scorer's) between the fusion and the clean STFT-domain arrangement of its
    sources under the same masks (the trainer's target): lower = cleaner seams."""
    import numpy as np
    import torch

    from engines.fusion.align import smooth_masks
    from engines.fusion.codec import MDCTCodec
    from trainers.fusion import arrangement

    own = torch.from_numpy(r.region_map.astype(np.int64))[None]
    m_in = ((own == 0) | (own == 2)).float()
    m_tgt = ((own == 1) | (own == 2)).float()
    m_in, m_tgt = smooth_masks(m_in, m_tgt, r.params.get("crossfade_frames", 0))
    a = torch.from_numpy(r.a)[None, None]
    b = torch.from_numpy(r.b)[None, None]
    ref = arrangement(a, b, m_in, m_tgt, MDCTCodec())[0][0, 0].numpy()
    return sc.mrstft(ref, r.audio)["mrstft"]


def register_scores(name: str, summary: dict) -> None:
    """Create or update the registry entry ``name`` (kind fusion) with the measured ``summary``."""
    from engines import registry
    from engines.checkpoint import read_header

    try:
        entry = registry.get(name)
    except Exception:  # first registration: build the entry from the checkpoint header
        path = registry.MODELS_DIR / f"{name}.safetensors"
        header = read_header(path)
        meta = header["metadata"]
        hp = meta.get("hparams", {})
        entry = {"name": name, "kind": "fusion", "file": path.name, "sample_rate": meta.get("sample_rate", 24000),
                 "default": True, "codec": meta.get("codec", "builtin"),
                 "description": "Cascade transformer refining the direct complementary fusion on the built-in "
                                "MDCT codec (seams, mask edges); fuse --mode learned",
                 "trained_on": meta.get("trained_on"),
                 "config": {"model": header["kwargs"], "training": {k: hp.get(k) for k in (
                     "mask_type", "anti_cheating", "shuffle_targets", "lr", "max_steps", "batch_size",
                     "crop_seconds", "loss_weight_input", "loss_weight_target", "loss_weight_spectral",
                     "loss_weight_mel", "relative_loss", "grad_clip", "seed")},
                            "steps": meta.get("step"), "history": meta.get("history", [])[-2:]}}
    entry["scores"] = {"bench": "shared/bench/data/fusion (6 pairs, 15 s, 24 kHz)", **summary}
    registry.register(entry)
    print(f"registered scores in {name}.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(BENCH / "data" / "fusion"))
    p.add_argument("--model", default=None, help="registry name (default: the fusion default)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write all figures here")
    p.add_argument("--register", action="store_true", help="store the means in the model's registry entry")
    p.add_argument("--skip_learned", action="store_true")
    p.add_argument("--register_from", default=None, metavar="JSON",
                   help="register the summary of an earlier --json run for --model/the checkpoint's name, and exit")
    args = p.parse_args(argv)
    if args.register_from:
        summary = json.loads(Path(args.register_from).read_text())["summary"]
        register_scores(args.model or summary.get("model", {}).get("name"), summary)
        return 0

    import numpy as np
    import torch

    from engines.fusion.api import FusionEngine, complementarity
    from engines.fusion.codec import MDCTCodec

    torch.set_num_threads(args.threads)
    sc = _scorer()
    cases = sorted(d for d in Path(args.data).iterdir() if (d / "a.wav").is_file())
    engine = FusionEngine(model=args.model, checkpoint=args.checkpoint)
    codec = MDCTCodec()
    rows = {"codec": [], "complementarity": {"direct": {m: [] for m in MASKS}, "learned": {m: [] for m in MASKS}},
            "arrangement_mrstft": {"direct": {m: [] for m in MASKS}, "learned": {m: [] for m in MASKS}},
            "unity": {m: [] for m in UNITY_MASKS}, "unity_rel": {m: [] for m in UNITY_MASKS},
            "rtf": {"direct": [], "learned": []}, "cpu_rtf": {"direct": [], "learned": []}}
    t0 = time.perf_counter()
    first = engine.fuse(str(cases[0] / "a.wav"), str(cases[0] / "b.wav"))
    cold = {"direct_first_call_s": round(time.perf_counter() - t0, 3), "direct_first_call_rtf": round(first.timings["rtf"], 4)}
    modes = ("direct",) if args.skip_learned else ("direct", "learned")
    if not args.skip_learned:
        t0 = time.perf_counter()
        engine.fuse(str(cases[0] / "a.wav"), str(cases[0] / "b.wav"), mode="learned")
        cold["learned_first_call_s"] = round(time.perf_counter() - t0, 3)
    for case in cases:
        a_path, b_path = str(case / "a.wav"), str(case / "b.wav")
        for name in ("a", "b"):
            y, sr, _ = sc.load_mono(str(case / f"{name}.wav"))
            with torch.no_grad():
                x = torch.from_numpy(np.asarray(y, dtype=np.float32))[None, None]
                z = codec.decode(codec.encode(x), x.shape[-1])[0, 0].numpy()
            rows["codec"].append({"case": case.name, "file": name, "si_sdr": sc.si_sdr(y, z), "mrstft": sc.mrstft(y, z)["mrstft"]})
        for mode in modes:
            for m in MASKS:
                r = engine.fuse(a_path, b_path, mask_type=m, mode=mode)
                c = complementarity(r)["complementarity"]
                rows["complementarity"][mode][m].append(c)
                rows["arrangement_mrstft"][mode][m].append(_arrangement_distance(r, sc))
                rows["rtf"][mode].append(r.timings["rtf"])
                rows["cpu_rtf"][mode].append(r.timings["cpu_rtf"])
                print(f"{case.name} {mode:7s} {m:9s} complementarity {c:.3f}  rtf {r.timings['rtf']:.4f} "
                      f"cpu_rtf {r.timings['cpu_rtf']:.4f}", flush=True)
        if not args.skip_learned:
            for m in UNITY_MASKS:
                r = engine.fuse(a_path, a_path, mask_type=m, mode="learned")
                rms = float(np.sqrt(np.mean((r.audio - r.a) ** 2)))
                rows["unity"][m].append(rms)
                rows["unity_rel"][m].append(rms / float(np.sqrt(np.mean(r.a**2))))
                print(f"{case.name} unity   {m:9s} rms {rms:.5f} (relative {rows['unity_rel'][m][-1]:.4f})", flush=True)
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    summary = {
        "cases": len(cases),
        "codec_si_sdr_db": mean([r["si_sdr"] for r in rows["codec"]]),
        "codec_mrstft": mean([r["mrstft"] for r in rows["codec"]]),
        "complementarity": {mode: {m: mean(v) for m, v in rows["complementarity"][mode].items()} for mode in modes},
        "arrangement_mrstft": {mode: {m: mean(v) for m, v in rows["arrangement_mrstft"][mode].items()}
                               for mode in modes},
        "rtf": {mode: {"mean": mean(rows["rtf"][mode]), "max": float(np.max(rows["rtf"][mode])),
                       "cpu_mean": mean(rows["cpu_rtf"][mode]), "cpu_max": float(np.max(rows["cpu_rtf"][mode]))}
                for mode in modes},
        "load_average_1min": os.getloadavg()[0],
        "cold": cold, "threads": args.threads,
    }
    for mode in modes:
        summary["complementarity"][mode]["mean"] = mean(list(summary["complementarity"][mode].values()))
    if not args.skip_learned:
        summary["unity_rms"] = {m: mean(v) for m, v in rows["unity"].items()}
        summary["unity_rms_relative"] = {m: mean(v) for m, v in rows["unity_rel"].items()}
        summary["model"] = engine._model_meta
    print(json.dumps(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    if args.register and not args.skip_learned:
        register_scores(engine._model_meta.get("name") or args.model, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
