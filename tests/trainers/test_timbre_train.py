"""`train timbre` (one real run as a subprocess, curriculum phases, export) and `timbre-stats`."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tone(f0, seconds, sr, sustained, seed):
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(1, t * 30) if sustained else np.exp(-4 * t)
    harm = [1, 0.6, 0.4, 0.3] if sustained else [1, 0.3, 0.1]
    y = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(harm)) * env
    return (0.1 * y + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two paired melodies-of-one-note plus unpaired folders, 24 kHz."""
    root = tmp_path_factory.mktemp("timbre_data")
    sr = 24000
    for i, f0 in enumerate([330.0, 440.0, 523.0]):
        d = root / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        sf.write(d / "piano.wav", _tone(f0, 1.2, sr, False, i), sr)
        sf.write(d / "violin.wav", _tone(f0, 1.2, sr, True, i), sr)
    (root / "piano").mkdir()
    (root / "violin").mkdir()
    sf.write(root / "piano" / "a.wav", _tone(392.0, 0.8, sr, False, 7), sr)
    sf.write(root / "violin" / "b.wav", _tone(294.0, 2.0, sr, True, 8), sr)
    return root


def test_stats_command_writes_three_files(data, tmp_path):
    out = tmp_path / "stats"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), "timbre-stats", "--data", str(data),
                        "--out_dir", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from engines.timbre.features import FeatureStats

    for name in ("stats_stft_cqt_piano.npz", "stats_stft_cqt_violin.npz", "stats_unified_stft_cqt.npz"):
        st = FeatureStats.load(out / name)
        assert st.stft_mean.shape == (2, 513) and st.cqt_std.shape == (2, 84)
    with np.load(out / "stats_stft_cqt_piano.npz") as z:
        assert set(z.files) >= {"stft_mean", "stft_std", "cqt_mean", "cqt_std"}


def test_train_runs_all_phases_and_exports(data, tmp_path):
    out = tmp_path / "run"
    export = tmp_path / "timbre-test.safetensors"
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "timbre", "--data", str(data),
           "--out_dir", str(out), "--max_steps", "5", "--batch_size", "2", "--val_pairs", "1",
           "--window", "40", "--d_model", "32", "--style_dim", "16", "--enc_layers", "1", "--dec_layers", "1",
           "--no_mlflow", "--threads", "1", "--log_every", "1", "--export", str(export)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for k, name in enumerate(["reconstruction", "disentanglement", "contrastive", "adversarial"], 1):
        assert f"Curriculum phase {k}/4: {name}" in r.stdout
    phases = json.loads((out / "phases.json").read_text())
    assert set(phases) == {"1", "2", "3", "4"} and "adv_d" in phases["4"]["means"]
    assert "hsic" in phases["2"]["means"] and "infonce" in phases["3"]["means"]
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert any(e["event"] == "phase" for e in events) and events[-1]["event"] == "done"
    from engines.checkpoint import load_model
    from engines.timbre.model import TimbreTransfer

    m = load_model(export, expected=TimbreTransfer)
    assert m.checkpoint_metadata["steps"] == 5 and m.stats_name == "unified"
    assert float(m.proto_count.sum()) > 0
    # resumable: a second run with more steps continues from the checkpoint
    r2 = subprocess.run(cmd[:cmd.index("--max_steps") + 1] + ["6"] + cmd[cmd.index("--max_steps") + 2:],
                        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r2.returncode == 0 and "Resumed from" in r2.stdout


def test_phase_schedule():
    from trainers.timbre import phase_of

    assert [phase_of(s, 100) for s in (0, 19, 20, 39, 40, 59, 60, 99)] == [1, 1, 2, 2, 3, 3, 4, 4]


def test_discover_rejects_empty(tmp_path):
    from trainers.timbre import discover

    with pytest.raises(ValueError):
        discover([str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        discover([str(tmp_path / "nope")])


def test_lr_schedule_shape_and_total_steps():
    """Warm-up over min(100, total // 20) steps times a cosine from 1 to 0.1 over the whole run (the shape the
    shipped models were trained with); the step count is the solver's total_steps."""
    import math

    import torch

    from trainers.solver import total_steps
    from trainers.timbre import lr_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_schedule(opt, 2000)
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(0.01)  # warm-up over 100 steps
    assert f(99) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 2000)))  # warm, cosine from 0
    assert f(1000) == pytest.approx(0.55)
    assert f(2000) == pytest.approx(0.1) and f(5000) == pytest.approx(0.1)
    assert total_steps(10, 4, epochs=3) == 9 and total_steps(10, 4, epochs=3, max_steps=5) == 5


def test_timbre_trainers_do_not_import_each_other():
    """trainers.timbre_stats uses trainers.timbre; trainers.timbre gets the statistics from engines.timbre."""
    import ast

    def imported(path):
        names = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert "trainers.timbre_stats" not in imported(os.path.join(ROOT, "trainers", "timbre.py"))
    assert "trainers.timbre" in imported(os.path.join(ROOT, "trainers", "timbre_stats.py"))
    for mod in ("config", "features", "model", "api", "losses"):
        assert not any(n.startswith("trainers") for n in imported(os.path.join(ROOT, "engines", "timbre", f"{mod}.py")))
