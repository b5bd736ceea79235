"""The Train tab's job machinery, without a browser: a real (toy) trainer on the shared solver run as
a subprocess, live progress records, SIGTERM stop with a checkpoint, the checkpoint list, commands."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from studio import plots, training

TOY = Path(__file__).resolve().parents[1] / "trainers" / "toy_trainer.py"


def _wait(cond, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_job_runs_to_done_with_progress_and_export(tmp_path):
    out = tmp_path / "run"
    job = training.TrainJob([[sys.executable, str(TOY), "--out_dir", str(out), "--epochs", "2", "--no_mlflow",
                              "--log_every", "4"]], out, "toy")
    assert _wait(lambda: not job.running(), 90), job.log_tail()
    recs = job.records()
    events = [r["event"] for r in recs]
    assert events[0] == "start" and events[-1] == "done"
    trains = [r for r in recs if r["event"] == "train"]
    assert trains and all({"step", "loss", "lr", "eta_s"} <= set(r) for r in trains)
    assert sum(r["event"] == "epoch" for r in recs) == 2
    assert job.status().startswith("done")
    files = job.checkpoints()
    assert files[0].endswith("toy.safetensors") and files[-1].endswith("checkpoint.pt")
    assert "Epoch 2: Train Loss" in job.log_tail()
    fig = plots.loss_figure(recs)
    names = [t.name for t in fig.data]
    assert names == ["train loss (step)", "train loss (epoch)", "val loss (epoch)"]


def test_loss_figure_shows_validation_scores_on_their_own_axis():
    recs = [{"event": "train", "step": 1, "loss": 0.9}, {"event": "train", "step": 2, "loss": 0.7},
            {"event": "epoch", "step": 2, "train_loss": 0.8, "val_sdr": 3.5, "val_vocals": 3.5, "val_per_song": "x"},
            {"event": "epoch", "step": 4, "train_loss": 0.6, "val_sdr": 4.1, "val_vocals": 4.0}]
    fig = plots.loss_figure(recs)
    names = [t.name for t in fig.data]
    assert names == ["train loss (step)", "train loss (epoch)", "val sdr (epoch, right axis)",
                     "val vocals (epoch, right axis)"]
    assert list(fig.data[2].y) == [3.5, 4.1] and fig.data[2].yaxis == "y2"
    assert fig.layout.yaxis2.title.text == "validation score"
    assert not any(t.yaxis == "y2" for t in plots.loss_figure(recs[:2]).data)


def test_stop_sends_sigterm_and_solver_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_STEP_SLEEP", "0.15")
    out = tmp_path / "run"
    job = training.TrainJob([[sys.executable, str(TOY), "--out_dir", str(out), "--epochs", "50", "--no_mlflow",
                              "--log_every", "1"]], out, "toy")
    assert _wait(lambda: any(r["event"] == "train" for r in job.records()), 60), job.log_tail()
    assert job.status().startswith("running: step")
    job.stop(timeout=30)
    assert not job.running()
    assert job.records()[-1]["event"] == "stopped"
    assert job.status().startswith("stopped at step")
    assert job.checkpoints() == [str(out / "checkpoint.pt")]
    view = training.RunView(out)
    assert not view.running() and view.status().startswith("watching") and "stopped" in view.status()
    with pytest.raises(ValueError, match="not started from this tab"):
        view.stop()
    with pytest.raises(ValueError, match="not a training run folder"):
        training.RunView(tmp_path)


def test_read_progress_skips_a_half_written_line(tmp_path):
    p = tmp_path / "progress.jsonl"
    p.write_text('{"event": "start", "step": 0}\n{"event": "train", "step": 1, "loss": 0.5}\n{"event": "tr')
    assert [r["event"] for r in training.read_progress(p)] == ["start", "train"]
    assert training.read_progress(tmp_path / "missing.jsonl") == []


def test_commands_for_a_real_trainer(tmp_path):
    trainers = training.available_trainers()
    if not trainers:
        pytest.skip("no trainer in this checkout yet")
    name = next(iter(trainers))
    spec = training.trainer_spec(name)
    cmd = training.build_command(name, out_dir=tmp_path, data=str(tmp_path), params={"--epochs": 2.0, "--bogus": 1},
                                 nproc=1, extra="--seed 3")
    assert cmd[1].endswith("launch.py") and cmd[2:4] == ["train", name]
    assert cmd[cmd.index("--epochs") + 1] == "2" and "--bogus" not in cmd and cmd[-2:] == ["--seed", "3"]
    if spec.data_flag:
        assert cmd[cmd.index(spec.data_flag) + 1] == str(tmp_path)
    ddp = training.build_command(name, out_dir=tmp_path, nproc=2)
    assert ddp[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def test_stop_under_torchrun_checkpoints_every_rank(tmp_path, monkeypatch):
    """Two DDP processes (gloo): SIGTERM to the process group stops both ranks cleanly."""
    monkeypatch.setenv("TOY_STEP_SLEEP", "0.15")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(TOY),
           "--out_dir", str(out), "--epochs", "50", "--no_mlflow", "--log_every", "1"]
    job = training.TrainJob([cmd], out, "toy")
    assert _wait(lambda: any(r["event"] == "train" for r in job.records()), 120), job.log_tail()
    assert job.records()[0]["world_size"] == 2
    job.stop(timeout=60)
    assert not job.running()
    assert job.records()[-1]["event"] == "stopped", job.log_tail()
    assert (out / "checkpoint.pt").exists()
