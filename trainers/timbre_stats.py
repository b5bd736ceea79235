"""`timbre-stats`: normalisation statistics of the timbre features from a dataset.

Writes ``stats_stft_cqt_piano.npz``, ``stats_stft_cqt_violin.npz`` and
``stats_unified_stft_cqt.npz`` (keys ``stft_mean``, ``stft_std`` ``[2, 513]``, ``cqt_mean``,
``cqt_std`` ``[2, 84]``) into ``--out_dir``, from the same folder layout ``train timbre`` reads.

Imports ``trainers.timbre`` (its data discovery and clip loader); ``trainers.timbre`` does not import this module
(the statistics code both use is :mod:`engines.timbre.features`): no import cycle.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HELP = "compute timbre normalisation statistics (.npz: per instrument and unified) from a dataset"


def compute(data_dirs: list[str], max_files: int | None = None, progress=None) -> dict:
    """``{"piano": FeatureStats, "violin": FeatureStats, "unified": FeatureStats}`` over the dataset."""
    from engines.timbre.features import StatsAccumulator, features
    from trainers.timbre import discover, load_clip

    pairs, pianos, violins = discover(data_dirs)
    files = {"piano": [p for _, p, _ in pairs] + pianos, "violin": [v for _, _, v in pairs] + violins}
    accs = {}
    for inst, paths in files.items():
        acc = StatsAccumulator()
        for i, path in enumerate(paths[:max_files]):
            acc.update(features(load_clip(path)))
            if progress:
                progress(inst, i + 1, min(len(paths), max_files or len(paths)))
        accs[inst] = acc
    out = {k: a.finalize(k) for k, a in accs.items() if a.n}
    if accs.get("piano") is not None and accs.get("violin") is not None and accs["piano"].n and accs["violin"].n:
        out["unified"] = accs["piano"].merge(accs["violin"]).finalize("unified")
    return out


FILENAMES = {"piano": "stats_stft_cqt_piano.npz", "violin": "stats_stft_cqt_violin.npz",
             "unified": "stats_unified_stft_cqt.npz"}


def add_arguments(parser) -> None:
    parser.add_argument("--data", action="append", required=True,
                        help="folder with pairs/<id>/{piano,violin}.wav and/or piano/*.wav, violin/*.wav (repeatable)")
    parser.add_argument("--out_dir", required=True, help="where the .npz files go")
    parser.add_argument("--max_files", type=int, default=None, help="at most this many files per instrument")


def run(args) -> int:
    t0 = time.time()
    res = compute(args.data, args.max_files,
                  progress=lambda inst, i, n: print(f"\r{inst}: {i}/{n}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    out = Path(args.out_dir)
    summary = {}
    for name, st in res.items():
        path = st.save(out / FILENAMES[name])
        summary[name] = {"file": str(path), "stft_std_mean": float(st.stft_std.mean()),
                         "cqt_std_mean": float(st.cqt_std.mean())}
        print(f"{name}: {path}")
    print(json.dumps({"seconds": round(time.time() - t0, 1), **summary}))
    return 0
