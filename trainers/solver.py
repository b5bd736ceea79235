"""The one training loop every trainer uses.

``Solver`` owns: the process group (via :mod:`trainers.distrib`), the DDP wrapper, the data
order, optimisation steps, resumable checkpoints (model, optimiser, scheduler, step, epoch,
position in the epoch, RNG states, history; written atomically), MLflow tracking, progress as
one JSON line per log step (stdout and ``<out_dir>/progress.jsonl``, read by the studio), a
progress bar on stderr, and a graceful stop on SIGTERM/SIGINT (checkpoint, then return).

A trainer supplies the model, the optimiser, a dataset and ``train_step(model, batch) ->
{"loss": tensor, other scalars...}``; optionally ``validate(model) -> {name: float}`` and
``on_epoch_end(epoch, train_means, val_means)`` (for its own log lines).

MLflow: runs are logged to ``$MLFLOW_TRACKING_URI`` when set (an ``http(s)://`` server), else to a
local file store ``<out_dir>/mlruns`` (mlflow-skinny needs ``MLFLOW_ALLOW_FILE_STORE=true`` for
that, which the solver sets). ``mlflow ui --backend-store-uri <out_dir>/mlruns`` shows it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from engines.atomic import atomic_path

from . import distrib

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
PROGRESS_NAME = "progress.jsonl"


@dataclass
class SolverConfig:
    """Loop settings shared by every trainer (the model's own hyper-parameters live elsewhere)."""

    out_dir: str
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 16
    ckpt_every: int = 200
    log_every: int = 10
    grad_clip: float | None = None
    seed: int = 0
    num_workers: int = 0
    experiment: str = "audio-studio"
    run_name: str | None = None
    mlflow: bool = True
    resume: bool = True
    progress_bar: bool = True
    scheduler_per: str = "step"  # "step" or "epoch"
    bf16: bool = False  # bfloat16 autocast around train_step (weights, gradients and optimiser stay float32)
    extra: dict = field(default_factory=dict)


def add_solver_arguments(parser, *, epochs: int | None = 10, batch_size: int = 16, ckpt_every: int = 200) -> None:
    """The loop flags every `train <model>` command shares."""
    g = parser.add_argument_group("training loop")
    g.add_argument("--out_dir", required=True, help="folder for checkpoints, progress.jsonl and mlruns")
    g.add_argument("--epochs", type=int, default=epochs, help="number of epochs")
    g.add_argument("--max_steps", type=int, default=None, help="stop after this many optimiser steps")
    g.add_argument("--batch_size", type=int, default=batch_size)
    g.add_argument("--ckpt_every", type=int, default=ckpt_every, help="checkpoint every N steps")
    g.add_argument("--log_every", type=int, default=10, help="log every N steps")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--num_workers", type=int, default=0, help="data-loading worker processes")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    g.add_argument("--no_resume", action="store_true", help="start over even if a checkpoint exists")
    g.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the training step (about 2x faster on CPUs with AVX512-BF16 or AMX "
                        "and on recent GPUs; slower on CPUs without them); weights and optimiser stay float32")
    g.add_argument("--no_mlflow", action="store_true", help="do not log to MLflow")
    g.add_argument("--experiment", default="audio-studio", help="MLflow experiment name")
    g.add_argument("--run_name", default=None, help="MLflow run name")


def config_from_args(args, **overrides) -> SolverConfig:
    if getattr(args, "threads", None):
        from engines.audio.limits import set_threads

        set_threads(args.threads)
    cfg = SolverConfig(out_dir=args.out_dir, epochs=args.epochs, max_steps=args.max_steps,
                       batch_size=args.batch_size, ckpt_every=args.ckpt_every, log_every=args.log_every,
                       seed=args.seed, num_workers=args.num_workers, experiment=args.experiment,
                       run_name=args.run_name, mlflow=not args.no_mlflow, resume=not args.no_resume,
                       bf16=args.bf16)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read a solver checkpoint (``weights_only``: loading runs no code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class Solver:
    """Runs the training loop for one model; see the module docstring."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: SolverConfig, *,
                 scheduler: Any = None, hparams: dict | None = None):
        distrib.init()
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = distrib.device()
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.hparams = hparams or {}
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.mlflow_run_id: str | None = None
        self._stop = False
        self._mlflow = None
        seed_everything(cfg.seed + distrib.rank())
        if cfg.resume and (self.out / CHECKPOINT_NAME).exists():
            self._restore(self.out / CHECKPOINT_NAME)
        self.ddp_model = distrib.wrap(self.model)

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def save_checkpoint(self) -> None:
        """Write the resumable state (rank 0 only), atomically."""
        if not distrib.is_main():
            return
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "rng": _rng_state(), "history": self.history, "hparams": _jsonable(self.hparams),
            "mlflow_run_id": self.mlflow_run_id,
        }
        _atomic_torch_save(state, self.checkpoint_path)

    def _restore(self, path: Path) -> None:
        state = load_training_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state.get("batch_in_epoch", 0)
        self.history = state.get("history", [])
        self.mlflow_run_id = state.get("mlflow_run_id")
        _set_rng_state(state["rng"])
        if distrib.is_main():
            logger.info("Resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)
            print(f"Resumed from {path} at step {self.step}, epoch {self.epoch + 1}", flush=True)

    # ------------------------------------------------------------------ logging
    def _start_mlflow(self) -> None:
        if not self.cfg.mlflow or not distrib.is_main():
            return
        try:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            import mlflow

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (self.out / "mlruns").resolve().as_uri()
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(self.cfg.experiment)
            run = mlflow.start_run(run_id=self.mlflow_run_id, run_name=self.cfg.run_name)
            if self.mlflow_run_id is None:
                params = {**{f"solver.{k}": v for k, v in asdict(self.cfg).items() if k != "extra"},
                          **_flatten(self.hparams)}
                mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            self.mlflow_run_id = run.info.run_id
            self._mlflow = mlflow
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            logger.warning("MLflow tracking disabled: %s", err)
            self._mlflow = None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log scalars to MLflow (rank 0; failures are warnings)."""
        if self._mlflow is None or not metrics:
            return
        try:
            self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step if step is not None else self.step)
        except Exception as err:  # noqa: BLE001
            logger.warning("MLflow log failed: %s", err)

    def emit(self, event: str, **fields) -> None:
        """One JSON progress line on stdout and in progress.jsonl (rank 0)."""
        if not distrib.is_main():
            return
        rec = {"event": event, "step": self.step, "epoch": self.epoch + 1, "time": round(time.time(), 3), **fields}
        line = json.dumps(_jsonable(rec))
        print(line, flush=True)
        with open(self.out / PROGRESS_NAME, "a") as f:
            f.write(line + "\n")

    # ------------------------------------------------------------------ loop
    def _on_signal(self, signum, _frame) -> None:
        logger.warning("Signal %d: stopping after this step (checkpoint first)", signum)
        self._stop = True

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def fit(self, dataset: Dataset, train_step: Callable[[torch.nn.Module, Any], dict],
            *, validate: Callable[[torch.nn.Module], dict] | None = None,
            on_epoch_end: Callable[[int, dict, dict], None] | None = None, collate_fn=None) -> dict:
        """Train until ``epochs`` or ``max_steps``; returns the last epoch's metrics.

        Returns ``{"stopped": True, ...}`` when interrupted by SIGTERM/SIGINT (after checkpointing).
        """
        cfg = self.cfg
        if cfg.epochs is None and cfg.max_steps is None:
            raise ValueError("Set epochs or max_steps.")
        loader = distrib.loader(dataset, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                num_workers=cfg.num_workers, collate_fn=collate_fn)
        steps_per_epoch = max(len(loader), 1)
        total = cfg.max_steps or steps_per_epoch * cfg.epochs
        if cfg.epochs is not None:
            total = min(total, steps_per_epoch * cfg.epochs)
        old_handlers = {}
        if hasattr(signal, "SIGTERM"):
            import threading

            if threading.current_thread() is threading.main_thread():
                for s in (signal.SIGTERM, signal.SIGINT):
                    old_handlers[s] = signal.signal(s, self._on_signal)
        self._start_mlflow()
        self.emit("start", total_steps=total, steps_per_epoch=steps_per_epoch, world_size=distrib.world_size())
        bar = None
        if cfg.progress_bar and distrib.is_main():
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, unit="step", file=sys.stderr, dynamic_ncols=True,
                       mininterval=1.0)
        t0, step0 = time.time(), self.step
        last: dict = {}
        try:
            while self.step < total and not self._stop:
                loader.sampler.set_epoch(self.epoch)
                sums: dict[str, float] = {}
                n = 0
                self.model.train()
                for i, batch in enumerate(loader):
                    if i < self.batch_in_epoch:
                        continue  # resuming inside an epoch: same order, skip what was done
                    scalars = self._one_step(batch, train_step)
                    self.batch_in_epoch = i + 1
                    for k, v in scalars.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{scalars['loss']:.4f}", epoch=self.epoch + 1)
                    if self.step % cfg.log_every == 0 or self.step == total:
                        rate = (self.step - step0) / max(time.time() - t0, 1e-9)
                        eta = (total - self.step) / rate if rate > 0 else None
                        self.emit("train", lr=self.lr(), eta_s=eta, total_steps=total, **scalars)
                        self.log_metrics({f"step_{k}": v for k, v in scalars.items()})
                    if self.step % cfg.ckpt_every == 0:
                        self.save_checkpoint()
                    if self._stop or self.step >= total:
                        break
                epoch_done = self.batch_in_epoch >= steps_per_epoch
                if self._stop and not epoch_done:
                    break
                if self.scheduler is not None and cfg.scheduler_per == "epoch":
                    self.scheduler.step()
                means = distrib.average({k: v / max(n, 1) for k, v in sums.items()}, float(n))
                val = {}
                if validate is not None and epoch_done:
                    self.model.eval()
                    with torch.no_grad():
                        val = validate(distrib.unwrap(self.ddp_model)) or {}
                    self.model.train()
                last = {**{f"train_{k}": v for k, v in means.items()},
                        **{f"val_{k}": v for k, v in val.items()}, "learning_rate": self.lr()}
                self.history.append({"epoch": self.epoch + 1, "step": self.step, **last})
                self.log_metrics(last, step=self.epoch + 1)
                if distrib.is_main() and on_epoch_end is not None:
                    on_epoch_end(self.epoch + 1, means, val)
                self.emit("epoch", **last)
                if epoch_done:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                self.save_checkpoint()
            self.save_checkpoint()
            stopped = self._stop and self.step < total
            self.emit("stopped" if stopped else "done", **last)
            return {**last, "stopped": stopped, "step": self.step}
        finally:
            if bar is not None:
                bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self._mlflow is not None:
                try:
                    self._mlflow.end_run()
                except Exception:  # noqa: BLE001
                    pass
            distrib.barrier()

    def _one_step(self, batch, train_step) -> dict[str, float]:
        batch = _to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            out = train_step(self.ddp_model, batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The loss became {loss.item()} at step {self.step}.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None and self.cfg.scheduler_per == "step":
            self.scheduler.step()
        self.step += 1
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}

    def export(self, path: str | os.PathLike, metadata: dict | None = None) -> Path | None:
        """Write the inference checkpoint (class, kwargs, weights, metadata) for ``assets/``."""
        if not distrib.is_main():
            return None
        from engines.checkpoint import save_model

        meta = {"hparams": _jsonable(self.hparams), "step": self.step, "epochs": self.epoch,
                "history": self.history[-5:], **(metadata or {})}
        return save_model(self.model, path, metadata=meta)


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return str(x)


