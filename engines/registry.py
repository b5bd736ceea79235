"""Registry of named models shipped in ``assets/models``.

Each model has ``assets/models/<name>.json`` (one file per entry, so engines can be added without
editing a shared file) next to its weights::

    {"name": "vocals-cnn", "kind": "vocals", "file": "vocals-cnn.safetensors", "sha256": "...",
     "sample_rate": 22050, "default": true, "description": "...", "trained_on": "...",
     "config": {...}, "scores": {...}}

``resolve(name_or_path, kind)`` turns what a user typed (a registry name or a checkpoint path)
into a verified file path; ``default(kind)`` gives the entry the engines use when none is named.

An *ensemble* entry names other entries of its kind instead of a file, each with a weight::

    {"name": "vocals-ens", "kind": "vocals", "members": [{"name": "vocals-cnn", "weight": 0.5},
     {"name": "vocals-bs", "weight": 0.5}], "default": true, ...}

``members(name_or_path, kind)`` gives them (``None`` for a single model); an engine that can average its
members' outputs (the vocals engine) asks it first; ``resolve`` refuses an ensemble.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import atomic_path
from .checkpoint import CheckpointError, file_sha256

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS / "models"


def _dir(models_dir: str | os.PathLike | None) -> Path:
    return Path(models_dir) if models_dir is not None else Path(os.environ.get("AUDIO_STUDIO_MODELS", MODELS_DIR))


def entries(kind: str | None = None, models_dir: str | os.PathLike | None = None) -> list[dict]:
    """All registry entries (optionally of one kind), sorted by name."""
    out = []
    for p in sorted(_dir(models_dir).glob("*.json")):
        try:
            e = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        if kind is None or e.get("kind") == kind:
            out.append(e)
    return out


def get(name: str, models_dir: str | os.PathLike | None = None) -> dict:
    for e in entries(models_dir=models_dir):
        if e.get("name") == name:
            return e
    names = ", ".join(e["name"] for e in entries(models_dir=models_dir)) or "none"
    raise CheckpointError(f"No model named '{name}' in the registry (available: {names}).")


def default(kind: str, models_dir: str | os.PathLike | None = None) -> dict:
    """The default entry of ``kind`` (the one marked ``default``, else the only one)."""
    es = entries(kind, models_dir)
    if not es:
        raise CheckpointError(f"No {kind} model is registered; train one with "
                              f"'python launch.py train {kind} ...' or pass --checkpoint.")
    marked = [e for e in es if e.get("default")]
    return (marked or es)[0]


def resolve(name_or_path: str | os.PathLike | None, kind: str, *, verify: bool = True,
            models_dir: str | os.PathLike | None = None) -> Path:
    """A checkpoint path from a registry name, a file path, or ``None`` (the kind's default)."""
    if name_or_path is not None and Path(name_or_path).is_file():
        return Path(name_or_path)
    if name_or_path is not None and (os.sep in str(name_or_path) or str(name_or_path).endswith(".safetensors")):
        raise CheckpointError(f"Checkpoint not found: '{name_or_path}'.")
    entry = default(kind, models_dir) if name_or_path is None else get(str(name_or_path), models_dir)
    if entry.get("kind") != kind:
        raise CheckpointError(f"'{entry['name']}' is a {entry.get('kind')} model, not a {kind} model.")
    if entry.get("members"):
        names = ", ".join(str(m.get("name") if isinstance(m, dict) else m) for m in entry["members"])
        raise CheckpointError(f"'{entry['name']}' is an ensemble of {names}, not one checkpoint.")
    path = _dir(models_dir) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"The file of model '{entry['name']}' is missing: '{path}'.")
    if verify and entry.get("sha256") and file_sha256(path) != entry["sha256"]:
        raise CheckpointError(f"The file of model '{entry['name']}' does not match its registered sha256.")
    return path


_OPTIONAL: dict = {}


def _optional_key(kind: str, name: str | None) -> tuple[str, str, str]:
    return kind, name or "", str(_dir(None))


def load_optional(kind: str, expected: tuple, name: str | None = None):
    """The model ``name`` (``None``: the default) of ``kind``, loaded once per models folder and cached (in eval mode), or ``None``
    when no such model is registered (the caller then falls back to its hand-made method). ``expected``: the
    classes the checkpoint may hold."""
    key = _optional_key(kind, name)
    if key not in _OPTIONAL:
        from .checkpoint import load_model

        try:
            path = resolve(name, kind)
        except CheckpointError:  # none shipped
            _OPTIONAL[key] = None
        else:
            _OPTIONAL[key] = load_model(path, expected=expected).eval()
    return _OPTIONAL[key]


