"""The downbeat tracker's trainer (``trainers/fusion_beats.py``): one real run on a tiny rendered "corpus" whose
``meta.json`` gives the beats and downbeats, with the bar-scale features; real beds are left out."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.trainers.fusion_corpus import SR, write_fusion_corpus

ROOT = Path(__file__).resolve().parents[2]


def _bars(seconds, beat, seed):
    """A kick on every beat (louder on the downbeat) under a chord that changes each 4-beat bar."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.01 * rng.standard_normal(len(t))
    roots = rng.uniform(150, 300, 16)
    beats = np.arange(0, seconds - 1e-6, beat)
    for i, b in enumerate(beats):
        s = slice(int(b * SR), int(min(b + beat, seconds) * SR))
        tt = t[s] - b
        f = roots[(i // 4) % 16]
        y[s] += (0.6 if i % 4 == 0 else 0.25) * np.sin(2 * np.pi * 60 * tt) * np.exp(-30 * tt)
        y[s] += 0.1 * sum(np.sin(2 * np.pi * f * r * tt) for r in (1, 1.25, 1.5))
    return y.astype(np.float32), beats, beats[::4]


def _corpus(tmp_path):
    def side(i, k):
        y, beats, downs = _bars(8.0, 0.5 + 0.05 * k, 10 * i + k)
        return y, {"beats": beats.tolist(), "downbeats": downs.tolist()}

    return write_fusion_corpus(tmp_path, side, 8.0)


def _train(tmp_path, *extra):
    out, export = tmp_path / "run", tmp_path / "db.safetensors"
    cmd = [sys.executable, str(ROOT / "trainers" / "fusion_beats.py"), "--dataset_folder", str(_corpus(tmp_path)),
           "--out_dir", str(out), "--epochs", "2", "--threads", "1", "--no_mlflow", "--export", str(export), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "songs: 12 train, 3 dev" in r.stdout and "Epoch 2:" in r.stdout
    return out, export


def test_train_fusion_beats_with_bar_features(tmp_path):
    out, export = _train(tmp_path, "--hidden", "8", "--bar_features")
    from engines.checkpoint import load_model
    from engines.fusion.downbeat import N_FEATURES_BAR, DownbeatNet

    m = load_model(export, expected=DownbeatNet)
    assert m.features == N_FEATURES_BAR and m.checkpoint_metadata["songs"] == {"train": 12, "dev": 3}


@pytest.mark.parametrize("chroma", [False, True])
def test_train_the_frame_level_network(tmp_path, chroma):
    """``--frames``: the frame-level network, crops of frames, time-stretched; an export each epoch and at the end;
    ``--chroma``: with the 12 chroma rows, which inference then computes for it."""
    out, export = _train(tmp_path, "--frames", "--channels", "8", "--levels", "3", "--kernel", "3",
                         "--crop_frames", "128", "--batch_size", "4", "--stretch", "0.2", *(["--chroma"] if chroma else []))
    from engines.checkpoint import load_model
    from engines.fusion import downbeat
    from engines.fusion.align import track_frames
    from engines.fusion.frame_beats import N_FEATURES, N_FEATURES_CHROMA, FrameBeatNet, frame_logits

    m = load_model(export, expected=downbeat.MODEL_CLASSES)
    assert isinstance(m, FrameBeatNet) and m.checkpoint_metadata["songs"] == {"train": 12, "dev": 3}
    assert m.features == (N_FEATURES_CHROMA if chroma else N_FEATURES)
    assert (out / "epoch01.safetensors").is_file() and (out / "epoch02.safetensors").is_file()
    y, _, _ = _bars(8.0, 0.5, 99)
    tempo, beats, bpb, ph = track_frames(frame_logits(m, y, SR))
    assert len(beats) >= 2 and bpb in downbeat.METERS and 0 <= ph < bpb and 40 <= tempo <= 220
