"""Training jobs for the Train tab: build the `launch.py train ...` command from a trainer's own
flags, run it as a subprocess (torchrun when more than one process), tail its log and its
``progress.jsonl``, stop it with SIGTERM (the solver checkpoints and exits), list checkpoints.

No UI code here, so it is testable without a browser.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch.py"
#: trainer -> registry kind of the model it exports
KIND_OF = {"query": "query", "vocals": "vocals", "fusion": "fusion", "timbre": "timbre"}
#: trainer -> the corpus kind (subfolder of `launch.py corpus --out DIR`) it trains on
CORPUS_KIND = {"query": "clips", "vocals": "songs", "fusion": "fusion", "timbre": "timbre"}
#: option names that hold the training data, in the order they are looked for
DATA_FLAGS = ("--data", "--dataset_folder", "--dataset", "--data_dir", "--corpus", "--root")
LR_FLAGS = ("--lr", "--learning_rate", "--fix_learning_rate")
#: the main hyper-parameters the tab shows (when the trainer has the flag)
PROGRESS = "progress.jsonl"
MAIN_FLAGS = ("--epochs", "--max_steps", "--batch_size", "--threads", "--ckpt_every", "--log_every")


def runs_root() -> Path:
    return Path(os.environ.get("AUDIO_STUDIO_RUNS", ROOT / "runs" / "studio"))


def available_trainers() -> dict[str, str]:
    """``train <model>`` names in this checkout -> one-line help."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import launch

    return {name: help_ for name, (_mod, help_) in launch.available(launch.TRAINERS).items()}


def _command_parser(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    p = argparse.ArgumentParser(add_help=False)
    module.add_arguments(p)
    return p


@dataclass
class TrainerSpec:
    """What the tab needs to know about one trainer's command line."""

    name: str
    options: dict[str, argparse.Action]
    data_flag: str | None = None  # an option such as --data, or "" for a positional argument
    lr_flag: str | None = None
    defaults: dict[str, object] = field(default_factory=dict)

    def has(self, flag: str) -> bool:
        return flag in self.options


def trainer_spec(name: str) -> TrainerSpec:
    import launch

    module, _ = launch.TRAINERS[name]
    parser = _command_parser(module)
    options: dict[str, argparse.Action] = {}
    positional = None
    for a in parser._actions:  # noqa: SLF001 - argparse has no public introspection
        for s in a.option_strings:
            options[s] = a
        if not a.option_strings and positional is None:
            positional = a
    data_flag = next((f for f in DATA_FLAGS if f in options), None)
    if data_flag is None and positional is not None:
        data_flag = ""
    lr_flag = next((f for f in LR_FLAGS if f in options), None)
    defaults = {f: options[f].default for f in (*MAIN_FLAGS, *(LR_FLAGS)) if f in options}
    return TrainerSpec(name, options, data_flag, lr_flag, defaults)


def corpus_spec() -> dict[str, str] | None:
    """How to call the `corpus` command: its output flag and kind flag (None when absent)."""
    import launch

    if "corpus" not in launch.available(launch.COMMANDS):
        return None
    p = _command_parser(launch.COMMANDS["corpus"][0])
    opts = {s: a for a in p._actions for s in a.option_strings}  # noqa: SLF001
    pos = [a for a in p._actions if not a.option_strings]  # noqa: SLF001
    out = next((f for f in ("--out", "--out_dir", "--output", "--root") if f in opts), "" if pos else None)
    kinds = next((f for f in ("--kinds", "--kind", "--only") if f in opts), None)
    return {"out": out, "kinds": kinds, "kinds_nargs": getattr(opts.get(kinds), "nargs", None) if kinds else None}


def build_command(name: str, *, out_dir: str | os.PathLike, data: str | None = None, params: dict | None = None,
                  nproc: int = 1, extra: str = "") -> list[str]:
    """The argv that trains ``name`` (``python launch.py train name ...``, via torchrun when nproc > 1)."""
    spec = trainer_spec(name)
    args: list[str] = []
    if data:
        if spec.data_flag == "":
            args.append(str(data))
        elif spec.data_flag:
            args += [spec.data_flag, str(data)]
        else:
            raise ValueError(f"The {name} trainer takes no dataset folder option; use the extra arguments.")
    args += ["--out_dir", str(out_dir)]
    for flag, value in (params or {}).items():
        if value is None or value == "":
            continue
        if flag == "lr":
            flag = spec.lr_flag
            if flag is None:
                continue
        if not spec.has(flag):
            continue
        if isinstance(value, float) and value.is_integer() and spec.options[flag].type is int:
            value = int(value)
        args += [flag, str(value)]
    extra_args = shlex.split(extra or "")
    if spec.has("--export") and "--export" not in extra_args:
        args += ["--export", str(Path(out_dir) / f"{name}.safetensors")]  # the engines load exported models
    args += extra_args
    if nproc > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
                str(LAUNCH)]
    else:
        head = [sys.executable, str(LAUNCH)]
    return head + ["train", name] + args


