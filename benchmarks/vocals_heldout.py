#!/usr/bin/env python3
"""Held-out validation of vocal models on training-side songs (never the bench): mean SDR per mask setting.

    python benchmarks/vocals_heldout.py EVAL_DIR --checkpoint A.safetensors [B ...] [--sharpen 0.5 1 2] [--binary]

EVAL_DIR holds ``<song>/{mixture,vocals,accompaniment}.wav`` (e.g. the ``eval/`` folder of a
``train vocals`` waveform set: corpus songs held out of training). Used to choose between
checkpoints and the inference mask sharpening; the bench is only measured afterwards.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("eval_dir")
    p.add_argument("--checkpoint", nargs="+", required=True)
    p.add_argument("--sharpen", type=float, nargs="+", default=[1.0])
    p.add_argument("--binary", action="store_true", help="also score the binary mask")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from engines.audio import io as audio_io
    from engines.audio.metrics import sdr
    from engines.vocals.api import VocalIsolator

    from engines.audio.limits import set_threads

    set_threads(args.threads)
    songs = sorted(s for s in Path(args.eval_dir).iterdir() if (s / "mixture.wav").is_file())
    data = []
    for s in songs:
        mix, sr = audio_io.load(s / "mixture.wav")
        voc, _ = audio_io.load(s / "vocals.wav")
        acc, _ = audio_io.load(s / "accompaniment.wav")
        data.append((mix, voc, acc, sr))
    for ck in args.checkpoint:
        iso = VocalIsolator(ck)
        settings = [(False, sh) for sh in args.sharpen] + ([(True, 1.0)] if args.binary else [])
        for binary, sh in settings:
            v_sdr, a_sdr = [], []
            for mix, voc, acc, sr in data:
                res = iso.separate(mix, sr, binary_mask=binary, sharpen=sh)
                v_sdr.append(sdr(voc[0], res.vocals[0]))
                a_sdr.append(sdr(acc[0], res.accompaniment[0]))
            print(json.dumps({"checkpoint": ck, "binary": binary, "sharpen": sh, "n": len(data),
                              "sdr": round(float(np.mean(v_sdr)), 3), "acc_sdr": round(float(np.mean(a_sdr)), 3),
                              "per_song": [round(float(x), 2) for x in v_sdr]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
