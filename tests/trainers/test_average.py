"""Checkpoint weight averaging (trainers.average)."""
from __future__ import annotations

import pytest
import torch

from engines.checkpoint import load_model, read_header, save_model
from engines.testing import TinyNet
from trainers.average import average, main


def _saved(tmp_path, name, seed, **kw):
    torch.manual_seed(seed)
    return save_model(TinyNet(**kw), tmp_path / f"{name}.safetensors", metadata={"kind": "test", "seed": seed})


def test_average_is_the_weighted_mean_and_keeps_the_header(tmp_path):
    a, b = _saved(tmp_path, "a", 0), _saved(tmp_path, "b", 1)
    out = average([a, b], tmp_path / "avg.safetensors", weights=[3, 1])
    ma, mb, mo = load_model(a), load_model(b), load_model(out)
    for (k, va), vb, vo in zip(ma.state_dict().items(), mb.state_dict().values(), mo.state_dict().values()):
        assert torch.allclose(vo, 0.75 * va + 0.25 * vb, atol=1e-6), k
    h = read_header(out)
    assert h["metadata"]["kind"] == "test" and [s["weight"] for s in h["metadata"]["averaged_from"]] == [3, 1]
    # equal weights from the command line; averaging a model with itself changes nothing
    assert main([str(tmp_path / "same.safetensors"), str(a), str(a)]) == 0
    for va, vs in zip(ma.state_dict().values(), load_model(tmp_path / "same.safetensors").state_dict().values()):
        assert torch.allclose(va, vs)


def test_average_refuses_mismatched_inputs(tmp_path):
    a, c = _saved(tmp_path, "a", 0), _saved(tmp_path, "c", 0, hidden=8)
    with pytest.raises(ValueError, match="constructor"):
        average([a, c], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="at least two"):
        average([a], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="weight"):
        average([a, a], tmp_path / "x.safetensors", weights=[1, 0])
    assert not (tmp_path / "x.safetensors").exists()
