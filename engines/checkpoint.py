"""Self-describing model checkpoints (safetensors + JSON header; loading runs no code).

A checkpoint holds the model's class (``"package.module:Class"``), its constructor kwargs, a
format version, free-form metadata (training data, config, scores) and the weights. A SHA-256
digest over the header and every tensor is stored too, so ``load_model`` refuses a file whose
weights or header were changed after saving.

Usage::

    @capture_init
    class Net(nn.Module):
        def __init__(self, hidden: int = 32): ...

    save_model(Net(hidden=8), "net.safetensors", metadata={"trained_on": "corpus v1"})
    net = load_model("net.safetensors")
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path

FORMAT_VERSION = 1
_HEADER_KEY = "audio_studio"
#: Only classes under these packages may be rebuilt from a checkpoint.
ALLOWED_PREFIXES = ("engines.", "trainers.")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not hold what the caller expects."""


class TamperedCheckpointError(CheckpointError):
    """The checkpoint's digest does not match its content."""


def capture_init(cls):
    """Class decorator recording the constructor's keyword arguments in ``self._init_kwargs``."""
    init = cls.__init__
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        params.pop("self", None)
        init(self, *args, **kwargs)
        self._init_kwargs = params

    cls.__init__ = __init__
    return cls


def class_path(obj_or_cls: Any) -> str:
    cls = obj_or_cls if inspect.isclass(obj_or_cls) else type(obj_or_cls)
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str):
    module, _, name = path.partition(":")
    if not module.startswith(ALLOWED_PREFIXES):
        raise CheckpointError(f"Refusing to load class '{path}': not an Audio Studio model.")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"The checkpoint needs '{path}', which this version does not have.") from err
    return obj


def _digest(header: dict, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: nn.Module, path: str | os.PathLike, *, metadata: dict | None = None,
               kwargs: dict | None = None) -> Path:
    """Atomically write ``model`` to ``path`` (``.safetensors``).

    ``kwargs`` defaults to what :func:`capture_init` recorded; a model without either raises.
    """
    from safetensors.torch import save_file

    if kwargs is None:
        kwargs = getattr(model, "_init_kwargs", None)
        if kwargs is None:
            raise CheckpointError(f"{class_path(model)} was not decorated with @capture_init; pass kwargs=.")
    header = {"klass": class_path(model), "kwargs": kwargs, "version": FORMAT_VERSION,
              "metadata": metadata or {}}
    json.dumps(header)  # fail early on non-JSON kwargs/metadata
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    digest = _digest(header, tensors)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={_HEADER_KEY: json.dumps(header), "sha256": digest})
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return ``(header, tensors)`` after verifying the digest."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: '{path}'.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad file
        raise CheckpointError(f"'{path.name}' is not a readable Audio Studio checkpoint ({err}).") from err
    if _HEADER_KEY not in meta:
        raise CheckpointError(f"'{path.name}' is a safetensors file without an Audio Studio header.")
    try:
        header = json.loads(meta[_HEADER_KEY])
    except json.JSONDecodeError as err:
        raise TamperedCheckpointError(f"'{path.name}' has a damaged header.") from err
    if _digest(header, tensors) != meta.get("sha256"):
        raise TamperedCheckpointError(f"'{path.name}' was modified after it was saved (digest mismatch).")
    if header.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"'{path.name}' uses checkpoint format {header['version']}; "
                              f"this version reads up to {FORMAT_VERSION}.")
    return header, tensors


def read_header(path: str | os.PathLike) -> dict:
    """The checkpoint's header (class, kwargs, version, metadata), verified."""
    return read_checkpoint(path)[0]


def load_model(path: str | os.PathLike, *, expected: type | tuple[type, ...] | None = None) -> nn.Module:
    """Rebuild the model stored in ``path`` in eval mode.

    Args:
        expected: class(es) the model must be an instance of; a checkpoint of another kind raises
            :class:`CheckpointError` with a readable message.
    """
    header, tensors = read_checkpoint(path)
    cls = _import_class(header["klass"])
    if expected is not None and not (inspect.isclass(cls) and issubclass(cls, expected)):
        names = ", ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
        raise CheckpointError(f"'{Path(path).name}' holds a {cls.__name__}, not a {names} model.")
    model = cls(**header["kwargs"])
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"'{Path(path).name}' does not match {cls.__name__}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}.")
    model.eval()
    model.checkpoint_metadata = header.get("metadata", {})
    return model
