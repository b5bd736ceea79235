"""`train fusion`: one real training run as a subprocess, plain (with MLflow) and under torchrun."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainers.fusion import discover_pairs

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_ALLOW_FILE_STORE="true", OMP_NUM_THREADS="1")


@pytest.fixture()
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    sr = 24000
    t = np.arange(int(1.5 * sr)) / sr
    for i in range(4):
        d = tmp_path / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        for name in ("input", "target"):
            f0 = rng.uniform(100, 900)
            x = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(len(t))
            sf.write(d / f"{name}.wav", x.astype(np.float32), sr)
    return tmp_path / "pairs"


def test_discover_pairs_layouts(pairs, tmp_path):
    assert len(discover_pairs(pairs)) == 4 and all(b for _, b in discover_pairs(pairs))
    man = tmp_path / "corpus"
    (man / "item0").mkdir(parents=True)
    for n in ("a", "b"):
        sf.write(man / "item0" / f"{n}.wav", np.zeros(100, np.float32), 24000)
    from trainers.data import DataError, FusionRow, Source

    row = FusionRow(id="item0", index=0, path="item0", sr=24000, seconds=0.01, effects=[],
                    sources=[Source("item0", "user", "user-supplied", True)], a={}, b={})
    (man / "manifest.jsonl").write_text(json.dumps(row.to_json()) + "\n")
    assert discover_pairs(man) == [(str(man / "item0/a.wav"), str(man / "item0/b.wav"))]
    dev = FusionRow(id="item9", index=9, path="item0", sr=24000, seconds=0.01, effects=[], split="dev",
                    sources=[Source("item0", "user", "user-supplied", True)], a={}, b={})
    (man / "manifest.jsonl").write_text(json.dumps(row.to_json()) + "\n" + json.dumps(dev.to_json()) + "\n")
    assert len(discover_pairs(man)) == 2 and len(discover_pairs(man, split="train")) == 1
    assert discover_pairs(man, split="dev") == [(str(man / "item0/a.wav"), str(man / "item0/b.wav"))]
    assert discover_pairs(loose_dir := pairs, split="dev") == [] and len(discover_pairs(loose_dir, split="train")) == 4
    (man / "manifest.jsonl").write_text(json.dumps({"id": "item0", "a": {"file": "item0/a.wav"}}) + "\n")
    with pytest.raises(DataError, match="unknown field|missing field"):
        discover_pairs(man)
    loose = tmp_path / "loose"
    loose.mkdir()
    for n in ("x", "y"):
        sf.write(loose / f"{n}.wav", np.zeros(100, np.float32), 24000)
    assert discover_pairs(loose) == [(str(loose / "x.wav"), None), (str(loose / "y.wav"), None)]


def _train(pairs, out, extra, launcher):
    cmd = launcher + [str(ROOT / "launch.py"), "train", "fusion", "--dataset_folder", str(pairs), "--out_dir",
                      str(out), "--epochs", "1", "--batch_size", "2", "--crop_seconds", "0.5", "--crops_per_pair", "1",
                      "--d_model", "32", "--num_stages", "2", "--num_transformer_layers", "1", "--nhead", "2",
                      "--dim_feedforward", "64", "--log_every", "1"] + extra
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240, cwd=str(ROOT))


def test_one_training_epoch_plain_with_mlflow_and_export(pairs, tmp_path):
    out = tmp_path / "run"
    r = _train(pairs, out, ["--mask_type", "temporal", "--mask_temporal_segment", "20",
                            "--export", str(out / "fusion.safetensors")], [sys.executable])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Complementary Masking Applied:" in r.stdout and "Type: temporal" in r.stdout
    assert "Train Loss:" in r.stdout and "rms_in:" in r.stdout and "Val Loss:" in r.stdout and "LR:" in r.stdout
    ev = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    epoch = [e for e in ev if e["event"] == "epoch"][-1]
    for k in ("train_loss", "train_rms_input", "train_rms_target", "train_spectral", "train_mel",
              "val_loss", "val_rms_input", "val_rms_target", "val_spectral", "val_mel", "learning_rate"):
        assert k in epoch and np.isfinite(epoch[k]), k
        assert list((out / "mlruns").rglob(k)), f"MLflow metric {k} missing"
    from engines.checkpoint import load_model
    from engines.fusion.model import CascadeFusion

    m = load_model(out / "fusion.safetensors", expected=CascadeFusion)
    assert m.checkpoint_metadata["codec"] == "builtin"


def test_one_training_step_under_torchrun(pairs, tmp_path):
    out = tmp_path / "ddp"
    r = _train(pairs, out, ["--no_mlflow", "--unity_test", "true", "--anti_cheating", "0.5"],
               [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    assert r.returncode == 0, r.stderr[-3000:]
    ev = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert ev[0]["world_size"] == 2 and ev[-1]["event"] == "done" and ev[-1]["step"] >= 1
