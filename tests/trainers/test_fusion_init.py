"""`train fusion --init`: fine-tuning starts from an exported model (its architecture and weights)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]


def _run(pairs, out, extra):
    cmd = [sys.executable, str(ROOT / "launch.py"), "train", "fusion", "--dataset_folder", str(pairs),
           "--out_dir", str(out), "--epochs", "1", "--max_steps", "1", "--batch_size", "2", "--crop_seconds", "0.5",
           "--crops_per_pair", "1", "--no_mlflow", "--mask_type", "temporal", "--mask_temporal_segment", "20"] + extra
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_ALLOW_FILE_STORE="true", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=str(ROOT))


def test_init_keeps_the_exported_architecture_and_weights(tmp_path):
    from engines.checkpoint import load_model
    from engines.fusion.model import CascadeFusion

    rng = np.random.default_rng(0)
    sr = 24000
    t = np.arange(int(1.0 * sr)) / sr
    for i in range(4):
        d = tmp_path / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        for name in ("a", "b"):
            sf.write(d / f"{name}.wav", (0.2 * np.sin(2 * np.pi * rng.uniform(100, 900) * t)).astype(np.float32), sr)
    base = tmp_path / "base" / "m.safetensors"
    arch = ["--d_model", "32", "--num_stages", "2", "--num_transformer_layers", "1", "--nhead", "2",
            "--dim_feedforward", "64"]
    r = _run(tmp_path / "pairs", tmp_path / "base", arch + ["--export", str(base)])
    assert r.returncode == 0, r.stderr[-2000:]
    # other model flags are ignored; with lr 0 the fine-tuned export is the initial model
    tuned = tmp_path / "tuned" / "m.safetensors"
    r = _run(tmp_path / "pairs", tmp_path / "tuned", ["--d_model", "48", "--init", str(base), "--lr", "0",
                                                      "--export", str(tuned)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"Initialised from {base}" in r.stdout
    a, b = load_model(base, expected=CascadeFusion), load_model(tuned, expected=CascadeFusion)
    assert a._init_kwargs == b._init_kwargs and a._init_kwargs["d_model"] == 32
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
