"""``launch.py train query``: train the built-in query model (embedder/classifier + mask net).

Two trainers behind one command (the flags and the command stay as they were):

* without ``--triples``: :mod:`trainers.query_classifier` trains a new model (embedder/classifier and mask
  net) on mixtures made on the fly from single-source clips;
* ``--triples DIR ... --init MODEL``: :mod:`trainers.query_masknet` fine-tunes only the mask net of an
  existing model on corpus query triples; the embedder stays frozen.

The names of both modules are re-exported here for the callers of the former single file.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines.audio.losses import si_sdr  # noqa: E402,F401
from trainers.query_classifier import (QLEN, SEG, WIN, MixtureSet, class_names, evaluate,  # noqa: E402,F401
                                       load_manifest, source_key, synthetic_clips, train_step_fn)
from trainers.query_masknet import TripleSet, _triple_rows, evaluate_triples, sep_step_fn  # noqa: E402,F401

HELP = "train the built-in query embedder/classifier and mask net on single-source clips"
logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- command
def add_arguments(p: argparse.ArgumentParser) -> None:
    from trainers.solver import add_solver_arguments

    p.add_argument("--data", default="/work/corpus/clips", help="folder with manifest.jsonl of single-source clips")
    p.add_argument("--extra_data", nargs="*", default=[], help="more clip folders (e.g. /work/corpus/query)")
    p.add_argument("--synthetic", type=int, default=0, help="use N generated clips instead of --data (tests)")
    p.add_argument("--limit", type=int, default=None, help="read at most this many clips per folder")
    p.add_argument("--examples_per_epoch", type=int, default=4000)
    p.add_argument("--val_examples", type=int, default=96)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=160)
    p.add_argument("--export", default=None, help="write the inference checkpoint here (.safetensors)")
    p.add_argument("--triples", nargs="*", default=[], help="fine-tune the mask net on corpus query folders "
                   "(q_*/{mix,query,target,background}.wav) instead of training from clips")
    p.add_argument("--init", default=None, help="with --triples: the model to start from (registry name or path)")
    p.add_argument("--holdout", type=int, default=40, help="with --triples: first N triples of the first folder held out; when the "
                   "corpus has dev rows (index %% 10 == 9), at most N of those instead (train rows only are trained on)")
    p.add_argument("--seg_s", type=float, default=4.0, help="with --triples: training crop length (s)")
    p.add_argument("--remix_p", type=float, default=0.5, help="with --triples: share of dynamically remixed items")
    p.add_argument("--absent_p", type=float, default=0.0,
                   help="with --triples: share of items whose query comes from another class (target: silence)")
    p.add_argument("--xattn_dim", type=int, default=0, help="with --triples: add a cross-attention block of this "
                   "width (mixture frames attend to the query's frames) to the --init model (0: none)")
    p.add_argument("--xattn_at", type=int, default=4, help="with --xattn_dim: after this mask block")
    p.add_argument("--mask_lr_scale", type=float, default=1.0, help="with --triples: learning rate of the existing "
                   "mask net relative to --lr (0: frozen, only a new cross-attention block trains)")
    add_solver_arguments(p, epochs=10, batch_size=16, ckpt_every=100)


def run(args) -> int:
    if getattr(args, "triples", None):
        from trainers import query_masknet

        return query_masknet.run(args)
    from trainers import query_classifier

    return query_classifier.run(args)


def main(argv: list[str] | None = None) -> int:
    """``python trainers/query_embedder.py ...``: the same as ``launch.py train query ...``."""
    from trainers.solver import script_main

    return script_main("train query", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