def use_optional(kind: str, model, name: str | None = None) -> None:
    """Make :func:`load_optional` answer ``model`` for ``kind``/``name`` from now on (a benchmark measuring a
    checkpoint that is not registered)."""
    _OPTIONAL[_optional_key(kind, name)] = model


def members(name_or_path: str | os.PathLike | None, kind: str,
            models_dir: str | os.PathLike | None = None) -> list[tuple[str, float]] | None:
    """``[(member name, weight), ...]`` (weights summing to 1) when ``name_or_path`` (``None``: the kind's default)
    is an ensemble entry of ``kind``; ``None`` for a checkpoint path or a single model."""
    if name_or_path is not None and (Path(name_or_path).is_file() or os.sep in str(name_or_path)
                                     or str(name_or_path).endswith(".safetensors")):
        return None
    entry = default(kind, models_dir) if name_or_path is None else get(str(name_or_path), models_dir)
    if not entry.get("members"):
        return None
    if entry.get("kind") != kind:
        raise CheckpointError(f"'{entry['name']}' is a {entry.get('kind')} model, not a {kind} model.")
    out = _check_members(entry, models_dir)
    total = sum(w for _, w in out)
    return [(n, w / total) for n, w in out]


def _check_members(entry: dict, models_dir) -> list[tuple[str, float]]:
    ms = entry.get("members")
    if not isinstance(ms, list) or len(ms) < 2:
        raise CheckpointError(f"The ensemble '{entry.get('name')}' needs a list of at least two members.")
    out = []
    for m in ms:
        name, w = (m.get("name"), m.get("weight", 1.0)) if isinstance(m, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(w, (int, float)) or isinstance(w, bool) or not w > 0:
            raise CheckpointError(f"The ensemble '{entry.get('name')}' has a bad member {m!r} "
                                  "(each is {\"name\": ..., \"weight\": > 0}).")
        sub = get(name, models_dir)
        if sub.get("kind") != entry.get("kind") or sub.get("members"):
            raise CheckpointError(f"The ensemble '{entry.get('name')}' lists '{name}', which is not a single "
                                  f"{entry.get('kind')} model.")
        out.append((name, float(w)))
    return out


def register(entry: dict, models_dir: str | os.PathLike | None = None) -> Path:
    """Write (atomically) or replace the entry ``entry['name']``; fills in ``sha256`` (an ensemble entry, with
    ``members`` instead of ``file``, is checked against the entries it names). An entry marked ``default``
    unmarks the kind's previous default."""
    d = _dir(models_dir)
    for key in ("name", "kind") + (() if entry.get("members") else ("file",)):
        if key not in entry:
            raise ValueError(f"A registry entry needs '{key}'.")
    entry = dict(entry)
    if entry.get("members"):
        _check_members(entry, models_dir)
    else:
        entry["sha256"] = file_sha256(d / entry["file"])
    target = d / f"{entry['name']}.json"
    _write_entry(target, entry)
    if entry.get("default"):  # one default per kind: the others of its kind are no longer it
        for other in entries(entry["kind"], d):
            if other.get("default") and other.get("name") != entry["name"]:
                _write_entry(d / f"{other['name']}.json", {**other, "default": False})
    return target


def _write_entry(target: Path, entry: dict) -> None:
    with atomic_path(target) as tmp, open(tmp, "w") as f:
        json.dump(entry, f, indent=2, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------- CLI: `launch.py models`
HELP = "list the registered models, what trained them and their measured scores"


def add_arguments(parser) -> None:
    parser.add_argument("--kind", default=None, help="only models of this kind (query, vocals, fusion, timbre)")
    parser.add_argument("--json", action="store_true", help="print the entries as JSON")


def run(args) -> int:
    es = entries(args.kind)
    if args.json:
        print(json.dumps(es, indent=2))
        return 0
    if not es:
        print("No models registered.")
        return 0
    for e in es:
        flag = " (default)" if e.get("default") else ""
        if e.get("members"):
            what = "ensemble of " + " + ".join(f"{m.get('name')} x{m.get('weight', 1.0):g}" for m in e["members"])
        else:
            size = (MODELS_DIR / e["file"]).stat().st_size / 1e6 if (MODELS_DIR / e["file"]).exists() else 0
            what = f"{e['file']}  {size:.1f} MB"
        print(f"{e['name']}{flag}  [{e['kind']}]  {what}  sr={e.get('sample_rate', '-')}")
        if e.get("description"):
            print(f"    {e['description']}")
        if e.get("trained_on"):
            print(f"    trained on: {e['trained_on']}")
        if e.get("scores"):
            print("    scores: " + ", ".join(f"{k}={v}" for k, v in e["scores"].items()))
    return 0
