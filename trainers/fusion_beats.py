#!/usr/bin/env python3
"""Train the fusion engine's downbeat tracker (:class:`engines.fusion.downbeat.DownbeatNet`) on a rendered corpus
``fusion`` kind, whose ``meta.json`` knows every beat and downbeat it rendered.

``python trainers/fusion_beats.py --dataset_folder /work/corpus_r3f --out_dir RUN [--export PATH --name NAME]``

* Songs: ``a`` and ``b`` of every pair; a real bed (``estimated: true`` in the manifest: its beats are a
  tracker's estimate, not the truth) is left out of the targets. Dev rows (``split == "dev"``) validate only.
* Each song gives two beat sequences: the true beats (jittered by a few ms) and the beats
  :func:`engines.fusion.align.track_beats` finds (what the engine feeds the model; a beat is a downbeat when a
  true downbeat lies within 70 ms). Training crops ``--crop_beats`` consecutive beats.
* Loss: binary cross-entropy per beat (downbeats weighted by ``--pos_weight``); validation: the share of dev
  songs whose decoded bar grid (meter and phase, :func:`engines.fusion.downbeat.decode`) puts >= 90 % of the
  true downbeats and >= 90 % of its own within 70 ms (``val_grid``), against the heuristic's (``val_grid_heuristic``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HELP = "the fusion engine's downbeat tracker"
TOL = 0.07


def add_arguments(p: argparse.ArgumentParser) -> None:
    from trainers.solver import add_solver_arguments

    p.add_argument("--dataset_folder", required=True, nargs="+", help="corpus roots (or their fusion folders)")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout on the features and the hidden layer")
    p.add_argument("--weight_decay", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--kernel", type=int, default=5)
    p.add_argument("--bar_features", action="store_true",
                   help="also the four bar-scale features (engines.fusion.downbeat.N_FEATURES_BAR)")
    p.add_argument("--crop_beats", type=int, default=24)
    p.add_argument("--pos_weight", type=float, default=2.0)
    p.add_argument("--max_seconds", type=float, default=30.0, help="first seconds of each song")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--frames", action="store_true",
                   help="train the frame-level network (engines.fusion.frame_beats.FrameBeatNet) instead of the per-beat one")
    p.add_argument("--channels", type=int, default=32, help="--frames: channels of the network")
    p.add_argument("--chroma", action="store_true", help="--frames: 12 chroma features per frame more")
    p.add_argument("--levels", type=int, default=9, help="--frames: dilated blocks (receptive field ~2**levels frames)")
    p.add_argument("--crop_frames", type=int, default=1024, help="--frames: training crop (frames at 46.9/s)")
    p.add_argument("--stretch", type=float, default=0.15,
                   help="--frames: time-stretch the features by a factor within 1 +- this (half of the crops)")
    p.add_argument("--export", default=None, help="write the inference checkpoint here")
    p.add_argument("--name", default="fusion-downbeat")
    add_solver_arguments(p, epochs=40, batch_size=32, ckpt_every=500)


def _songs(folder: str, max_seconds: float):
    """``[(split, id, y, sr, beats, downbeats)]`` of every song with rendered (true) beats."""
    from engines.audio import io
    from trainers import data

    out = []
    for row, name, m, wav in data.rendered_fusion_sides(folder):
        if not m.get("downbeats") or not m.get("beats"):
            continue
        y, sr = io.load(str(wav), sr=24000, mono=True, max_seconds=None)
        y = y[0][:int(max_seconds * sr)]
        dur = len(y) / sr
        beats = [t for t in m["beats"] if t < dur]
        downs = [t for t in m["downbeats"] if t < dur]
        out.append((row.split, f"{row.id}/{name}", y, sr, np.asarray(beats), np.asarray(downs)))
    return out


def _labels(beats: np.ndarray, downs: np.ndarray) -> np.ndarray:
    if not len(downs):
        return np.zeros(len(beats), dtype=np.float32)
    d = np.min(np.abs(beats[:, None] - downs[None, :]), axis=1)
    return (d <= TOL).astype(np.float32)


def grid_right(est: np.ndarray, true: np.ndarray, tol: float = TOL) -> bool:
    """The bench's bar-grid test: >= 90 % of the true downbeats and of the estimated ones matched within ``tol``."""
    if not len(est) or not len(true):
        return False
    rec = np.mean([np.min(np.abs(est - t)) <= tol for t in true])
    prec = np.mean([np.min(np.abs(true - t)) <= tol for t in est])
    return bool(rec >= 0.9 and prec >= 0.9)


