#!/usr/bin/env python3
"""Vocal isolation benchmark: quality on the public bench set, speed, peak memory, comparisons.

    python benchmarks/vocals_bench.py [--model NAME | --checkpoint PATH] [--threads 2]
        [--quality] [--speed] [--memory] [--demucs] [--register NAME] [--json out.json]

* quality: separates ``../shared/bench/data/vocals/song_XX/mixture.wav`` into
  ``--pred/song_XX/{vocals,accompaniment}.wav`` and runs the bench's own scorer
  (``score.py vocals``); its mean JSON line is kept (vocals and accompaniment SDR).
* speed: real-time factor (processing time after loading / song length) on the bench songs, and the
  same model run one frame at a time (the original's inference) on one song: the speed-up ratio.
* memory: peak RSS of ``launch.py vocals`` (a fresh process) on a 10-minute stereo 44.1 kHz song.
* demucs: the Demucs v4 HTDemucs architecture with random weights on the same song (speed only),
  when ``demucs`` is importable (``pip install --no-deps --target DIR demucs einops julius`` and
  ``--demucs_path DIR`` work without torchaudio).
* register: writes/updates the registry entry with the measured scores (evaluation only: nothing here
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
BENCH = ROOT.parent / "shared" / "bench"
if not BENCH.is_dir():
    BENCH = Path("/work/shared/bench")


def quality(iso, data: Path, pred: Path, binary: bool) -> dict:
    rtfs = []
    for song in sorted(p for p in data.iterdir() if (p / "mixture.wav").is_file()):
        res = iso.isolate(song / "mixture.wav", binary_mask=binary)
        res.save(pred / song.name, subtype="FLOAT")
        rtfs.append(res.rtf)
    out = subprocess.run([sys.executable, str(BENCH / "score.py"), "vocals", "--data", str(data), "--pred", str(pred)],
                         capture_output=True, text=True, check=True).stdout
    print(out)
    means = json.loads([line for line in out.splitlines() if line.strip().startswith("{")][-1])
    return {"means": means, "rtf_mean": sum(rtfs) / len(rtfs), "rtf_max": max(rtfs)}


def speed(iso, song: Path) -> dict:
    from engines.audio import io as audio_io

    audio, sr = audio_io.load(song)
    iso.separate(audio, sr)  # warm-up
    runs = [iso.separate(audio, sr).elapsed_s for _ in range(3)]
    t = min(runs)
    t0 = time.perf_counter()
    iso.separate(audio, sr, frame_by_frame=True)
    t_fbf = time.perf_counter() - t0
    dur = audio.shape[1] / sr
    return {"song": song.parent.name, "seconds": dur, "batched_s": round(t, 3), "rtf": round(t / dur, 4),
            "frame_by_frame_s": round(t_fbf, 2), "frame_by_frame_rtf": round(t_fbf / dur, 3),
            "speedup_vs_frame_by_frame": round(t_fbf / t, 1)}


def memory(model_args: list[str], song: Path, threads: int, minutes: float = 10.0) -> dict:
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
        code = ("import resource, runpy, sys, time; sys.argv = sys.argv[1:]; t = time.time(); rc = 0\n"
                "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code\n"
                "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'WALL', time.time() - t, 'RC', rc)")
        cmd = [sys.executable, "-c", code, str(ROOT / "launch.py"), "vocals", "-i", str(path), "-o", str(Path(d) / "out"),
               "--threads", str(threads), "--quiet", *model_args]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        line = [x for x in r.stdout.splitlines() if x.startswith("PEAK_KB")]
        if not line:
            raise RuntimeError(r.stderr[-2000:])
        parts = line[-1].split()
        return {"minutes": minutes, "channels": 2, "sample_rate": sr, "peak_rss_mb": round(int(parts[1]) / 1024, 1),
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None)
    g.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=str(BENCH / "data" / "vocals"))
    p.add_argument("--pred", default="/tmp/vocals_bench_pred")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--binary_mask", action="store_true")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--demucs", action="store_true")
    p.add_argument("--demucs_path", default=None, help="folder holding the demucs package (pip --target)")
    p.add_argument("--register", default=None, metavar="NAME", help="register the checkpoint under NAME with the scores")
    p.add_argument("--description", default="")
    p.add_argument("--json", default=None)
    p.add_argument("--from_json", nargs="+", default=None,
                   help="register from earlier --json reports of this script instead of measuring again")
    args = p.parse_args(argv)
    if args.from_json:
        args.quality = args.speed = args.memory = args.demucs = False
    elif not (args.quality or args.speed or args.memory or args.demucs):
        args.quality = args.speed = args.memory = True
    import torch

    torch.set_num_threads(args.threads)
    from engines.vocals.api import VocalIsolator

    iso = VocalIsolator(args.checkpoint or args.model)
    data = Path(args.data)
    song = sorted(data.glob("song_*/mixture.wav"))[0]
    report: dict = {"model": iso.model_name, "threads": args.threads, "binary_mask": args.binary_mask,
                    "cpu": os.cpu_count(), "load_avg": os.getloadavg()}
    for f in args.from_json or []:
        report.update({k: v for k, v in json.loads(Path(f).read_text()).items()
                       if k in ("quality", "speed", "memory", "demucs", "threads", "load_avg")})
    if args.quality:
        report["quality"] = quality(iso, data, Path(args.pred), args.binary_mask)
    if args.speed:
        report["speed"] = speed(iso, song)
    if args.memory:
        model_args = ["--checkpoint", args.checkpoint] if args.checkpoint else (["--model", args.model] if args.model else [])
        report["memory"] = memory(model_args, song, args.threads)
    if args.demucs:
        report["demucs"] = demucs_speed(song, args.demucs_path)
        if report["demucs"].get("available") and "speed" in report:
            report["demucs"]["ratio_vs_ours"] = round(report["demucs"]["time_s"] / report["speed"]["batched_s"], 1)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.register:
        from engines import checkpoint, registry

        src = Path(args.checkpoint) if args.checkpoint else iso.path
        dst = registry.MODELS_DIR / f"{args.register}.safetensors"
        if src.resolve() != dst.resolve():
            dst.write_bytes(src.read_bytes())
        header = checkpoint.read_header(dst)
        meta = header["metadata"]
        q = report.get("quality", {}).get("means", {})
        scores = {k: round(v, 2) for k, v in q.items() if isinstance(v, (int, float)) and k != "n_missing"}
        if "speed" in report:
            scores.update({"rtf": report["speed"]["rtf"], "speedup_vs_frame_by_frame": report["speed"]["speedup_vs_frame_by_frame"]})
        if "memory" in report:
            scores["peak_rss_mb_10min_stereo"] = report["memory"]["peak_rss_mb"]
        if report.get("demucs", {}).get("available"):
            scores["htdemucs_random_rtf"] = report["demucs"]["rtf"]
        entry = {"name": args.register, "kind": "vocals", "file": dst.name, "sample_rate": 22050, "default": True,
                 "description": args.description or "vocal mask CNN (25-frame context, soft mask)",
                 "trained_on": meta.get("trained_on", ""), "config": header["kwargs"].get("hparams", {}),
                 "scores": scores, "scored_on": "shared/bench/data/vocals (8 songs, score.py vocals)",
                 "threads": report["threads"], "load_avg_at_measurement": report.get("load_avg")}
        print("registered", registry.register(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
