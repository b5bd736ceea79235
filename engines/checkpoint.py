"""Self-describing model checkpoints (safetensors + JSON header; loading runs no code).

A checkpoint holds the model's class (``"package.module:Class"``), its constructor kwargs, a
format version, free-form metadata (training data, config, scores) and the weights, in one
``.safetensors`` file (no pickle anywhere).

What protects a loader from a hostile file (say, one uploaded to the studio):

* **the class allow-list**: only the classes in :data:`MODEL_CLASSES` (``nn.Module`` subclasses
  under ``engines.``/``trainers.``) are rebuilt; the class path is checked before anything is imported;
* **size limits**: the file is refused above ``AUDIO_STUDIO_MAX_CHECKPOINT_MB`` (default 512)
  before it is read, the constructor kwargs must match the class's signature and its
  ``CHECKPOINT_BOUNDS`` (a kwarg without a declared bound gets a small generic one), and the model
  is first built on the ``meta`` device (no memory): more than ``AUDIO_STUDIO_MAX_PARAMS``
  (default 100 M) tensor elements, or tensor names/shapes other than the file's, refuse the file
  before any real memory is allocated or any tensor is read;
* the weights are read only after those checks, then the real model is built and filled.

The stored SHA-256 digest over header and tensors detects *damage* (a truncated copy, flipped bits,
an edited header), not tampering: anyone can recompute it for a file they wrote. Trust comes from
the checks above (and, for shipped models, from the registry's file sha256), not from the digest.

A class that cannot be built on the ``meta`` device (it computes with tensor values in
``__init__``) sets ``CHECKPOINT_META_BUILD = False``; it is then built for real after the bounds
and the file's tensor sizes are checked, and compared with the file before the weights are loaded.

Usage::

    @capture_init
    class Net(nn.Module):
        CHECKPOINT_BOUNDS = {"hidden": Int(1, 4096)}

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
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path

FORMAT_VERSION = 1
_HEADER_KEY = "audio_studio"
#: Only classes under these packages may be rebuilt from a checkpoint ...
ALLOWED_PREFIXES = ("engines.", "trainers.")
#: ... and only these ones (checked on the class path, before anything is imported).
MODEL_CLASSES = frozenset({
    "engines.vocals.model:VocalMaskCNN",
    "engines.vocals.bandsplit:BandSplitSeparator",
    "engines.separation.model:QueryNet",
    "engines.timbre.model:TimbreTransfer",
    "engines.timbre.synth_model:TimbreSynth",
    "engines.fusion.model:CascadeFusion",
    "engines.fusion.downbeat:DownbeatNet",
    "engines.fusion.frame_beats:FrameBeatNet",
    "engines.audio.key:KeyNet",
    "engines.testing:TinyNet",
})
DEFAULT_MAX_CHECKPOINT_MB = 512
DEFAULT_MAX_PARAMS = 100_000_000


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not hold what the caller expects."""


class TamperedCheckpointError(CheckpointError):
    """The checkpoint's digest does not match its content (a damaged or edited file)."""


DamagedCheckpointError = TamperedCheckpointError