def _frame_targets(times: np.ndarray, n: int, fps: float) -> np.ndarray:
    """``(n,)`` 1 on the frames of ``times`` (s), 0.5 on their neighbours (target widening), else 0."""
    t = np.zeros(n, dtype=np.float32)
    fr = np.round(np.asarray(times) * fps).astype(int)
    for d, v in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        f = fr + d
        f = f[(f >= 0) & (f < n)]
        t[f] = np.maximum(t[f], v)
    return t


def run_frames(args, songs) -> int:
    """``--frames``: train :class:`engines.fusion.frame_beats.FrameBeatNet` on crops of the songs' frame features,
    targets the true beats and downbeats (widened by a frame); validation as for the per-beat model."""
    import torch
    from torch.utils.data import Dataset

    from engines.fusion import align
    from engines.fusion.frame_beats import FPS, N_FEATURES, N_FEATURES_CHROMA, FrameBeatNet, frame_features
    from trainers.solver import Solver, config_from_args

    train, dev = [], []
    for split, sid, y, sr, beats, downs in songs:
        x = frame_features(y, sr, chroma=args.chroma)
        n = x.shape[1]
        item = {"id": sid, "x": x, "beat": _frame_targets(beats, n, FPS), "down": _frame_targets(downs, n, FPS),
                "downs": downs}
        if split == "dev":
            dev.append(item)
        else:
            train.append(item)
    print(f"songs: {len(train)} train, {len(dev)} dev (real beds left out)", flush=True)
    L = args.crop_frames

    class Crops(Dataset):
        def __len__(self):
            return len(train) * 4

        def __getitem__(self, i):
            it = train[i % len(train)]
            x, tb, td = it["x"], it["beat"], it["down"]
            if args.stretch > 0 and np.random.rand() < 0.5:  # tempo change: resample the frames
                f = float(np.random.uniform(1 - args.stretch, 1 + args.stretch))
                n2 = max(int(x.shape[1] * f), 8)
                src = np.minimum(np.arange(n2) / f, x.shape[1] - 1)
                x = np.stack([np.interp(src, np.arange(x.shape[1]), row) for row in x]).astype(np.float32)
                tb = np.interp(src, np.arange(len(tb)), tb).astype(np.float32)
                td = np.interp(src, np.arange(len(td)), td).astype(np.float32)
            n = x.shape[1]
            w = np.ones(min(n, L), np.float32)
            if n <= L:
                pad = L - n
                return (torch.from_numpy(np.pad(x, ((0, 0), (0, pad)))),
                        torch.from_numpy(np.stack([np.pad(tb, (0, pad)), np.pad(td, (0, pad))])),
                        torch.from_numpy(np.pad(w, (0, pad))))
            s = int(np.random.randint(0, n - L + 1))
            return (torch.from_numpy(x[:, s:s + L].copy()), torch.from_numpy(np.stack([tb[s:s + L], td[s:s + L]])),
                    torch.from_numpy(w))

    model = FrameBeatNet(features=N_FEATURES_CHROMA if args.chroma else N_FEATURES, channels=args.channels,
                         levels=args.levels, kernel=args.kernel)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    solver = Solver(model, opt, config_from_args(args, progress_bar=False), hparams=vars(args))
    pw = torch.tensor(args.pos_weight)

    def step(m, batch):
        x, tgt, w = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), tgt, pos_weight=pw, reduction="none")
        return {"loss": (loss.mean(1) * w).sum() / w.sum()}

    def validate(m):
        m.eval()
        ok = 0
        for it in dev:
            with torch.no_grad():
                logits = m(torch.from_numpy(it["x"])[None])[0].numpy()
            tempo, beats, bpb, ph = align.track_frames(logits)
            ok += grid_right(align.extend_bars(beats[ph::bpb], tempo, bpb), it["downs"])
        m.train()
        g = ok / max(len(dev), 1)
        return {"loss": 1.0 - g, "grid": g}

    def on_epoch_end(e, tr, va):
        print(f"Epoch {e}: Train Loss: {tr['loss']:.4f} val_grid {va.get('grid', 0):.3f}", flush=True)
        if args.export:
            solver.export(Path(args.out_dir) / f"epoch{e:02d}.safetensors", {"name": args.name, "epoch": e})

    res = solver.fit(Crops(), step, validate=validate, on_epoch_end=on_epoch_end)
    if args.export and solver.step and not res.get("stopped"):
        solver.export(args.export, {"name": args.name, "trained_on": [str(f) for f in args.dataset_folder],
                                    "songs": {"train": len(train), "dev": len(dev)}})
        print(f"exported {args.export}", flush=True)
    return 0


