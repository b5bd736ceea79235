#!/usr/bin/env python3
"""Measure the fusion engine on both bench sets (evaluation only; never train on them).

The sets are ``../shared/bench/data/fusion`` (rendered) and ``../shared/bench/data_real/fusion``
(real recordings), printed side by side (``benchmarks/common.py``). Fusion has no scorer and no
baselines: the figures are its own. Figures (per pair and means, per set):
* built-in codec reconstruction of a.wav / b.wav: SI-SDR and multi-resolution STFT distance, both
  with the bench scorer's own functions (``score.py``: ``si_sdr``, ``mrstft``);
* complementarity per mask type for ``direct`` and ``learned`` (definition: ``engines.fusion.targets.
  complementarity``: over the regions a mask defines, the energy-weighted share of regions where the
  output's magnitude spectrogram is closer (cosine) to the source assigned there than to the other);
* unity test of the learned model: ``fuse(a, a)`` vs ``a``, RMS (and RMS relative to a's RMS) per
  mask type whose masks cover the latent;
* real-time factor of ``fuse`` (wall time / audio duration) after one warm-up call, direct and
  learned, with ``--threads`` torch threads (the CLI's default is 2); the cold first call is
  reported apart.

``python benchmarks/fusion_bench.py [--model NAME | --checkpoint PATH] [--sets rendered real] [--limit N]
[--json out.json] [--out DIR] [--register]``
``--register`` writes the means into the model's registry entry (``scores``; per set in
``scores["bench"][set]``, the flat keys stay the rendered set's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engines.audio import limits  # noqa: E402
from benchmarks.common import (add_set_arguments, list_cases, registry_set_scores, results_json,  # noqa: E402
                               scorer, selected_sets, set_label, side_by_side, write_json)

MASKS = ("temporal", "frequency", "spectral", "energy", "hybrid")
UNITY_MASKS = ("none", "temporal", "frequency", "spectral", "energy")
#: mask types scored by the arrangement score (``none``, the blend, is the reference row)
ARRANGEMENT_MASKS = ("none",) + MASKS
#: mask types without complementary regions (no complementarity; their RTF is reported apart)
NO_REGIONS = ("none", "stems")
#: octave-band edges of the arrangement score's tiles (Hz; the last band runs to Nyquist)
OCTAVE_EDGES = (0.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def arrangement_score(y, a, b, sr: int, tile_seconds: float = 0.25, margin: float = 0.1, n_fft: int = 1024,
                      hop: int = 256) -> dict:
    """The issue's arrangement score of an output ``y`` against the two aligned inputs ``a``, ``b`` (all ``(T,)``).

    The three magnitude spectrograms (``n_fft``/``hop``) are cut into tiles of ``tile_seconds`` by one octave
    band (:data:`OCTAVE_EDGES` .. Nyquist). In each tile the output is compared with A and with B by cosine; a
    tile is *clean* when one source wins by at least ``margin``. Returns ``clean`` (output-energy-weighted share
    of clean tiles: a blend scores about 0.45-0.7, a hard switch about 1), ``share_a`` (share of the clean
    energy that resembles A), ``present`` (both songs present: ``0.2 <= share_a <= 0.8``) and ``tiles``.
    """
    import numpy as np
    import torch

    from engines.audio.spectral import stft

    n = min(len(y), len(a), len(b))
    mags = [stft(torch.from_numpy(np.ascontiguousarray(np.asarray(x[:n], dtype=np.float32))), n_fft, hop)
            .abs().numpy().astype(np.float64) for x in (y, a, b)]
    Y, SA, SB = mags
    freqs = np.arange(Y.shape[0]) * sr / n_fft
    edges = list(OCTAVE_EDGES) + [sr / 2 + 1.0]
    step = max(int(round(tile_seconds * sr / hop)), 1)
    clean_e = a_e = total_e = 0.0
    tiles = 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = (freqs >= lo) & (freqs < hi)
        if not rows.any():
            continue
        for t0 in range(0, Y.shape[1], step):
            y_, a_, b_ = (M[rows, t0:t0 + step].ravel() for M in (Y, SA, SB))
            e = float(np.sum(y_ ** 2))
            if e <= 0:
                continue
            tiles += 1
            total_e += e
            ny = np.linalg.norm(y_)
            ca = float(y_ @ a_ / (ny * np.linalg.norm(a_) + 1e-12))
            cb = float(y_ @ b_ / (ny * np.linalg.norm(b_) + 1e-12))
            if abs(ca - cb) >= margin:
                clean_e += e
                a_e += e * (ca > cb)
    clean = clean_e / total_e if total_e > 0 else 0.0
    share_a = a_e / clean_e if clean_e > 0 else None
    return {"clean": clean, "share_a": share_a,
            "present": share_a is not None and 0.2 <= share_a <= 0.8, "tiles": tiles}


def _true_grid(meta: dict, seconds: float):
    """``(tempo_bpm, bar seconds, downbeat times)`` of one song's ``meta.json`` entry, or ``None`` when its first
    downbeat or meter is unknown (real beds with estimated tempi)."""
    ts, first = meta.get("time_signature"), meta.get("first_downbeat_s")
    if not ts or first is None or meta.get("tempo_is_estimate"):
        return None
    num, den = (int(x) for x in ts.split("/"))
    bar = num * 4.0 / den * 60.0 / float(meta["tempo_qpm"])
    return float(meta["tempo_bpm"]), bar, list(first + bar * np.arange(int((seconds - first) / bar) + 1))


def beat_figures(path, meta: dict, tol: float = 0.07, downbeats_from: str = "learned") -> dict | None:
    """Downbeat, tempo and key figures of one song against its ``meta.json`` entry (measure only): ``first`` (the
    first detected downbeat within ``tol`` of the true one), ``grid`` (``first`` and >= 90 % of the true downbeats
    hit within ``tol`` and >= 90 % of the detected ones true: the bar grid), the tempo error of ours and of
    ``librosa.beat.beat_track`` (the baseline; ratio to the felt beat, octave errors counted as errors and
    reported apart), and the key (estimate vs ``key``)."""
    import librosa

    from engines.audio import io
    from engines.fusion import align

    y, sr = io.load(str(path), sr=24000, mono=True)
    y = y[0]
    truth = _true_grid(meta, len(y) / sr)
    out: dict = {}
    info = align.track_beats(y, sr, downbeats_from=downbeats_from)
    true_bpm = float(meta["tempo_bpm"])
    lib_tempo = float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=sr, hop_length=512)[0])[0])
    for name, bpm in (("ours", info.tempo), ("librosa", lib_tempo)):
        ratio = bpm / true_bpm
        out[f"tempo_{name}"] = round(bpm, 2)
        out[f"tempo_ok_{name}"] = abs(ratio - 1) <= 0.04
        out[f"tempo_octave_ok_{name}"] = any(abs(ratio / k - 1) <= 0.04 for k in (0.5, 1, 2, 2 / 3, 1.5))
    if truth is not None:
        _, bar, true_db = truth
        est = np.asarray(info.downbeats)
        true_db = np.asarray(true_db)
        hit = lambda xs, ys: float(np.mean([np.min(np.abs(ys - x)) <= tol for x in xs])) if len(xs) and len(ys) else 0.0  # noqa: E731
        first = bool(np.any(est >= -tol)) and abs(est[est >= -tol][0] - true_db[0]) <= tol
        recall, precision = hit(true_db, est), hit(est, true_db)
        out.update(first_downbeat=bool(first), downbeat_recall=round(recall, 3), downbeat_precision=round(precision, 3),
                   grid=bool(first and recall >= 0.9 and precision >= 0.9), beats_per_bar=info.beats_per_bar,
                   true_bar_s=round(bar, 4))
    if meta.get("key"):
        k = align.estimate_key(y, sr)
        tonic, mode = meta["key"].replace("-", "b").split()
        pcs = {n: i for i, n in enumerate(align.PITCH_CLASSES)}
        pcs.update({"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "E#": 5, "B#": 0, "Fb": 4})
        out.update(key_true=meta["key"], key_est=k.name, key_ok=(pcs.get(tonic) == k.tonic and mode == k.mode))
    return out


def seam_clicks(r, window_s: float = 0.005, context_s: float = 0.1) -> float | None:
    """How much a fusion clicks at its switches (time-varying masks): at every segment edge, the largest
    first difference of the output within ``window_s`` of the edge over the RMS first difference of the
    ``context_s`` around it, in dB, averaged over the edges (a clean crossfade stays near the music's own
    ~10 dB peak-to-RMS; a click jumps above it). ``None`` without edges."""
    edges = [s_["start"] for s_ in r.segments[1:]]
    if not edges:
        return None
    d = np.abs(np.diff(r.fusion.astype(np.float64)))
    sr = r.sample_rate
    vals = []
    for t in edges:
        i = int(round(t * sr))
        w, c = int(window_s * sr), int(context_s * sr)
        lo, hi = max(i - c, 0), min(i + c, len(d))
        if hi - lo < 4 * w:
            continue
        ref = float(np.sqrt(np.mean(d[lo:hi] ** 2))) + 1e-12
        vals.append(20 * np.log10(float(d[max(i - w, 0):i + w].max()) / ref + 1e-12))
    return float(np.mean(vals)) if vals else None


def beat_set(cases: list[Path]) -> dict:
    """:func:`beat_figures` of every song of a set for both downbeat trackers: per-song rows and the shares."""
    rows = {"heuristic": [], "learned": []}
    for case in cases:
        meta = json.loads((case / "meta.json").read_text())
        for name in ("a", "b"):
            for tracker in rows:
                f = beat_figures(case / f"{name}.wav", meta[name], downbeats_from=tracker)
                rows[tracker].append({"case": case.name, "song": name, **f})
                print(f"{case.name} {name} {tracker:9s} " + " ".join(f"{k}={v}" for k, v in f.items()), flush=True)
    share = lambda rs, k: float(np.mean([r[k] for r in rs if k in r])) if any(k in r for r in rs) else None  # noqa: E731
    summary = {"songs_with_downbeats": sum("grid" in r for r in rows["learned"])}
    for tracker, rs in rows.items():
        summary[tracker] = {k: share(rs, k) for k in ("first_downbeat", "grid", "tempo_ok_ours", "tempo_octave_ok_ours")}
    summary["librosa"] = {k: share(rows["learned"], k) for k in ("tempo_ok_librosa", "tempo_octave_ok_librosa")}
    summary["key_ok"] = share(rows["learned"], "key_ok")
    return {"summary": summary, "rows": rows}


def _arrangement_distance(r, sc) -> float:
    """MR-STFT distance (scorer's) between the fusion and the clean STFT-domain arrangement of its
    sources under the same masks (the trainer's target): lower = cleaner seams."""
    import numpy as np
    import torch

    from engines.fusion.align import smooth_masks
    from engines.fusion.codec import MDCTCodec
    from engines.fusion.targets import arrangement

    own = torch.from_numpy(r.region_map.astype(np.int64))[None]
    m_in = ((own == 0) | (own == 2)).float()
    m_tgt = ((own == 1) | (own == 2)).float()
    m_in, m_tgt = smooth_masks(m_in, m_tgt, r.params.get("crossfade_frames", 0))
    a = torch.from_numpy(r.a)[None, None]
    b = torch.from_numpy(r.b)[None, None]
    ref = arrangement(a, b, m_in, m_tgt, MDCTCodec())[0][0, 0].numpy()
    return sc.mrstft(ref, r.fusion)["mrstft"]


def _sig4(v):
    """``v`` with every float rounded to 4 significant digits (nested dicts too): short registry lines."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    return {k: _sig4(x) for k, x in v.items()} if isinstance(v, dict) else v


def register_scores(name: str, summaries: dict[str, dict]) -> None:
    """Create or update the registry entry ``name`` (kind fusion) with the measured ``summaries``
    (``{set: summary}``): per set in ``scores["bench"][set]``; the flat keys stay the rendered set's."""
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
    scores = dict(entry.get("scores", {}))
    for set_name, summary in summaries.items():
        label = f"{set_label(set_name)}/fusion ({summary.get('cases')} pairs, 15 s, 24 kHz)"
        compact = {"set": label, **{k: summary[k] for k in ("cases", "codec_si_sdr_db", "codec_mrstft") if k in summary},
                   "complementarity_mean": {m: v.get("mean") for m, v in summary.get("complementarity", {}).items()},
                   "rtf_mean": {m: v.get("mean") for m, v in summary.get("rtf", {}).items()}}
        if "unity_rms_relative" in summary:
            compact["unity_rms_relative"] = summary["unity_rms_relative"]
        scores = registry_set_scores(scores, set_name, _sig4(compact))
        if set_name == "rendered":  # the old flat keys stay the rendered set's figures
            scores.update({k: v for k, v in summary.items() if k != "bench"})
    entry["scores"] = scores
    registry.register(entry)
    print(f"registered scores in {name}.json")


def run_set(engine, codec, sc, cases: list[Path], args) -> dict:
    """Every figure on one set's pairs: ``{"summary": means, "rows": per pair}``."""
    import numpy as np
    import torch

    from engines.fusion.targets import complementarity

    masks = tuple(args.masks)
    scored = [m for m in masks if m not in NO_REGIONS]
    rows = {"codec": [], "complementarity": {"direct": {m: [] for m in scored}, "learned": {m: [] for m in scored}},
            "arrangement_mrstft": {"direct": {m: [] for m in scored}, "learned": {m: [] for m in scored}},
            "arrangement": {"direct": {m: [] for m in masks}, "learned": {m: [] for m in masks}},
            "unity": {m: [] for m in UNITY_MASKS}, "unity_rel": {m: [] for m in UNITY_MASKS},
            "rtf": {"direct": [], "learned": []}, "cpu_rtf": {"direct": [], "learned": []},
            "rtf_by_mask": {"direct": {}, "learned": {}}, "seam_clicks_db": {"direct": {}, "learned": {}}}
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
        for name in () if args.arrangement_only else ("a", "b"):
            y, sr, _ = sc.load_mono(str(case / f"{name}.wav"))
            with torch.no_grad():
                x = torch.from_numpy(np.asarray(y, dtype=np.float32))[None, None]
                z = codec.decode(codec.encode(x), x.shape[-1])[0, 0].numpy()
            rows["codec"].append({"case": case.name, "file": name, "si_sdr": sc.si_sdr(y, z), "mrstft": sc.mrstft(y, z)["mrstft"]})
        for mode in modes:
            for m in masks:
                extra = {"stem_split": args.stem_split} if m == "stems" and args.stem_split else {}
                if args.downbeats:
                    extra["downbeats"] = args.downbeats
                r = engine.fuse(a_path, b_path, mask_type=m, mode=mode, **extra)
                arr = arrangement_score(r.fusion, r.a, r.b, r.sample_rate)
                rows["arrangement"][mode][m].append({"case": case.name, **arr})
                line = (f"{case.name} {mode:7s} {m:9s} clean {arr['clean']:.3f} share_a "
                        f"{arr['share_a'] if arr['share_a'] is None else round(arr['share_a'], 3)} "
                        f"{'both' if arr['present'] else 'ONE '}")
                rows["rtf_by_mask"][mode].setdefault(m, []).append(r.timings["rtf"])
                clicks = seam_clicks(r) if m in ("temporal", "energy", "hybrid") else None
                if clicks is not None:
                    rows["seam_clicks_db"][mode].setdefault(m, []).append(clicks)
                    line += f" seam {clicks:.1f} dB"
                if m not in NO_REGIONS:
                    c = complementarity(r)["complementarity"]
                    rows["complementarity"][mode][m].append(c)
                    if not args.arrangement_only:
                        rows["arrangement_mrstft"][mode][m].append(_arrangement_distance(r, sc))
                    rows["rtf"][mode].append(r.timings["rtf"])
                    rows["cpu_rtf"][mode].append(r.timings["cpu_rtf"])
                    line += f"  complementarity {c:.3f}"
                print(f"{line}  rtf {r.timings['rtf']:.4f} cpu_rtf {r.timings['cpu_rtf']:.4f}", flush=True)
        if not args.skip_learned and not args.arrangement_only:
            for m in UNITY_MASKS:
                r = engine.fuse(a_path, a_path, mask_type=m, mode="learned")
                rms = float(np.sqrt(np.mean((r.fusion - r.a) ** 2)))
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
        "arrangement": {mode: {m: {"clean": mean([x["clean"] for x in v]),
                                   "share_a": mean([x["share_a"] for x in v if x["share_a"] is not None]),
                                   "present": mean([float(x["present"]) for x in v]),
                                   "clean_min": float(min(x["clean"] for x in v)) if v else None}
                               for m, v in rows["arrangement"][mode].items()} for mode in modes},
        "rtf": {mode: {"mean": mean(rows["rtf"][mode]), "max": max(rows["rtf"][mode], default=None),
                       "cpu_mean": mean(rows["cpu_rtf"][mode]), "cpu_max": max(rows["cpu_rtf"][mode], default=None)}
                for mode in modes},
        "seam_clicks_db": {mode: {m: mean(v) for m, v in rows["seam_clicks_db"][mode].items()} for mode in modes},
        "rtf_by_mask": {mode: {m: {"mean": mean(v), "max": max(v)} for m, v in rows["rtf_by_mask"][mode].items()}
                        for mode in modes},
        "load_average_1min": os.getloadavg()[0],
        "cold": cold, "threads": args.threads, "stem_split": args.stem_split or "vocals", "device": str(engine.device),
    }
    for mode in modes:
        summary["complementarity"][mode]["mean"] = mean(list(summary["complementarity"][mode].values()))
    if not args.skip_learned and not args.arrangement_only:
        summary["unity_rms"] = {m: mean(v) for m, v in rows["unity"].items()}
        summary["unity_rms_relative"] = {m: mean(v) for m, v in rows["unity_rel"].items()}
        summary["model"] = engine._model_meta
    return {"summary": summary, "rows": rows}


def figures(summary: dict) -> dict:
    """Flat figures of one set's summary for the side-by-side table."""
    out = {"pairs": summary["cases"], "codec SI-SDR dB": summary["codec_si_sdr_db"], "codec mrstft": summary["codec_mrstft"]}
    for mode, c in summary["complementarity"].items():
        out[f"{mode} complementarity mean"] = c["mean"]
        out.update({f"{mode} complementarity {m}": v for m, v in c.items() if m != "mean"})
    for mode, a in summary["arrangement"].items():
        for m, v in a.items():
            out[f"{mode} {m} clean"], out[f"{mode} {m} share_a"] = v["clean"], v["share_a"]
            out[f"{mode} {m} both present"] = v["present"]
    for mode, per in summary.get("seam_clicks_db", {}).items():
        out.update({f"{mode} {m} seam clicks dB": v for m, v in per.items()})
    for mode, a in summary["arrangement_mrstft"].items():
        out.update({f"{mode} arrangement mrstft {m}": v for m, v in a.items() if v is not None})
    for m, v in summary.get("unity_rms_relative", {}).items():
        out[f"learned unity RMS / RMS(a) {m}"] = v
    for mode, r in summary["rtf"].items():
        out[f"{mode} rtf mean"], out[f"{mode} rtf max"] = r["mean"], r["max"]
    for mode, per in summary.get("rtf_by_mask", {}).items():
        for m in NO_REGIONS:
            if m in per:
                out[f"{mode} {m} rtf mean"], out[f"{mode} {m} rtf max"] = per[m]["mean"], per[m]["max"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(p)
    p.add_argument("--data", default=None, help="run this one fusion folder instead of --sets")
    p.add_argument("--model", default=None, help="registry name (default: the fusion default)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--threads", type=limits.thread_count, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu or cuda")
    p.add_argument("--json", default=None, help="write all figures here (keyed by set)")
    p.add_argument("--out", default=None, help="write bench.json into this folder")
    p.add_argument("--register", action="store_true", help="store the means in the model's registry entry")
    p.add_argument("--skip_learned", action="store_true")
    p.add_argument("--masks", nargs="+", default=list(ARRANGEMENT_MASKS),
                   help="mask types to run (default: none and every masking type)")
    p.add_argument("--stem_split", choices=("vocals", "rhythm"), default=None,
                   help="the stems mask type's split (default: the engine's, vocals over accompaniment; rhythm: drums + "
                        "bass of one song under the vocals + other of the other, through the four-stem vocal model)")
    p.add_argument("--beats", action="store_true",
                   help="only the beat/downbeat/tempo/key figures against each set's meta.json (both downbeat trackers, "
                        "librosa's tempo as the baseline)")
    p.add_argument("--downbeat_checkpoint", default=None, metavar="PATH",
                   help="measure this downbeat model (an exported fusion-downbeat checkpoint) as the learned "
                        "tracker instead of the registered one")
    p.add_argument("--downbeats", choices=("heuristic", "learned"), default=None,
                   help="fuse with this downbeat tracker (default: the engine's default)")
    p.add_argument("--arrangement_only", action="store_true",
                   help="only the arrangement score, complementarity and RTF (no codec, unity or MR-STFT figures)")
    p.add_argument("--register_from", default=None, metavar="JSON",
                   help="register the summary of an earlier --json run for --model/the checkpoint's name, and exit")
    args = p.parse_args(argv)
    if args.register and (args.limit or args.data):
        p.error("--register needs whole bench sets (no --limit, no --data)")
    if args.register_from:
        old = json.loads(Path(args.register_from).read_text())
        summaries = ({"rendered": old["summary"]} if "summary" in old  # a report from before the two sets
                     else {n: old[n]["summary"] for n in old.get("sets", []) if "summary" in old.get(n, {})})
        first = next(iter(summaries.values()))
        register_scores(args.model or first.get("model", {}).get("name"), summaries)
        return 0

    from engines.audio.limits import set_threads
    from engines.fusion.api import FusionEngine
    from engines.fusion.codec import MDCTCodec

    set_threads(args.threads)
    if args.downbeat_checkpoint:  # the engine's model cache: every learned-tracker call below uses this model
        from engines import registry
        from engines.checkpoint import load_model
        from engines.fusion import downbeat

        registry.use_optional("fusion-beats", load_model(args.downbeat_checkpoint,
                                                         expected=downbeat.MODEL_CLASSES).eval())
    if args.beats:
        out = {}
        for name, data in selected_sets(args, "fusion").items():
            print(f"== {name}: {data}", flush=True)
            out[name] = beat_set(list_cases(data, "a.wav", args.limit))
            print(json.dumps(out[name]["summary"]), flush=True)
        if args.json:
            write_json(args.json, out)
        return 0
    sc = scorer()
    engine = FusionEngine.load(args.checkpoint or args.model, device=args.device)
    print(f"device: {engine.device}", flush=True)
    codec = MDCTCodec()
    per_set = {}
    for name, data in selected_sets(args, "fusion").items():
        print(f"== {name}: {data}", flush=True)
        per_set[name] = {"data": str(data), **run_set(engine, codec, sc, list_cases(data, "a.wav", args.limit), args)}
        print(json.dumps(per_set[name]["summary"]), flush=True)
    model = per_set[next(iter(per_set))]["summary"].get("model", {}).get("name") or args.model or args.checkpoint
    table = side_by_side("fusion", {n: figures(r["summary"]) for n, r in per_set.items()}, {},
                         title=f"fusion ({model or 'direct only'}); no scorer, no baselines: own figures")
    report = results_json("fusion", per_set, table, threads=args.threads, model=model, device=str(engine.device))
    for path in [args.json] if args.json else []:
        write_json(path, report)
    if args.out:
        print(f"results: {write_json(Path(args.out) / 'bench.json', report)}")
    if args.register and not args.skip_learned:
        register_scores(engine._model_meta.get("name") or args.model, {n: r["summary"] for n, r in per_set.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
