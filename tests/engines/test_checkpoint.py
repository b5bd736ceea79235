import json

import pytest
import torch

from engines import registry
from engines.checkpoint import (CheckpointError, TamperedCheckpointError, load_model, read_checkpoint,
                                read_header, save_model)
from engines.testing import TinyNet


def test_save_load_identical_outputs(tmp_path):
    torch.manual_seed(0)
    m = TinyNet(in_dim=4, hidden=8)
    p = save_model(m, tmp_path / "m.safetensors", metadata={"trained_on": "nothing"})
    m2 = load_model(p)
    x = torch.randn(3, 4)
    assert torch.equal(m(x), m2(x))
    h = read_header(p)
    assert h["klass"] == "engines.testing:TinyNet" and h["kwargs"] == {"in_dim": 4, "hidden": 8, "out_dim": 1}
    assert h["version"] == 1 and m2.checkpoint_metadata["trained_on"] == "nothing"
    assert not m2.training


def test_batchnorm_scalar_int_buffers_roundtrip(tmp_path):
    m = torch.nn.BatchNorm1d(4)
    m(torch.randn(8, 4))  # num_batches_tracked becomes a 0-d int64 tensor
    p = save_model(m, tmp_path / "bn.safetensors", kwargs={"num_features": 4})
    _, tensors = read_checkpoint(p)
    assert int(tensors["num_batches_tracked"]) == 1 and tensors["num_batches_tracked"].dim() == 0


def test_tampered_file_is_refused(tmp_path):
    p = save_model(TinyNet(), tmp_path / "m.safetensors")
    data = bytearray(p.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor's bytes
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(TamperedCheckpointError, match="modified"):
        load_model(bad)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_model(tmp_path / "junk.safetensors")


def test_wrong_kind_and_disallowed_class(tmp_path):
    p = save_model(TinyNet(), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not a Linear model"):
        load_model(p, expected=torch.nn.Linear)
    with pytest.raises(CheckpointError, match="pass kwargs"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "l.safetensors")
    save_model(torch.nn.Linear(2, 2), tmp_path / "l.safetensors", kwargs={"in_features": 2, "out_features": 2})
    with pytest.raises(CheckpointError, match="not an Audio Studio model"):
        load_model(tmp_path / "l.safetensors")


def test_registry_resolve(tmp_path):
    save_model(TinyNet(), tmp_path / "tiny.safetensors")
    registry.register({"name": "tiny", "kind": "toy", "file": "tiny.safetensors", "default": True,
                       "scores": {"mse": 0.1}}, models_dir=tmp_path)
    assert registry.resolve(None, "toy", models_dir=tmp_path) == tmp_path / "tiny.safetensors"
    assert registry.resolve("tiny", "toy", models_dir=tmp_path).name == "tiny.safetensors"
    with pytest.raises(CheckpointError, match="not a vocals model"):
        registry.resolve("tiny", "vocals", models_dir=tmp_path)
    with pytest.raises(CheckpointError, match="No model named 'nope'"):
        registry.resolve("nope", "toy", models_dir=tmp_path)
    with pytest.raises(CheckpointError, match="No fusion model"):
        registry.resolve(None, "fusion", models_dir=tmp_path)
    (tmp_path / "tiny.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="sha256"):
        registry.resolve("tiny", "toy", models_dir=tmp_path)
    assert json.loads((tmp_path / "tiny.json").read_text())["scores"] == {"mse": 0.1}
