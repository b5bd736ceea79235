"""The key finder's trainer (``trainers/fusion_key.py``): a real run on a tiny rendered "corpus" of chord
progressions whose ``meta.json`` gives their keys; real beds are left out; the trained model finds the keys of
transposed dev songs better than chance."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
SR = 24000
MAJOR, MINOR = (0, 4, 7), (0, 3, 7)


def _song(tonic, mode, seed, seconds=4.0):
    """I-IV-V-I triads (three octaves of each chord tone) in ``tonic`` ``mode``."""
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
    from trainers.data import FusionRow, Source

    root = tmp_path / "corpus" / "fusion"
    rows = []
    for i in range(8):
        d = root / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        meta = {}
        for k, name in enumerate(("a", "b")):
            tonic, mode = (3 * i + 5 * k) % 12, ("major", "minor")[(i + k) % 2]
            sf.write(d / f"{name}.wav", _song(tonic, mode, 10 * i + k), SR)
            meta[name] = {"key": {"tonic_pc": tonic, "mode": mode}}
        if i == 7:  # a real bed: its key is the engine's own estimate, never a target
            meta["a"]["estimated"] = True
        (d / "meta.json").write_text(json.dumps(meta))
        rows.append(FusionRow(id=f"p{i}", index=i, path=f"pairs/p{i}", sr=SR, seconds=4.0, effects=[],
                              split="dev" if i >= 6 else "train",
                              sources=[Source(f"p{i}", "test", "MIT", False)], a={}, b={}))
    (root / "manifest.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in rows))
    return tmp_path / "corpus"


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
