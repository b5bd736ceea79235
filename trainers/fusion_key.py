#!/usr/bin/env python3
"""Train the fusion engine's key finder (:class:`engines.audio.key.KeyNet`) on a rendered corpus ``fusion`` kind,
whose ``meta.json`` knows the key of every excerpt it rendered (music21's Aarden-Essen analysis of its notes).

``python trainers/fusion_key.py --dataset_folder /work/corpus_f30 ... --out_dir RUN [--export PATH --name NAME]``

* Songs: ``a`` and ``b`` of every pair; a real bed (``estimated: true``: its key is the engine's own estimate,
  not the truth) is left out. Dev rows (``split == "dev"``) validate only.
* Input: the mean chroma of the whole file (:func:`engines.audio.key.chroma_vector`, what the engine reads);
  each training example is rolled by a random number of semitones with its key (a transposed song), so every
  tonic is seen equally often.
* Loss: cross-entropy over the 24 keys; validation: the share of dev songs whose key is right (``val_key``), against
  the profile-correlation finders' (``krumhansl``, ``aarden``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HELP = "the fusion engine's key finder"
SR = 24000


def add_arguments(p: argparse.ArgumentParser) -> None:
    from trainers.solver import add_solver_arguments

    p.add_argument("--dataset_folder", required=True, nargs="+", help="corpus roots (or their fusion folders)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight_decay", type=float, default=1e-3, help="L2 on the profile weights")
    p.add_argument("--export", default=None, help="write the inference checkpoint here")
    p.add_argument("--name", default="fusion-key")
    add_solver_arguments(p, epochs=40, batch_size=64, ckpt_every=1000)


def songs(folder: str) -> list[tuple[str, str, np.ndarray, int]]:
    """``[(split, id, chroma (12,), label)]`` of every rendered song; label = tonic (+ 12 for minor)."""
    from engines.audio import io
    from engines.audio.key import chroma_vector, key_index
    from trainers import data

    out = []
    for row, name, m, wav in data.rendered_fusion_sides(folder):
        key = m.get("key")
        if not isinstance(key, dict) or "tonic_pc" not in key:
            continue
        y, sr = io.load(str(wav), sr=SR, mono=True, max_seconds=None)
        label = key_index(key["tonic_pc"], key.get("mode"))
        out.append((row.split, f"{row.id}/{name}", chroma_vector(y[0], sr).astype(np.float32), label))
    return out


def transpose(chroma: np.ndarray, label: int, steps: int) -> tuple[np.ndarray, int]:
    """The chroma and key of the same song ``steps`` semitones up."""
    return np.roll(chroma, steps), (label % 12 + steps) % 12 + 12 * (label // 12)


def run(args) -> int:
    import torch
    from torch.utils.data import Dataset

    from engines.audio.key import KeyNet, best_key, key_index
    from trainers.solver import Solver, config_from_args, seed_everything

    seed_everything(args.seed)
    rows = [r for folder in args.dataset_folder for r in songs(folder)]
    train = [(c, y) for split, _, c, y in rows if split != "dev"]
    dev = [(c, y) for split, _, c, y in rows if split == "dev"]
    print(f"songs: {len(train)} train, {len(dev)} dev (real beds left out)", flush=True)
    if not train:
        raise SystemExit("No rendered songs with keys in the dataset folders.")

    class Songs(Dataset):
        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            c, y = transpose(*train[i], int(np.random.randint(12)))
            return torch.from_numpy(c.copy()), torch.tensor(y)

    def profile_share(profile: str) -> float:
        hits = [key_index(*best_key(c, profile)[1:]) == y for c, y in dev]
        return float(np.mean(hits)) if hits else 0.0

    baselines = {p: profile_share(p) for p in ("krumhansl", "aarden")}
    model = KeyNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    solver = Solver(model, opt, config_from_args(args, progress_bar=False), hparams=vars(args))

    def step(m, batch):
        x, y = batch
        return {"loss": torch.nn.functional.cross_entropy(m(x), y) + args.weight_decay * m.weight.pow(2).sum()}

    def validate(m):
        if not dev:
            return {}
        m.eval()
        with torch.no_grad():
            pred = m(torch.from_numpy(np.stack([c for c, _ in dev]))).argmax(1).numpy()
        m.train()
        share = float(np.mean(pred == np.array([y for _, y in dev])))
        return {"loss": 1.0 - share, "key": share, **{f"key_{p}": v for p, v in baselines.items()}}

    res = solver.fit(Songs(), step, validate=validate,
                     on_epoch_end=lambda e, tr, va: print(f"Epoch {e}: Train Loss: {tr['loss']:.4f} val_key "
                                                          f"{va.get('key', 0):.3f} (profiles: krumhansl "
                                                          f"{baselines['krumhansl']:.3f} aarden "
                                                          f"{baselines['aarden']:.3f})", flush=True))
    if args.export and solver.step and not res.get("stopped"):
        solver.export(args.export, {"name": args.name, "trained_on": [str(f) for f in args.dataset_folder],
                                    "songs": {"train": len(train), "dev": len(dev)},
                                    "dev_key_right": {"learned": res.get("val_key"), **baselines}})
        print(f"exported {args.export}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/fusion_key.py ...``: the same as ``launch.py train fusion-key ...``."""
    from trainers.solver import script_main

    return script_main("train fusion-key", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
