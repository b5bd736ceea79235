"""Weight averaging of exported checkpoints of one architecture (snapshot / "model soup" averaging).

    python -m trainers.average OUT.safetensors A.safetensors B.safetensors [C ...] [--weights 1 1 ...]

Every floating-point tensor (weights and BatchNorm running statistics) becomes the weighted mean of
the inputs; other tensors are taken from the first input. The class, constructor kwargs and metadata
of the first input are kept, and the metadata records the sources and weights. Used for the
defaults whose registry entries say "mean of ..." snapshots.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def average(paths: list[str | os.PathLike], out: str | os.PathLike, weights: list[float] | None = None) -> Path:
    """Average the checkpoints at ``paths`` into ``out``; returns ``out``.

    Raises:
        ValueError: fewer than two inputs, a weight count that does not match, non-positive weights,
            or inputs of different classes, constructor kwargs or tensor names/shapes.
    """
    from engines.checkpoint import read_checkpoint, save_model, load_model

    if len(paths) < 2:
        raise ValueError("Give at least two checkpoints to average.")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) <= 0:
        raise ValueError("Give one positive weight per checkpoint.")
    headers, states = zip(*(read_checkpoint(p) for p in paths))
    first = headers[0]
    for p, h, s in zip(paths, headers, states):
        if h["klass"] != first["klass"] or h["kwargs"] != first["kwargs"]:
            raise ValueError(f"'{p}' is a {h['klass']} with other constructor arguments than '{paths[0]}'.")
        if {k: tuple(v.shape) for k, v in s.items()} != {k: tuple(v.shape) for k, v in states[0].items()}:
            raise ValueError(f"'{p}' has other tensors than '{paths[0]}'.")
    total = sum(weights)
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            mean[k] = sum(w * s[k].double() for w, s in zip(weights, states)).div(total).to(v.dtype)
        else:
            mean[k] = v
    model = load_model(paths[0])
    model.load_state_dict(mean)
    meta = dict(first.get("metadata") or {})
    meta["averaged_from"] = [{"path": str(p), "weight": w} for p, w in zip(paths, weights)]
    return save_model(model, out, metadata=meta, kwargs=first["kwargs"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainers.average", description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--weights", type=float, nargs="+", default=None)
    a = p.parse_args(argv)
    print(average(a.inputs, a.out, a.weights))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
