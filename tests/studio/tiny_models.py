"""Tiny randomly initialised models of every engine in a private registry folder, so the studio
tests run every tab fast and do not depend on the shipped default models (AUDIO_STUDIO_MODELS)."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _save(model, d: Path, name: str, kind: str, sr: int, config: dict | None = None, meta: dict | None = None,
          default: bool = True, **extra) -> None:
    from engines.checkpoint import save_model
    from engines.registry import register

    save_model(model, d / f"{name}.safetensors", metadata={"test": True, **(meta or {})})
    register({"name": name, "kind": kind, "file": f"{name}.safetensors", "sample_rate": sr, "default": default,
              "description": f"tiny random {kind} model for the studio tests", "trained_on": "nothing (random)",
              "config": config or {}, "scores": {}, **extra}, models_dir=d)


def make_models_dir(d: Path) -> dict[str, str]:
    """Write what the engines in this checkout can use; returns {kind: error} for those that failed."""
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    failed: dict[str, str] = {}
    makers = {"query": _query, "vocals": _vocals, "fusion": _fusion, "timbre": _timbre}
    for kind, fn in makers.items():
        try:
            fn(d)
        except Exception as err:  # noqa: BLE001 - an engine still being written must not stop the others
            logger.warning("no tiny %s model: %s", kind, err)
            failed[kind] = f"{type(err).__name__}: {err}"
    return failed


def _query(d: Path) -> None:
    if not _has("engines.separation.model"):
        raise ModuleNotFoundError("engines.separation")
    from engines.testing import tiny_separation

    _save(tiny_separation(), d, "query-tiny", "query", 16000)


def _vocals(d: Path) -> None:
    if not _has("engines.vocals.model"):
        raise ModuleNotFoundError("engines.vocals")
    from engines.registry import register
    from engines.testing import tiny_vocals, tiny_vocals_bs

    net = tiny_vocals(width=8)
    _save(net, d, "vocals-tiny", "vocals", net.hparams["sample_rate"] if "sample_rate" in net.hparams else 22050)
    # as shipped: a four-stem band-split model beside the CNN, and the default an ensemble of the two
    _save(tiny_vocals_bs(), d, "vocals-bs-tiny", "vocals", 44100, default=False, stems=4)
    register({"name": "vocals-ens-tiny", "kind": "vocals", "default": True, "stems": 2, "combine": "mean",
              "sample_rate": 44100, "members": [{"name": "vocals-tiny", "weight": 0.5},
                                                {"name": "vocals-bs-tiny", "weight": 0.5}],
              "description": "tiny random vocals ensemble for the studio tests", "trained_on": "nothing (random)",
              "scores": {}}, models_dir=d)


def _fusion(d: Path) -> None:
    if not _has("engines.fusion.model"):
        raise ModuleNotFoundError("engines.fusion")
    from engines.testing import tiny_fusion

    _save(tiny_fusion(), d, "fusion-tiny", "fusion", 24000, meta={"codec": "builtin", "name": "fusion-tiny"})


def _timbre(d: Path) -> None:
    if not _has("engines.timbre.model"):
        raise ModuleNotFoundError("engines.timbre")
    from engines.testing import tiny_timbre, tiny_timbre_synth

    _save(tiny_timbre(), d, "timbre-tiny", "timbre", 22050, default=False)
    _save(tiny_timbre_synth(note_features=True), d, "timbre-synth-tiny", "timbre", 22050)  # the default kind, as shipped