def run(args) -> int:
    import torch
    from torch.utils.data import Dataset

    from engines.audio.limits import set_threads
    from engines.fusion import align
    from engines.fusion.downbeat import N_FEATURES, N_FEATURES_BAR, DownbeatNet, beat_features, decode
    from trainers.solver import Solver, config_from_args, seed_everything

    set_threads(args.threads)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    songs = [s for folder in args.dataset_folder for s in _songs(folder, args.max_seconds)]
    if args.frames:
        return run_frames(args, songs)
    nf = N_FEATURES_BAR if args.bar_features else N_FEATURES
    train, dev = [], []
    for split, sid, y, sr, beats, downs in songs:
        tracked = align.track_beats(y, sr)
        seqs = []
        jit = beats + rng.normal(0, 0.01, len(beats))
        for b in (jit, np.asarray(tracked.beats)):
            if len(b) >= 4:
                seqs.append((beat_features(y, sr, b, nf), _labels(b, downs)))
        item = {"id": sid, "seqs": seqs, "tracked": tracked, "downs": downs, "y": y, "sr": sr}
        (dev if split == "dev" else train).append(item)
    print(f"songs: {len(train)} train, {len(dev)} dev (real beds left out)", flush=True)
    pool = [s for it in train for s in it["seqs"]]
    L = args.crop_beats

    class Crops(Dataset):
        def __len__(self):
            return len(pool) * 8

        def __getitem__(self, i):
            x, lab = pool[i % len(pool)]
            n = x.shape[1]
            if n <= L:
                pad = L - n
                return (torch.from_numpy(np.pad(x, ((0, 0), (0, pad)))), torch.from_numpy(np.pad(lab, (0, pad))),
                        torch.from_numpy(np.pad(np.ones(n, np.float32), (0, pad))))
            s = int(np.random.randint(0, n - L + 1))
            return (torch.from_numpy(x[:, s:s + L].copy()), torch.from_numpy(lab[s:s + L].copy()),
                    torch.ones(L))

    model = DownbeatNet(features=nf, hidden=args.hidden, kernel=args.kernel)
    drop = torch.nn.Dropout(args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    solver = Solver(model, opt, config_from_args(args, progress_bar=False), hparams=vars(args))
    pw = torch.tensor(args.pos_weight)

    def step(m, batch):
        x, lab, w = batch
        logit = m(drop(x))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, lab, pos_weight=pw, reduction="none")
        return {"loss": (loss * w).sum() / w.sum()}

    def grids(m):
        ok = ok_h = 0
        for it in dev:
            tr = it["tracked"]
            b = np.asarray(tr.beats)
            with torch.no_grad():
                logit = m(torch.from_numpy(beat_features(it["y"], it["sr"], b, nf))[None])[0].numpy()
            bpb, ph, _ = decode(logit)
            est = align.extend_bars(b[ph::bpb], tr.tempo, bpb)
            ok += grid_right(est, it["downs"])
            ok_h += grid_right(np.asarray(tr.downbeats), it["downs"])
        return ok / max(len(dev), 1), ok_h / max(len(dev), 1)

    def validate(m):
        m.eval()
        g, gh = grids(m)
        m.train()
        return {"loss": 1.0 - g, "grid": g, "grid_heuristic": gh}

    res = solver.fit(Crops(), step, validate=validate,
                     on_epoch_end=lambda e, tr, va: print(f"Epoch {e}: Train Loss: {tr['loss']:.4f} "
                                                          f"val_grid {va.get('grid', 0):.3f} heuristic "
                                                          f"{va.get('grid_heuristic', 0):.3f}", flush=True))
    if args.export and solver.step and not res.get("stopped"):
        solver.export(args.export, {"name": args.name, "trained_on": [str(f) for f in args.dataset_folder],
                                    "songs": {"train": len(train), "dev": len(dev)}})
        print(f"exported {args.export}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/fusion_beats.py ...``: the same as ``launch.py train fusion-beats ...``."""
    from trainers.solver import script_main

    return script_main("train fusion-beats", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