# ------------------------------------------------------------------------------------------ schedules
def total_steps(n_items: int, batch_size: int, *, epochs: int | None = None, max_steps: int | None = None,
                world_size: int | None = None) -> int:
    """The number of optimiser steps a run takes: ``max_steps``, capped by ``epochs`` full passes over
    ``n_items`` in batches of ``batch_size`` per process (the same count :meth:`Solver.fit` uses)."""
    import math

    ws = max(world_size if world_size is not None else distrib.world_size(), 1)
    per_epoch = max(1, math.ceil(n_items / (batch_size * ws)))
    if max_steps is None and epochs is None:
        raise ValueError("Set epochs or max_steps.")
    total = max_steps or per_epoch * epochs
    if epochs is not None:
        total = min(total, per_epoch * epochs)
    return int(total)


def warmup_cosine(opt, total: int, warmup: int, floor: float = 0.05):
    """``LambdaLR``: linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``floor`` at ``total``."""
    import math

    import torch

    warm, total = max(1, int(warmup)), max(1, int(total))

    def at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return float(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

    return torch.optim.lr_scheduler.LambdaLR(opt, at)


def one_cycle(opt, max_lr: float, total: int, pct_start: float):
    """``OneCycleLR`` over ``total`` steps (at least 2)."""
    import torch

    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=max(int(total), 2), pct_start=pct_start)


def script_main(prog: str, help_: str, add_arguments: Callable, run: Callable, argv: list[str] | None = None) -> int:
    """A trainer module's own entry (``python trainers/<x>.py ...``): its parser (``add_arguments``, the one
    ``launch.py train <x>`` builds too), INFO logging, ``run(args)``."""
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog=prog, description=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    return int(run(p.parse_args(argv)) or 0)