# --------------------------------------------------------------------------- kwarg bounds
class Bound:
    """A rule for one constructor kwarg read from a checkpoint header (JSON values only)."""

    def __init__(self, *, none_ok: bool = False):
        self.none_ok = none_ok

    def problem(self, value: Any) -> str | None:
        """``None`` when ``value`` is allowed, else what is wrong with it (a short phrase)."""
        if value is None:
            return None if self.none_ok else "must not be null"
        return self._problem(value)

    def _problem(self, value: Any) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Int(Bound):
    """An integer in ``[lo, hi]``."""

    def __init__(self, lo: int, hi: int, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def _problem(self, v):
        if not _is_int(v):
            return "must be an integer"
        if not self.lo <= v <= self.hi:
            return f"is {v}, outside {self.lo}..{self.hi}"
        return None


class Float(Bound):
    """A finite number in ``[lo, hi]``."""

    def __init__(self, lo: float, hi: float, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def _problem(self, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return "must be a finite number"
        if not self.lo <= v <= self.hi:
            return f"is {v}, outside {self.lo}..{self.hi}"
        return None


class Bool(Bound):
    def _problem(self, v):
        return None if isinstance(v, bool) else "must be true or false"


class Str(Bound):
    """A string of at most ``max_len`` characters."""

    def __init__(self, max_len: int = 256, **kw):
        super().__init__(**kw)
        self.max_len = max_len

    def _problem(self, v):
        if not isinstance(v, str):
            return "must be a string"
        return f"is {len(v)} characters long (at most {self.max_len})" if len(v) > self.max_len else None


class Ints(Bound):
    """A list of ``min_len..max_len`` integers, each in ``[lo, hi]``."""

    def __init__(self, lo: int, hi: int, max_len: int, min_len: int = 0, **kw):
        super().__init__(**kw)
        self.lo, self.hi, self.max_len, self.min_len = lo, hi, max_len, min_len

    def _problem(self, v):
        if not isinstance(v, (list, tuple)):
            return "must be a list of integers"
        if not self.min_len <= len(v) <= self.max_len:
            return f"has {len(v)} items ({self.min_len}..{self.max_len} allowed)"
        bad = [x for x in v if not _is_int(x) or not self.lo <= x <= self.hi]
        if bad:
            return f"holds {bad[0]!r}; each item must be an integer in {self.lo}..{self.hi}"
        return None


class Strs(Bound):
    """A list of at most ``max_items`` strings of at most ``max_len`` characters."""

    def __init__(self, max_items: int, max_len: int = 256, **kw):
        super().__init__(**kw)
        self.max_items, self.max_len = max_items, max_len

    def _problem(self, v):
        if not isinstance(v, (list, tuple)):
            return "must be a list of strings"
        if len(v) > self.max_items:
            return f"has {len(v)} items (at most {self.max_items})"
        if any(not isinstance(x, str) or len(x) > self.max_len for x in v):
            return f"must hold strings of at most {self.max_len} characters"
        return None


class Json(Bound):
    """Any JSON value of at most ``max_bytes`` (serialised), optionally with every integer inside
    in ``[-max_int, max_int]`` and every list at most ``max_items`` long (the generic rule)."""

    def __init__(self, max_bytes: int, max_int: int | None = None, max_items: int | None = None, **kw):
        super().__init__(**kw)
        self.max_bytes, self.max_int, self.max_items = max_bytes, max_int, max_items

    def _problem(self, v):
        size = len(json.dumps(v))
        if size > self.max_bytes:
            return f"is {size} bytes of JSON (at most {self.max_bytes})"
        stack = [v]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                stack += list(x.values())
            elif isinstance(x, (list, tuple)):
                if self.max_items is not None and len(x) > self.max_items:
                    return f"holds a list of {len(x)} items (at most {self.max_items})"
                stack += list(x)
            elif _is_int(x) and self.max_int is not None and abs(x) > self.max_int:
                return f"holds {x}, outside -{self.max_int}..{self.max_int}"
            elif isinstance(x, float) and not math.isfinite(x):
                return "holds a non-finite number"
        return None


#: The rule for a kwarg its class declares no bound for.
GENERIC_BOUND = Json(max_bytes=4096, max_int=4096, max_items=64, none_ok=True)


# --------------------------------------------------------------------------- saving
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


def _digest(header: dict, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the header and every tensor: detects damage, not tampering (see module doc)."""
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


def _write(path: Path, header: dict, tensors: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={_HEADER_KEY: json.dumps(header), "sha256": _digest(header, tensors)})
    return path


def save_model(model: nn.Module, path: str | os.PathLike, *, metadata: dict | None = None,
               kwargs: dict | None = None) -> Path:
    """Atomically write ``model`` to ``path`` (``.safetensors``).

    ``kwargs`` defaults to what :func:`capture_init` recorded; a model without either raises, and
    so does one of a :data:`MODEL_CLASSES` class whose kwargs :func:`load_model` would refuse.
    """
    if kwargs is None:
        kwargs = getattr(model, "_init_kwargs", None)
        if kwargs is None:
            raise CheckpointError(f"{class_path(model)} was not decorated with @capture_init; pass kwargs=.")
    if class_path(model) in MODEL_CLASSES:
        check_kwargs(type(model), json.loads(json.dumps(kwargs)), f"Saving '{Path(path).name}'")
    header = {"klass": class_path(model), "kwargs": kwargs, "version": FORMAT_VERSION,
              "metadata": metadata or {}}
    json.dumps(header)  # fail early on non-JSON kwargs/metadata
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return _write(Path(path), header, tensors)


# --------------------------------------------------------------------------- reading
def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise CheckpointError(f"{name} must be a number, not '{raw}'.") from None
    if not value > 0:
        raise CheckpointError(f"{name} must be positive, not '{raw}'.")
    return value


def max_checkpoint_mb() -> float:
    """The file size limit in MB (``AUDIO_STUDIO_MAX_CHECKPOINT_MB``, default 512)."""
    return _env_number("AUDIO_STUDIO_MAX_CHECKPOINT_MB", DEFAULT_MAX_CHECKPOINT_MB)


def max_params() -> int:
    """The limit on a model's tensor elements (``AUDIO_STUDIO_MAX_PARAMS``, default 100 M)."""
    return int(_env_number("AUDIO_STUDIO_MAX_PARAMS", DEFAULT_MAX_PARAMS))


def _open(path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The file's metadata and tensor shapes, after the size check; reads no tensor data."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: '{path}'.")
    size, cap_mb = path.stat().st_size, max_checkpoint_mb()
    if size > cap_mb * 2 ** 20:
        raise CheckpointError(f"'{path.name}' is {size / 2 ** 20:.3g} MB, over the {cap_mb:g} MB limit "
                              "for checkpoints (AUDIO_STUDIO_MAX_CHECKPOINT_MB).")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad file
        raise CheckpointError(f"'{path.name}' is not a readable Audio Studio checkpoint ({err}).") from err
    return meta, shapes


def _parse_header(path: Path, meta: dict) -> dict:
    if _HEADER_KEY not in meta:
        raise CheckpointError(f"'{path.name}' is a safetensors file without an Audio Studio header.")
    try:
        header = json.loads(meta[_HEADER_KEY])
    except json.JSONDecodeError as err:
        raise TamperedCheckpointError(f"'{path.name}' has a damaged header.") from err
    if (not isinstance(header, dict) or not isinstance(header.get("klass"), str)
            or not isinstance(header.get("kwargs", {}), dict) or not isinstance(header.get("metadata", {}), dict)
            or not _is_int(header.get("version", 0))):
        raise CheckpointError(f"'{path.name}' has a malformed Audio Studio header.")
    if header.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"'{path.name}' uses checkpoint format {header['version']}; "
                              f"this version reads up to {FORMAT_VERSION}.")
    return header


def _read_tensors(path: Path, meta: dict, header: dict) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - e.g. the file changed since _open
        raise CheckpointError(f"'{path.name}' is not a readable Audio Studio checkpoint ({err}).") from err
    if _digest(header, tensors) != meta.get("sha256"):
        raise TamperedCheckpointError(f"'{path.name}' is damaged or was modified after it was saved "
                                      "(digest mismatch).")
    return tensors


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return ``(header, tensors)`` after the size check and the digest check (builds no model)."""
    path = Path(path)
    meta, _ = _open(path)
    header = _parse_header(path, meta)
    return header, _read_tensors(path, meta, header)


def read_header(path: str | os.PathLike) -> dict:
    """The checkpoint's header (class, kwargs, version, metadata), digest-checked."""
    return read_checkpoint(path)[0]


# --------------------------------------------------------------------------- rebuilding
def _import_class(path: str):
    module, _, name = path.partition(":")
    if path not in MODEL_CLASSES or not module.startswith(ALLOWED_PREFIXES):
        raise CheckpointError(f"Refusing to load class '{path[:200]}': not an Audio Studio model.")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"The checkpoint needs '{path}', which this version does not have.") from err
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        raise CheckpointError(f"Refusing to load class '{path}': not an Audio Studio model.")
    return obj


def check_kwargs(cls: type, kwargs: dict, where: str = "The checkpoint") -> dict:
    """Validate ``kwargs`` against ``cls``'s constructor signature and ``CHECKPOINT_BOUNDS``.

    Raises :class:`CheckpointError` naming the first problem (unknown or missing kwarg, a value
    outside its bound); returns ``kwargs``.
    """
    sig = inspect.signature(cls.__init__)
    params = {n: p for n, p in list(sig.parameters.items())[1:]
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise CheckpointError(f"{where} gives {cls.__name__} unknown argument(s) "
                              f"{', '.join(repr(k[:64]) for k in unknown[:5])}.")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise CheckpointError(f"{where} lacks {cls.__name__} argument(s) {', '.join(map(repr, missing))}.")
    bounds = getattr(cls, "CHECKPOINT_BOUNDS", {})
    for k, v in kwargs.items():
        problem = bounds.get(k, GENERIC_BOUND).problem(v)
        if problem:
            raise CheckpointError(f"{where} asks for {cls.__name__} with {k} that {problem}.")
    return kwargs


def build_checked(cls: type, where: str = "The training options", **kwargs) -> nn.Module:
    """``cls(**kwargs)`` after :func:`check_kwargs`: a trainer refuses, before it allocates anything, a model
    that could not be loaded back from its exported checkpoint."""
    check_kwargs(cls, kwargs, where)
    return cls(**kwargs)


def _build(cls: type, kwargs: dict, where: str, device: str | None = None) -> nn.Module:
    try:
        if device is None:
            return cls(**kwargs)
        with torch.device(device):
            return cls(**kwargs)
    except Exception as err:  # noqa: BLE001 - any constructor failure means kwargs it cannot use
        raise CheckpointError(f"{where} cannot build {cls.__name__} from its stored arguments "
                              f"({type(err).__name__}: {str(err)[:200]}).") from err


def _compare(model: nn.Module, shapes: dict[str, tuple[int, ...]], cls: type, where: str) -> None:
    """Refuse a model above the element limit or whose state-dict names/shapes differ from ``shapes``."""
    sd = model.state_dict()
    n = sum(v.numel() for v in sd.values())
    cap = max_params()
    if n > cap:
        raise CheckpointError(f"{where} asks for a {cls.__name__} of {n / 1e6:.1f} M parameters, over the "
                              f"{cap / 1e6:g} M limit (AUDIO_STUDIO_MAX_PARAMS).")
    missing = [k for k in sd if k not in shapes]
    unexpected = [k for k in shapes if k not in sd]
    wrong = [f"{k} {list(shapes[k])} (model {list(v.shape)})" for k, v in sd.items()
             if k in shapes and tuple(v.shape) != shapes[k]]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:5]}"] if missing else []
        parts += [f"unexpected {unexpected[:5]}"] if unexpected else []
        parts += [f"other shapes: {', '.join(wrong[:3])}"] if wrong else []
        raise CheckpointError(f"{where} does not match {cls.__name__}: {'; '.join(parts)}.")


def load_model(path: str | os.PathLike, *, expected: type | tuple[type, ...] | None = None) -> nn.Module:
    """Rebuild the model stored in ``path`` in eval mode (see the module docstring for the checks).

    Args:
        expected: class(es) the model must be an instance of; a checkpoint of another kind raises
            :class:`CheckpointError` with a readable message.
    """
    path = Path(path)
    where = f"'{path.name}'"
    meta, shapes = _open(path)
    header = _parse_header(path, meta)
    cls = _import_class(header["klass"])
    if expected is not None and not issubclass(cls, expected):
        names = ", ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
        raise CheckpointError(f"{where} holds a {cls.__name__}, not a {names} model.")
    kwargs = check_kwargs(cls, header.get("kwargs", {}), where)
    on_meta = getattr(cls, "CHECKPOINT_META_BUILD", True)
    if on_meta:
        _compare(_build(cls, kwargs, where, "meta"), shapes, cls, where)
    else:
        n = sum(math.prod(s) for s in shapes.values())
        if n > max_params():
            raise CheckpointError(f"{where} holds {n / 1e6:.1f} M parameters, over the {max_params() / 1e6:g} M "
                                  "limit (AUDIO_STUDIO_MAX_PARAMS).")
    tensors = _read_tensors(path, meta, header)
    model = _build(cls, kwargs, where)
    if not on_meta:
        _compare(model, shapes, cls, where)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    model.checkpoint_metadata = header.get("metadata", {})
    return model
