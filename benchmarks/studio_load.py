#!/usr/bin/env python3
"""Load test of the studio: N concurrent separation requests on loopback.

Starts ``python launch.py`` on a free 127.0.0.1 port, sends ``--requests`` (20) /separate calls at
once through ``gradio_client`` (one client = one session each), each with its own generated
mixture (a different tone over noise), and checks that every reply is correct and isolated: the
target and residual have the request's own mixture's shape and add up to *that* mixture, every
request's files are distinct and lie in its own session folder. Reports the wall time, latency
percentiles and the peak resident memory of the server process tree (sampled from /proc).

    python benchmarks/studio_load.py                 # the registered default query model
    python benchmarks/studio_load.py --tiny          # a tiny random model (plumbing only)
    python benchmarks/studio_load.py --requests 20 --seconds 10 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(parts[1]), int(parts[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_inputs(d: Path, n: int, seconds: float, sr: int = 16000) -> list[dict]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f = 300 + 40 * i
        on = (t > seconds * 0.3) & (t < seconds * 0.7)
        tgt = 0.3 * np.sin(2 * np.pi * f * t) * on
        mix = (tgt + 0.05 * rng.standard_normal(len(t)) + 0.15 * np.sin(2 * np.pi * 97 * t)).astype(np.float32)
        q = (0.3 * np.sin(2 * np.pi * f * np.arange(sr) / sr)).astype(np.float32)
        m, qp = d / f"mix_{i:02d}.wav", d / f"query_{i:02d}.wav"
        sf.write(m, mix, sr, subtype="FLOAT")
        sf.write(qp, q, sr, subtype="FLOAT")
        out.append({"mix": m, "query": qp, "audio": mix})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each generated mixture")
    p.add_argument("--tiny", action="store_true", help="use a tiny random query model (tests the plumbing only)")
    p.add_argument("--models", default=None, help="registry folder to serve (AUDIO_STUDIO_MODELS); default assets/models")
    p.add_argument("--concurrency", type=int, default=None, help="AUDIO_STUDIO_CONCURRENCY of the server")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)

    from gradio_client import Client, handle_file

    from studio.tabs import separate as tab
    from tests.studio.conftest import start_studio, stop_process

    tmp = Path(tempfile.mkdtemp(prefix="studio-load-"))
    env = {"AUDIO_STUDIO_MAX_SECONDS": "900"}
    if args.concurrency:
        env["AUDIO_STUDIO_CONCURRENCY"] = str(args.concurrency)
    model_note = "registered default query model"
    if args.models:
        env["AUDIO_STUDIO_MODELS"] = str(Path(args.models).resolve())
        model_note = f"default query model of {args.models}"
    if args.tiny:
        from tests.studio.tiny_models import make_models_dir

        make_models_dir(tmp / "models")
        env["AUDIO_STUDIO_MODELS"] = str(tmp / "models")
        model_note = "tiny random (plumbing only)"
    inputs = make_inputs(tmp / "in", args.requests, args.seconds)
    t_start = time.time()
    proc, url, log = start_studio(tmp, env)
    startup = time.time() - t_start
    peak = [tree_rss_mb(proc.pid)]
    idle_rss = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    vals = {**tab.preset_values("balanced"), "threads": 1}
    params = [vals[n] for n, *_ in tab.PARAMS] + [False, False]  # + save_visualizations, save_trimmed_query

    def one(i: int) -> dict:
        c = Client(url, verbose=False)
        t0 = time.time()
        res = c.predict(handle_file(str(inputs[i]["mix"])), handle_file(str(inputs[i]["query"])), None, None, None,
                        False, 0.5, *params, api_name="/separate")
        return {"i": i, "latency": time.time() - t0, "target": res[0], "residual": res[1], "files": res[7]}

    errors: list[str] = []
    results: list[dict] = []
    try:
        # warm-up (model load) is not part of the timed burst
        w = one(0)
        t0 = time.time()
        with ThreadPoolExecutor(args.requests) as ex:
            futs = [ex.submit(one, i) for i in range(args.requests)]
            for f in futs:
                try:
                    results.append(f.result())
                except Exception as err:  # noqa: BLE001 - reported
                    errors.append(f"{type(err).__name__}: {err}")
        wall = time.time() - t0
    finally:
        stop.set()
        sampler.join()
        stop_process(proc)

    bad = []
    for r in results:
        t, _ = sf.read(r["target"], dtype="float32")
        q, _ = sf.read(r["residual"], dtype="float32")
        mix = inputs[r["i"]]["audio"]
        if t.shape != mix.shape or not np.allclose(t + q, mix, atol=1e-5):
            bad.append(r["i"])
    events = [next(f for f in r["files"] if f.endswith("event.json")) for r in results]
    sessions = {Path(p).name for p in (tmp / "outputs").iterdir() if p.is_dir()}
    lat = np.array([r["latency"] for r in results]) if results else np.array([np.nan])
    report = {
        "requests": args.requests, "completed": len(results), "errors": errors, "incorrect": bad,
        "distinct_outputs": len(set(events)) == len(events), "session_folders_left": len(sessions),  # the rest were deleted when their session ended
        "mixture_seconds": args.seconds, "model": model_note, "server_concurrency": args.concurrency or 2,
        "wall_s": round(wall, 2), "latency_p50_s": round(float(np.median(lat)), 2),
        "latency_max_s": round(float(lat.max()), 2), "throughput_audio_s_per_s": round(args.requests * args.seconds / wall, 2),
        "startup_s": round(startup, 1), "warmup_latency_s": round(w["latency"], 2),
        "rss_idle_mb": round(idle_rss), "rss_peak_mb": round(peak[0]), "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = not errors and not bad and len(results) == args.requests and report["distinct_outputs"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
