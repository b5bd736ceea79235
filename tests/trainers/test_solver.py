import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from engines.checkpoint import load_model
from trainers.solver import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOY = str(ROOT / "tests" / "trainers" / "toy_trainer.py")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_ALLOW_FILE_STORE="true", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _events(out):
    return [json.loads(line) for line in (Path(out) / "progress.jsonl").read_text().splitlines()]


def test_toy_trains_and_loss_falls_with_mlflow(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, TOY, "--out_dir", str(out), "--epochs", "4", "--log_every", "2"],
                       env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ev = _events(out)
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] * 0.5
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert ev[-1]["event"] == "done" and ev[-1]["step"] == 4 * 16
    assert "Epoch 4: Train Loss" in r.stdout
    assert list((out / "mlruns").rglob("train_loss")), "MLflow metrics were not written"
    assert list((out / "mlruns").rglob("val_loss"))
    model = load_model(out / "toy.safetensors")
    assert model.checkpoint_metadata["trained_on"] == "synthetic"


def test_ddp_two_processes(tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        TOY, "--out_dir", str(out), "--epochs", "4", "--log_every", "2", "--no_mlflow"],
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ev = _events(out)
    assert ev[0]["event"] == "start" and ev[0]["world_size"] == 2
    assert ev[0]["steps_per_epoch"] == 8  # 256 samples / 16 per batch / 2 processes
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] * 0.5
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert ev[-1]["event"] == "done"


def _run_to_end(out, extra_env=None, max_steps=30):
    return subprocess.run([sys.executable, TOY, "--out_dir", str(out), "--max_steps", str(max_steps), "--epochs", "99",
                           "--ckpt_every", "1", "--no_mlflow"], env=_env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=180)


def test_sigkill_resume_matches_uninterrupted_run(tmp_path):
    ref = tmp_path / "ref"
    assert _run_to_end(ref).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, TOY, "--out_dir", str(out), "--max_steps", "30", "--epochs", "99",
                             "--ckpt_every", "1", "--no_mlflow"], env=_env(TOY_STEP_SLEEP="0.15"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 60
    while time.time() < deadline:
        if ckpt.exists() and load_training_checkpoint(ckpt)["step"] >= 20:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_training_checkpoint(ckpt)
    assert 20 <= killed_at["step"] < 30  # it really died mid-run (step 20 is inside epoch 2)
    r = _run_to_end(out)
    assert r.returncode == 0
    assert f"at step {killed_at['step']}" in r.stdout
    a, b = load_training_checkpoint(ref / "checkpoint.pt"), load_training_checkpoint(ckpt)
    assert a["step"] == b["step"] == 30
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k]["step"] == sb[k]["step"]
        assert torch.allclose(sa[k]["exp_avg"], sb[k]["exp_avg"], atol=1e-6)
    assert a["scheduler"] == b["scheduler"]


def test_sigterm_checkpoints_and_exits(tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, TOY, "--out_dir", str(out), "--max_steps", "500", "--epochs", "99",
                             "--ckpt_every", "1000", "--no_mlflow"], env=_env(TOY_STEP_SLEEP="0.05"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "progress.jsonl").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 0
    st = load_training_checkpoint(out / "checkpoint.pt")
    assert 0 < st["step"] < 500
    assert _events(out)[-1]["event"] == "stopped"


def test_bf16_autocasts_the_step_and_keeps_float32_weights(tmp_path):
    from torch.utils.data import TensorDataset

    from engines.testing import TinyNet
    from trainers.solver import Solver, SolverConfig

    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = 0.5 * x[:, :4].sum(1, keepdim=True)
    seen = []

    def run(bf16):
        torch.manual_seed(1)
        model = TinyNet(8, 32, 1)
        cfg = SolverConfig(out_dir=str(tmp_path / f"run{int(bf16)}"), epochs=6, batch_size=16, mlflow=False,
                           progress_bar=False, bf16=bf16)
        solver = Solver(model, torch.optim.Adam(model.parameters(), lr=1e-2), cfg)

        def step(m, batch):
            out = m(batch[0])
            seen.append((bf16, out.dtype))
            return {"loss": torch.mean((out.float() - batch[1]) ** 2)}

        res = solver.fit(TensorDataset(x, y), step)
        return model, res

    model, res = run(True)
    assert {d for b, d in seen if b} == {torch.bfloat16}, "the step did not run under bfloat16 autocast"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    _, ref = run(False)
    assert {d for b, d in seen if not b} == {torch.float32}
    first = float(torch.mean(y ** 2))  # the loss of predicting zero, for scale
    assert res["train_loss"] < 0.2 * first and abs(res["train_loss"] - ref["train_loss"]) < 0.1 * first