def corpus_command(out: str | os.PathLike, kind: str | None = None, minutes: float | None = None) -> list[str]:
    """``launch.py corpus --out OUT [--kinds KIND] [--minutes M]``; the kind lands in ``OUT/KIND``."""
    spec = corpus_spec()
    if spec is None:
        raise ValueError("The corpus renderer (`launch.py corpus`) is not in this checkout.")
    cmd = [sys.executable, str(LAUNCH), "corpus"]
    cmd += [str(out)] if spec["out"] == "" else [spec["out"], str(out)]
    if kind and spec["kinds"]:
        cmd += [spec["kinds"], kind]
    if minutes:
        cmd += ["--minutes", f"{float(minutes):g}"]
    return cmd


class TrainJob:
    """One training subprocess (and optionally the corpus rendering before it)."""

    def __init__(self, commands: list[list[str]], out_dir: str | os.PathLike, model: str):
        self.commands = commands
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.log_path = self.out_dir / "train.log"
        self.started = time.time()
        self.stopping = False
        script = " && ".join(shlex.join(c) for c in commands)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_ALLOW_FILE_STORE": "true"}
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"$ {script}\n".encode())
            log.flush()
            # exec: a single command becomes the process itself (signals reach it directly)
            self.proc = subprocess.Popen(["bash", "-c", ("exec " if len(commands) == 1 else "") + script],
                                         cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    @property
    def progress_path(self) -> Path:
        return self.out_dir / "progress.jsonl"

    def running(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> str:
        rc = self.proc.poll()
        recs = self.records()
        last = recs[-1] if recs else {}
        if rc is None:
            if self.stopping:
                return "stopping (writing a checkpoint)"
            if last.get("event") == "train":
                eta = last.get("eta_s")
                eta_s = f", about {eta:.0f} s left" if isinstance(eta, (int, float)) else ""
                return (f"running: step {last.get('step')}/{last.get('total_steps', '?')}, "
                        f"loss {last.get('loss', float('nan')):.4g}{eta_s}")
            return f"running ({time.time() - self.started:.0f} s)"
        if last.get("event") == "stopped":
            return f"stopped at step {last.get('step')} (checkpoint saved; Start again resumes)"
        if rc == 0:
            return f"done: step {last.get('step', '?')}" if last else "finished"
        if rc < 0 or rc in (143, 130):
            return f"stopped by signal (exit {rc})"
        return f"failed (exit code {rc}); see the log"

    def stop(self, timeout: float = 0.0) -> None:
        """SIGTERM the whole process group: every rank checkpoints and exits."""
        if not self.running():
            return
        self.stopping = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if timeout:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        # a tqdm bar rewrites its line with \r: keep the last state of each line; the solver's JSON
        # progress records (plotted anyway) are shortened to one readable line each
        out = [_compact(ln.rsplit("\r", 1)[-1]) for ln in text.splitlines()]
        return "\n".join(out[-lines:])

    def records(self) -> list[dict]:
        return read_progress(self.progress_path)

    def checkpoints(self) -> list[str]:
        return list_checkpoints(self.out_dir)


class RunView:
    """A run folder the studio did not start (a CLI run, or one from before a page reload):
    the same read-only view as :class:`TrainJob` (status, log, curves, checkpoints), no Stop."""

    def __init__(self, out_dir: str | os.PathLike, model: str = "run"):
        self.out_dir = Path(out_dir)
        if not (self.out_dir / PROGRESS).exists():
            raise ValueError(f"'{self.out_dir}' holds no progress.jsonl: not a training run folder.")
        self.model = model if model != "run" else self.out_dir.name
        self.log_path = self.out_dir / "train.log"
        self.started = (self.out_dir / PROGRESS).stat().st_mtime

    progress_path = property(lambda self: self.out_dir / PROGRESS)
    records = TrainJob.records
    checkpoints = TrainJob.checkpoints

    def running(self) -> bool:
        recs = self.records()
        fresh = time.time() - self.progress_path.stat().st_mtime < 600
        return bool(recs) and recs[-1].get("event") not in ("done", "stopped") and fresh

    def status(self) -> str:
        recs = self.records()
        last = recs[-1] if recs else {}
        state = "running" if self.running() else (last.get("event") or "no records")
        loss = last.get("loss", last.get("train_loss"))
        loss_s = f", loss {loss:.4g}" if isinstance(loss, (int, float)) else ""
        return (f"watching (started outside this tab): {state} at step {last.get('step')}/"
                f"{last.get('total_steps', '?')}{loss_s}")

    def stop(self, timeout: float = 0.0) -> None:
        raise ValueError("This run was not started from this tab: stop it where it runs (Ctrl-C or SIGTERM).")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path.exists():
            return TrainJob.log_tail(self, lines)
        with open(self.progress_path) as f:
            tail = f.readlines()[-lines:]
        return "\n".join(_compact(ln.strip()) for ln in tail)


def _compact(line: str) -> str:
    if not line.startswith('{"event"'):
        return line
    try:
        r = json.loads(line)
    except json.JSONDecodeError:
        return line
    skip = {"event", "time", "step", "epoch", "total_steps", "steps_per_epoch"}
    vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                    if k not in skip and v is not None)
    return f"[{r['event']}] epoch {r.get('epoch')} step {r.get('step')}/{r.get('total_steps', '?')} {vals}".rstrip()


def read_progress(path: str | os.PathLike) -> list[dict]:
    """The JSON records of a progress.jsonl (a half-written last line is skipped)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    except FileNotFoundError:
        pass
    return out


def list_checkpoints(out_dir: str | os.PathLike) -> list[str]:
    """Exported models (``*.safetensors``) and the resumable ``checkpoint.pt`` of a run folder."""
    d = Path(out_dir)
    if not d.is_dir():
        return []
    files = sorted(d.rglob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    res = [str(p) for p in files]
    if (d / "checkpoint.pt").exists():
        res.append(str(d / "checkpoint.pt"))
    return res


class TrainManager:
    """The jobs of this studio process, by id (one object in the context, no module globals)."""

    def __init__(self) -> None:
        self.jobs: dict[str, TrainJob] = {}
        self._lock = threading.Lock()

    def add(self, job: "TrainJob | RunView") -> str:
        with self._lock:
            job_id = f"{job.model}-{len(self.jobs) + 1}-{int(job.started)}"
            self.jobs[job_id] = job
            return job_id

    def get(self, job_id: str | None) -> TrainJob | None:
        return self.jobs.get(job_id or "")

    def stop_all(self) -> None:
        for job in self.jobs.values():
            job.stop()
