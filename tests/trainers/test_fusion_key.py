"""The key finder's trainer (``trainers/fusion_key.py``): a real run on a tiny rendered "corpus" of chord
progressions whose ``meta.json`` gives their keys; real beds are left out; the trained model finds the keys of
transposed dev songs better than chance."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.trainers.fusion_corpus import SR, write_fusion_corpus

ROOT = Path(__file__).resolve().parents[2]


def _song(tonic, mode, seed, seconds=4.0):
    """I-IV-V-I triads in ``tonic`` ``mode`` (sines around A3-A4) over a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    third = 3 if mode == "minor" else 4
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    y = 0.003 * rng.standard_normal(len(t))
    seg = len(t) // 4
    for i, ch in enumerate(chords):
        s = slice(i * seg, (i + 1) * seg)
        for iv in ch:
            f = 220.0 * 2 ** ((tonic + iv - 9) / 12)
            y[s] += 0.05 * np.sin(2 * np.pi * f * t[s])
    return y.astype(np.float32)


def _corpus(tmp_path):
    def side(i, k):
        tonic, mode = (3 * i + 5 * k) % 12, ("major", "minor")[(i + k) % 2]
        return _song(tonic, mode, 10 * i + k), {"key": {"tonic_pc": tonic, "mode": mode}}

    return write_fusion_corpus(tmp_path, side, 4.0)


def test_train_fusion_key(tmp_path):
    out, export = tmp_path / "run", tmp_path / "key.safetensors"
    cmd = [sys.executable, str(ROOT / "launch.py"), "train", "fusion-key", "--dataset_folder", str(_corpus(tmp_path)),
           "--out_dir", str(out), "--epochs", "30", "--batch_size", "4", "--threads", "1", "--no_mlflow",
           "--export", str(export)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "songs: 12 train, 3 dev" in r.stdout and "Epoch 30:" in r.stdout
    from engines.audio.key import KeyNet, chroma_vector, classify
    from engines.checkpoint import load_model

    m = load_model(export, expected=KeyNet)
    assert m.checkpoint_metadata["songs"] == {"train": 12, "dev": 3}
    hits = [classify(m, chroma_vector(_song(t, mo, 99), SR))[1:] == (t, mo)
            for t in range(0, 12, 2) for mo in ("major", "minor")]
    assert np.mean(hits) >= 0.75, hits  # 12 keys it was trained on transposed to; chance is 1/24
