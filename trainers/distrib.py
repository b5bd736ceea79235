"""Distributed helpers in the demucs style: each is a no-op at world size 1.

Launch a trainer with ``torchrun --nproc_per_node N ...``: the environment variables torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) select the process group; gloo on CPU, nccl on GPU.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init(backend: str | None = None) -> None:
    """Join the process group when started by torchrun with more than one process."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or dist.is_initialized():
        return
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    logger.info("DDP: rank %d of %d (%s)", rank(), world_size(), backend)


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """Wrap in DistributedDataParallel when distributed."""
    if world_size() <= 1 or not dist.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device().index] if device().type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def average(metrics: dict[str, float], count: float = 1.0) -> dict[str, float]:
    """Average scalar metrics over processes, weighted by ``count``."""
    if world_size() <= 1 or not dist.is_initialized() or not metrics:
        return dict(metrics)
    keys = sorted(metrics)
    t = torch.tensor([metrics[k] * count for k in keys] + [count], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(t[i] / t[-1]) for i, k in enumerate(keys)}


def barrier() -> None:
    if world_size() > 1 and dist.is_initialized():
        dist.barrier()


def loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, num_workers: int = 0,
           drop_last: bool = False, collate_fn=None) -> DataLoader:
    """A DataLoader whose order depends only on ``(seed, epoch)``; sharded across processes."""
    sampler = DistributedSampler(dataset, num_replicas=max(world_size(), 1), rank=rank(), shuffle=shuffle,
                                 seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last, collate_fn=collate_fn)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
