#!/usr/bin/env python3
"""Vocal isolation benchmark: quality on both public bench sets, speed, peak memory, comparisons.

    python benchmarks/vocals_bench.py [--model NAME | --checkpoint PATH] [--threads 2] [--sets rendered real]
        [--device auto|cpu|cuda] [--quality] [--speed] [--memory] [--demucs] [--limit N] [--register NAME]
        [--json out.json]

* quality: on each set (``rendered``: ``../shared/bench/data/vocals``, ``real``:
  ``../shared/bench/data_real/vocals``), separates ``song_XX/mixture.wav`` into
  ``--pred/<set>/song_XX/{vocals,accompaniment}.wav`` and runs the bench's own scorer
  (``score.py vocals``); its mean JSON line is kept (vocals and accompaniment SDR). Both sets are
  printed side by side with each set's mixture / IRM baselines (``benchmarks/common.py``).
* speed: real-time factor (processing time after loading / song length) on the bench songs, and the
  same model run one frame at a time (the original's inference) on the first song of each set: the
  speed-up ratio.
* memory: peak RSS of ``launch.py vocals`` (a fresh process) on a 10-minute stereo 44.1 kHz song.
* long (``--long``): the real-time factor on a 3-minute stereo 44.1 kHz song (the first bench song tiled and
  made stereo with a delayed second channel; best of two warm runs): the issue's speed target.
* four stems (``--four_stems CORPUS [CORPUS ...]``): the songs of the corpora's ``dev`` split (held out of
  training, they have vocals/drums/bass/other stems): SDR of every stem per song, next to the ideal ratio mask
  of each stem (``|S_i| / sum_j |S_j|`` on the 2048/512 STFT), averaged over all and separately over the songs
  with a real recorded bed (the real dev split) and the rendered ones. A two-stem model gives vocals and
  accompaniment.
* demucs: the Demucs v4 HTDemucs architecture with random weights on the same song (speed only),
  when ``demucs`` is importable (``pip install --no-deps --target DIR demucs einops julius`` and
  ``--demucs_path DIR`` work without torchaudio).
* register: writes/updates the registry entry with the measured scores, per set in
  ``scores["bench"][set]`` (the flat keys stay the rendered set's; evaluation only: nothing here
  trains or tunes on the bench).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import (add_set_arguments, device, list_cases, load_baselines,  # noqa: E402
                               registry_set_scores, results_json, score, selected_sets, set_label, side_by_side,
                               write_json)


def quality(iso, data: Path, pred: Path, binary: bool, limit: int | None = None) -> dict:
    from engines.vocals import Config

    rtfs = []
    cfg = iso.config_of(Config(binary_mask=binary))
    for song in list_cases(data, "mixture.wav", limit):
        res = iso.run(song / "mixture.wav", cfg)
        res.save(pred / song.name, subtype="FLOAT")
        rtfs.append(res.rtf)
    means = score("vocals", data, pred, allow_missing=bool(limit), table=True)
    print(json.dumps(means), flush=True)
    return {"means": means, "rtf_mean": sum(rtfs) / len(rtfs), "rtf_max": max(rtfs), "n_cases": len(rtfs)}


def speed(iso, song: Path) -> dict:
    from engines.audio import io as audio_io

    audio, sr = audio_io.load(song)
    iso.separate(audio, sr)  # warm-up
    runs = [iso.separate(audio, sr).elapsed_s for _ in range(3)]
    t = min(runs)
    dur = audio.shape[1] / sr
    out = {"song": song.parent.name, "seconds": dur, "batched_s": round(t, 3), "rtf": round(t / dur, 4)}
    if getattr(iso, "arch", "cnn") != "cnn":  # frame-by-frame inference is the CNN's original only
        return {**out, "speedup_vs_frame_by_frame": None}
    t0 = time.perf_counter()
    iso.separate(audio, sr, frame_by_frame=True)
    t_fbf = time.perf_counter() - t0
    return {**out, "frame_by_frame_s": round(t_fbf, 2), "frame_by_frame_rtf": round(t_fbf / dur, 3),
            "speedup_vs_frame_by_frame": round(t_fbf / t, 1)}


def speed_long(iso, song: Path, seconds: float = 180.0) -> dict:
    """RTF on a ``seconds``-long stereo 44.1 kHz song (best of two warm runs, default settings)."""
    import numpy as np

    from engines.audio import io as audio_io

    audio, sr = audio_io.load(song, 44100, mono=True)
    n = int(seconds * sr)
    x = np.tile(audio[0], int(np.ceil(n / audio.shape[1])))[:n]
    stereo = np.stack([x, np.roll(x, 441) * 0.8]).astype(np.float32)
    iso.separate(stereo[:, : 10 * sr], sr)  # warm-up
    runs = [iso.separate(stereo, sr).elapsed_s for _ in range(2)]
    return {"seconds": seconds, "channels": 2, "sample_rate": sr, "time_s": round(min(runs), 2),
            "rtf": round(min(runs) / seconds, 4), "runs_s": [round(r, 2) for r in runs]}


def _means(per_song: list[dict], keys: list[str]) -> dict:
    import numpy as np

    mean = {k: round(float(np.mean(v)), 2) for k in keys if (v := [p[k] for p in per_song if p[k] is not None])}
    mean.update({f"n_{k}": sum(p[k] is not None for p in per_song) for k in keys if not k.endswith("_irm")})
    return mean


def four_stems(iso, corpora: list[Path], limit: int | None = None) -> dict:
    """Per-stem SDR of the model and of each stem's ideal ratio mask on the dev-split songs of ``corpora``
    (held out of training), with the means over all of them and over each make-up: ``real`` (a real recorded
    bed under the voice, the corpus's ``accompaniment: real-bed``) and ``rendered``."""
    import numpy as np
    import torch

    from engines.audio import io as audio_io
    from engines.audio import spectral
    from engines.audio.metrics import sdr
    from engines.vocals import Config
    from trainers.data import kind_folder, read
    from trainers.vocals_bs import audible

    names = ("vocals", "drums", "bass", "other")
    n_stems = 4 if iso.max_stems >= 4 else 2
    rows = []
    for corpus in corpora:
        base = kind_folder(corpus, "songs")
        rows += [(base, r) for r in read(corpus, "songs", split="dev") if all(r.files(base)[n].is_file() for n in names)]
    rows = rows[:limit] if limit else rows
    per_song = []
    for base, r in rows:
        f = r.files(base)
        stems = [audio_io.load(f[n], mono=True) for n in names]
        sr = stems[0][1]
        T = min(a.shape[1] for a, _ in stems)
        S = np.stack([a[0, :T] for a, _ in stems])
        mix = S.sum(0)
        res = iso.run((mix[None], sr), Config(stems=n_stems))
        refs = dict(zip(names, S)) if n_stems == 4 else {"vocals": S[0], "accompaniment": S[1:].sum(0)}
        spec = spectral.stft(torch.from_numpy(np.concatenate([S, mix[None]])), 2048, 512)
        mags = spec[:-1].abs()
        ratio = mags / mags.sum(0, keepdim=True).clamp_min(1e-10)
        irm = spectral.istft(ratio * spec[-1:], 2048, 512, length=T).numpy()
        irm_est = dict(zip(names, irm)) if n_stems == 4 else {"vocals": irm[0], "accompaniment": mix - irm[0]}
        real = (r.info or {}).get("accompaniment") == "real-bed"
        row = {"song": f"{corpus_name(base).name}/{r.id}", "bed": "real" if real else "rendered"}
        for n, ref in refs.items():  # a stem absent from the song (under -30 dB of the mixture) has no SDR
            ok = audible(ref, mix)
            row[n] = round(sdr(ref, res.audio[n][0]), 2) if ok else None
            row[f"{n}_irm"] = round(sdr(ref, irm_est[n]), 2) if ok else None
        per_song.append(row)
    keys = [k for k in per_song[0] if k not in ("song", "bed")] if per_song else []
    mean = _means(per_song, keys)
    by_bed = {bed: _means(sub, keys) for bed in ("real", "rendered") if (sub := [p for p in per_song if p["bed"] == bed])}
    print(f"four stems on {len(per_song)} dev songs of {', '.join(map(str, corpora))} "
          "(model vs ideal ratio mask, SDR dB; '-': stem absent)")
    for p in per_song + [{"song": "mean", "bed": "all", **mean}] + [{"song": "mean", "bed": b, **m} for b, m in by_bed.items()]:
        print("  " + p["song"].ljust(22) + p["bed"].ljust(9) + "  ".join(
            f"{k} " + ("     -" if p.get(k) is None else f"{p[k]:6.2f}") for k in keys))
    return {"corpus": ", ".join(map(str, corpora)), "split": "dev", "stems": n_stems, "n_songs": len(per_song),
            "mean": mean, "by_bed": by_bed, "per_song": per_song}


def corpus_name(songs_folder: Path) -> Path:
    """The corpus root of a ``songs`` folder (for the song labels)."""
    return songs_folder.parent if songs_folder.name == "songs" else songs_folder


def memory(model_args: list[str], song: Path, threads: int, minutes: float = 10.0, device: str = "auto") -> dict:
    import numpy as np
    import soundfile as sf

    from engines.audio import io as audio_io

    audio, sr = audio_io.load(song, 44100, channels=2)
    reps = int(np.ceil(minutes * 60 * sr / audio.shape[1]))
    long = np.tile(audio, (1, reps))[:, : int(minutes * 60 * sr)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.wav"
        sf.write(path, long.T, sr, subtype="PCM_16")
        del long, audio
        # the child's own peak (benchmarks.common.peak_rss_mb: VmHWM, not ru_maxrss, which would be this process's)
        code = ("import runpy, sys, time; from benchmarks.common import peak_rss_mb; sys.argv = sys.argv[1:]\n"
                "t = time.time(); rc = 0\n"
                "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code\n"
                "print('PEAK_MB', peak_rss_mb(), 'WALL', time.time() - t, 'RC', rc)")
        cmd = [sys.executable, "-c", code, str(ROOT / "launch.py"), "vocals", "-i", str(path), "-o", str(Path(d) / "out"),
               "--threads", str(threads), "--device", device, "--quiet", *model_args]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        line = [x for x in r.stdout.splitlines() if x.startswith("PEAK_MB")]
        if not line:
            raise RuntimeError(r.stderr[-2000:])
        parts = line[-1].split()
        return {"minutes": minutes, "channels": 2, "sample_rate": sr, "peak_rss_mb": float(parts[1]),
                "wall_s": round(float(parts[3]), 1), "rc": int(parts[5])}


def demucs_speed(song: Path, path: str | None) -> dict:
    if path:
        sys.path.insert(0, path)
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs
    except ImportError as err:
        return {"available": False, "reason": str(err)}
    import torch

    from engines.audio import io as audio_io

    audio, sr = audio_io.load(song, 44100, channels=2)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()
    x = torch.from_numpy(audio)[None]
    with torch.inference_mode():
        t0 = time.perf_counter()
        apply_model(model, x, split=True, overlap=0.25, progress=False)
        t = time.perf_counter() - t0
    dur = audio.shape[1] / sr
    return {"available": True, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "seconds": dur, "time_s": round(t, 2), "rtf": round(t / dur, 3), "weights": "random (speed only)"}


def figures(rep: dict) -> dict:
    """Flat figures of one set's report for the side-by-side table."""
    out: dict = {}
    q = rep.get("quality")
    if q:
        m = q["means"]
        out.update({"songs": q["n_cases"], **{k: round(m[k], 2) for k in ("si_sdr", "si_sdri", "sdr", "sdri", "acc_si_sdr", "acc_sdr")
                                            if isinstance(m.get(k), (int, float))},
                    "rtf mean (bench songs)": round(q["rtf_mean"], 4), "rtf max": round(q["rtf_max"], 4)})
    sp = rep.get("speed")
    if sp:
        out["rtf (best of 3, first song)"] = sp["rtf"]
        if sp.get("speedup_vs_frame_by_frame") is not None:
            out["speed-up vs frame by frame x"] = sp["speedup_vs_frame_by_frame"]
    if rep.get("demucs", {}).get("available"):
        out["HTDemucs (random) rtf"] = rep["demucs"]["rtf"]
        if "ratio_vs_ours" in rep["demucs"]:
            out["HTDemucs / ours time x"] = rep["demucs"]["ratio_vs_ours"]
    return out


def main(argv=None) -> int:
    from engines.audio.limits import thread_count

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None)
    g.add_argument("--checkpoint", default=None)
    add_set_arguments(p)
    p.add_argument("--data", default=None, help="run this one vocals folder instead of --sets")
    p.add_argument("--pred", default="/tmp/vocals_bench_pred", help="predictions go to PRED/<set>/<song>/")
    p.add_argument("--out", default=None, help="write bench.json here (folder); default: PRED")
    p.add_argument("--threads", type=thread_count, default=2)
    p.add_argument("--binary_mask", action="store_true")
    from engines import device as devices

    devices.add_argument(p)
    p.add_argument("--quality", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--demucs", action="store_true")
    p.add_argument("--demucs_path", default=None, help="folder holding the demucs package (pip --target)")
    p.add_argument("--long", action="store_true", help="RTF on a 3-minute stereo 44.1 kHz song")
    p.add_argument("--four_stems", default=None, nargs="+", metavar="CORPUS",
                   help="per-stem SDR (and each stem's ideal ratio mask) on these corpora's dev-split songs, "
                        "with the means over the real-bed and the rendered ones")
    p.add_argument("--register", default=None, metavar="NAME", help="register the checkpoint under NAME with the scores")
    p.add_argument("--description", default="")
    p.add_argument("--not_default", action="store_true", help="register without making it the default model")
    p.add_argument("--json", default=None)
    p.add_argument("--from_json", nargs="+", default=None,
                   help="register from earlier --json reports of this script instead of measuring again")
    args = p.parse_args(argv)
    if args.register and (args.limit or args.data):
        p.error("--register needs whole bench sets (no --limit, no --data)")
    if args.from_json:
        args.quality = args.speed = args.memory = args.demucs = False
    elif not (args.quality or args.speed or args.memory or args.demucs or args.long or args.four_stems):
        args.quality = args.speed = args.memory = True
    from engines.audio.limits import set_threads
    from engines.vocals import Engine

    set_threads(args.threads)

    iso = Engine.load(args.checkpoint or args.model, device=args.device)
    sets = selected_sets(args, "vocals")
    pred_root = Path(args.pred)
    report: dict = {"model": iso.model_name, "threads": args.threads, "binary_mask": args.binary_mask,
                    "device": str(iso.device), "cuda_available": device() == "cuda", "cpu": os.cpu_count(), "load_avg": os.getloadavg(), "sets": list(sets)}
    per_set: dict[str, dict] = {}
    for f in args.from_json or []:
        old = json.loads(Path(f).read_text())
        if any(isinstance(old.get(n), dict) for n in sets):  # a report of this script, keyed by set
            for n in sets:
                per_set.setdefault(n, {}).update(old.get(n, {}))
            report.update({k: old[k] for k in ("memory", "threads", "load_avg", "long", "four_stems") if k in old})
        else:  # an older single-set report (the rendered set)
            per_set.setdefault("rendered", {}).update({k: v for k, v in old.items() if k in ("quality", "speed", "demucs")})
            report.update({k: v for k, v in old.items() if k in ("memory", "threads", "load_avg")})
    for name, data in sets.items():
        rep = per_set.setdefault(name, {"data": str(data)})
        if rep.get("quality") and not rep.get("baselines"):  # an older --from_json report
            rep["baselines"] = load_baselines(data, "vocals")
        song = list_cases(data, "mixture.wav", 1)[0] / "mixture.wav"
        if args.quality:
            print(f"== {name}: {data}", flush=True)
            rep["quality"] = quality(iso, data, pred_root / name, args.binary_mask, args.limit)
            rep["baselines"] = load_baselines(data, "vocals", [c.name for c in list_cases(data, "mixture.wav", args.limit)]
                                              if args.limit else None)
        if args.speed:
            rep["speed"] = speed(iso, song)
        if args.demucs:
            rep["demucs"] = demucs_speed(song, args.demucs_path)
            if rep["demucs"].get("available") and "speed" in rep:
                rep["demucs"]["ratio_vs_ours"] = round(rep["demucs"]["time_s"] / rep["speed"]["batched_s"], 1)
    if args.long:
        report["long"] = speed_long(iso, list_cases(next(iter(sets.values())), "mixture.wav", 1)[0] / "mixture.wav")
        print(json.dumps({"long": report["long"]}), flush=True)
    if args.four_stems:
        report["four_stems"] = four_stems(iso, [Path(c) for c in args.four_stems], args.limit)
    if args.memory:  # a 10-minute song tiled from the first song of the first set: one figure for the model
        model_args = ["--checkpoint", args.checkpoint] if args.checkpoint else (["--model", args.model] if args.model else [])
        first = list_cases(next(iter(sets.values())), "mixture.wav", 1)[0] / "mixture.wav"
        report["memory"] = memory(model_args, first, args.threads, device=args.device)
    per_set = {n: per_set[n] for n in sets if n in per_set}
    notes = {}
    if "long" in report:
        notes["RTF, 3-min stereo 44.1 kHz"] = f"{report['long']['rtf']} ({report['long']['time_s']} s)"
    if "four_stems" in report:
        notes["four stems (corpus dev songs)"] = ", ".join(f"{k} {v}" for k, v in report["four_stems"]["mean"].items())
    if "memory" in report:
        notes["memory (both sets)"] = (f"peak RSS {report['memory']['peak_rss_mb']} MB for a {report['memory']['minutes']:g}-min "
                                       f"stereo song through launch.py vocals (wall {report['memory']['wall_s']} s)")
    table = side_by_side("vocals", {n: figures(r) for n, r in per_set.items()},
                         {n: per_set[n].get("baselines") or load_baselines(sets[n], "vocals") for n in per_set},
                         title=f"vocal isolation ({iso.model_name}), dB", notes=notes)
    report = results_json("vocals", per_set, table, **{k: v for k, v in report.items() if k != "sets"})
    print(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=1, default=float))
    for path in [args.json] if args.json else []:
        write_json(path, report)
    bench_json = write_json(Path(args.out or pred_root) / "bench.json", report)
    print(f"results: {bench_json}")
    if args.register:
        from engines import checkpoint, registry

        if iso.members:  # an ensemble entry: no file of its own; its members stay as registered
            dst, header = None, {"kwargs": {}}
            meta = {"trained_on": "; ".join(f"{m.model_name}: {registry.get(m.model_name).get('trained_on', '')}"
                                            for m, _ in iso.members)}
        else:
            src = Path(args.checkpoint) if args.checkpoint else iso.path
            dst = registry.MODELS_DIR / f"{args.register}.safetensors"
            if src.resolve() != dst.resolve():
                dst.write_bytes(src.read_bytes())
            header = checkpoint.read_header(dst)
            meta = header["metadata"]
        try:
            scores = dict(registry.get(args.register).get("scores", {}))
        except Exception:  # a new entry
            scores = {}
        for name, rep in per_set.items():
            q = rep.get("quality", {}).get("means", {})
            figs = {k: round(v, 2) for k, v in q.items() if isinstance(v, (int, float)) and k != "n_missing"}
            b = (rep.get("baselines") or {}).get("mean", {})
            if b.get("irm_mag", {}).get("si_sdri") and "si_sdri" in figs:
                figs["share_of_irm_mag_si_sdri"] = round(figs["si_sdri"] / b["irm_mag"]["si_sdri"], 3)
                figs["irm_mag_si_sdri"] = round(b["irm_mag"]["si_sdri"], 2)
                figs["mixture_si_sdr"] = round(b["mixture"]["si_sdr"], 2)
            if "speed" in rep:
                figs["rtf"] = rep["speed"]["rtf"]
                if rep["speed"].get("speedup_vs_frame_by_frame") is not None:
                    figs["speedup_vs_frame_by_frame"] = rep["speed"]["speedup_vs_frame_by_frame"]
            if rep.get("demucs", {}).get("available"):
                figs["htdemucs_random_rtf"] = rep["demucs"]["rtf"]
            n = rep.get("quality", {}).get("n_cases")
            scores = registry_set_scores(scores, name, {"set": f"{set_label(name)}/vocals ({n} songs, score.py vocals)",
                                                        **figs})
            if name == "rendered":  # the old flat keys stay the rendered set's figures
                scores.update({k: v for k, v in figs.items() if not k.startswith(("share_", "irm_", "mixture_"))})
        if "memory" in report:
            scores["peak_rss_mb_10min_stereo"] = report["memory"]["peak_rss_mb"]
        if "long" in report:
            scores["rtf_3min_stereo"] = report["long"]["rtf"]
        if "four_stems" in report:
            scores["four_stems_dev"] = {k: report["four_stems"][k] for k in ("corpus", "n_songs", "mean", "by_bed")
                                        if k in report["four_stems"]}
        where = {"members": [{"name": m.model_name, "weight": round(w, 4)} for m, w in iso.members],
                 "combine": iso.combine} if iso.members else {"file": dst.name}
        entry = {"name": args.register, "kind": "vocals", **where, "sample_rate": iso.hp.sample_rate,
                 "default": not args.not_default, "stems": iso.max_stems,
                 "description": args.description or "vocal mask CNN (25-frame context, soft mask)",
                 "trained_on": meta.get("trained_on", ""), "config": header["kwargs"].get("hparams", {}),
                 "scores": scores, "scored_on": "shared/bench/data/vocals (8 songs) and shared/bench/data_real/vocals "
                                                "(6 songs), score.py vocals; per set in scores.bench",
                 "threads": report["threads"], "load_avg_at_measurement": report.get("load_avg")}
        print("registered", registry.register(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
