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


# --------------------------------------------------------------------------- hostile checkpoints
import glob  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from engines import checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(glob.glob(str(ROOT / "assets" / "models" / "*.safetensors")))


def _craft(path, klass, kwargs, tensors=None, version=1):
    """A checkpoint with a valid Audio Studio header and digest (anyone can write one)."""
    header = {"klass": klass, "kwargs": kwargs, "version": version, "metadata": {}}
    return checkpoint._write(Path(path), header, tensors if tensors is not None else {"w": torch.zeros(2)})


_BOMB_CHILD = r"""
import json, resource, sys, time
import torch
from engines.checkpoint import CheckpointError, load_model
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
base = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (base + (3 << 30), hard))  # a regression fails, not the machine
out = []
for path in sys.argv[1:]:
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        load_model(path)
        err = None
    except CheckpointError as e:
        err = str(e)
    except BaseException as e:
        err = "NOT REFUSED CLEANLY: " + type(e).__name__
    out.append({"path": path, "error": err, "seconds": time.perf_counter() - t0,
                "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0})
print(json.dumps(out))
"""


def test_bombs_are_refused_fast_without_allocating(tmp_path):
    vocals = {"n_bins": 513, "context": 25, "dilations": [1, 2, 4, 5], "hparams": None, "stem": []}
    bombs = [_craft(tmp_path / "bomb60000.safetensors", "engines.vocals.model:VocalMaskCNN",
                    {**vocals, "res_dims": [60000] * 4}),
             # inside every per-kwarg bound, but ~250 M parameters: stopped by the meta-device count
             _craft(tmp_path / "wide.safetensors", "engines.vocals.model:VocalMaskCNN",
                    {**vocals, "res_dims": [2048] * 8, "dilations": [1, 1, 1, 1, 2, 2, 2, 2]}),
             _craft(tmp_path / "fusion.safetensors", "engines.fusion.model:CascadeFusion",
                    {"d_model": 1024, "num_stages": 8, "num_transformer_layers": 8, "dim_feedforward": 4096})]
    assert sum(p.stat().st_size for p in bombs) < 20_000
    r = subprocess.run([sys.executable, "-c", _BOMB_CHILD, *map(str, bombs)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    res = {Path(x["path"]).name: x for x in json.loads(r.stdout)}
    assert "res_dims that holds 60000" in res["bomb60000.safetensors"]["error"]
    assert "over the 100 M limit" in res["wide.safetensors"]["error"]
    assert "over the 100 M limit" in res["fusion.safetensors"]["error"]
    for x in res.values():
        assert x["seconds"] < 2, x
        assert x["rss_kb"] < 100_000, x  # the 60000 bomb used to allocate ~43 GB


def test_every_int_kwarg_of_every_shipped_class_is_bounded(tmp_path):
    """Asking any loadable class (shipped, or a tiny test model of it) for 60000 of anything is refused before a model is built."""
    from engines.testing import tiny_timbre_synth, tiny_vocals_bs

    # classes no shipped model uses yet: their tiny test models stand in
    unshipped = [tiny_vocals_bs(tmp_path / "bs.safetensors"), tiny_timbre_synth(tmp_path / "synth.safetensors")]
    headers = [checkpoint.read_header(p) for p in [*SHIPPED, *unshipped]]
    assert {h["klass"] for h in headers} | {"engines.testing:TinyNet"} == set(checkpoint.MODEL_CLASSES)
    cases = [(h["klass"], h["kwargs"]) for h in headers]
    cases.append(("engines.testing:TinyNet", {"in_dim": 8, "hidden": 16, "out_dim": 1}))
    n = 0
    for klass, kwargs in cases:
        for k, v in kwargs.items():
            if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, list) and v
                                                                   and all(type(x) is int for x in v))):
                continue
            bomb = {**kwargs, k: 60000 if isinstance(v, int) else [60000] * len(v)}
            p = _craft(tmp_path / f"{n}.safetensors", klass, bomb)
            t0 = time.perf_counter()
            with pytest.raises(CheckpointError, match=f"with {k} that"):
                load_model(p)
            assert time.perf_counter() - t0 < 1
            n += 1
    assert n >= 20


def test_kwargs_checked_against_the_signature(tmp_path):
    p = _craft(tmp_path / "u.safetensors", "engines.testing:TinyNet", {"in_dim": 4, "evil": 1})
    with pytest.raises(CheckpointError, match="unknown argument.*'evil'"):
        load_model(p)
    with pytest.raises(CheckpointError, match="hidden that must be an integer"):
        load_model(_craft(tmp_path / "t.safetensors", "engines.testing:TinyNet", {"hidden": "16"}))
    with pytest.raises(CheckpointError, match="cannot build VocalMaskCNN from its stored arguments"):
        load_model(_craft(tmp_path / "rf.safetensors", "engines.vocals.model:VocalMaskCNN",
                          {"res_dims": [8, 8], "dilations": [1, 2]}))  # receptive field != context


def test_missing_required_kwarg(tmp_path, monkeypatch):
    class Needs(torch.nn.Module):
        def __init__(self, width: int):
            super().__init__()
            self.lin = torch.nn.Linear(width, 1)

    with pytest.raises(CheckpointError, match="lacks Needs argument.*'width'"):
        checkpoint.check_kwargs(Needs, {})
    checkpoint.check_kwargs(Needs, {"width": 3})


def test_class_outside_the_allow_list_is_refused_before_import(tmp_path):
    for klass in ("os:system", "engines.audio.io:load", "torch.nn:Linear", "trainers.timbre:TimbreTrainer",
                  "engines.vocals.model:ResidualUnit", "trainers.recipes.anything:X"):
        p = _craft(tmp_path / "c.safetensors", klass, {})
        with pytest.raises(CheckpointError, match="not an Audio Studio model"):
            load_model(p)
    assert "trainers.recipes.anything" not in sys.modules


def test_shape_mismatch_is_refused_before_reading_tensors(tmp_path, monkeypatch):
    good = TinyNet(in_dim=4, hidden=8).state_dict()
    bad = {**good, "net.0.weight": torch.zeros(9, 4)}
    p = _craft(tmp_path / "s.safetensors", "engines.testing:TinyNet", {"in_dim": 4, "hidden": 8}, bad)
    monkeypatch.setattr(checkpoint, "_read_tensors", lambda *a: pytest.fail("tensors read before the shape check"))
    with pytest.raises(CheckpointError, match=r"does not match TinyNet: other shapes: net.0.weight \[9, 4\]"):
        load_model(p)
    extra = _craft(tmp_path / "x.safetensors", "engines.testing:TinyNet", {"in_dim": 4, "hidden": 8},
                   {**good, "extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected \['extra'\]"):
        load_model(extra)
    fewer = _craft(tmp_path / "f.safetensors", "engines.testing:TinyNet", {"in_dim": 4, "hidden": 8},
                   {k: v for k, v in good.items() if k != "net.2.bias"})
    with pytest.raises(CheckpointError, match=r"missing \['net.2.bias'\]"):
        load_model(fewer)


def test_file_over_the_size_cap_is_refused_unread(tmp_path, monkeypatch):
    p = save_model(TinyNet(in_dim=64, hidden=64), tmp_path / "big.safetensors")  # ~17 KB
    monkeypatch.setenv("AUDIO_STUDIO_MAX_CHECKPOINT_MB", "0.01")
    import safetensors

    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("file opened before the size check"))
    for fn in (load_model, read_checkpoint, read_header):
        with pytest.raises(CheckpointError, match="over the 0.01 MB limit.*AUDIO_STUDIO_MAX_CHECKPOINT_MB"):
            fn(p)
    monkeypatch.setenv("AUDIO_STUDIO_MAX_CHECKPOINT_MB", "lots")
    with pytest.raises(CheckpointError, match="must be a number"):
        load_model(p)


def test_param_cap_from_the_environment(tmp_path, monkeypatch):
    p = save_model(TinyNet(in_dim=64, hidden=64), tmp_path / "m.safetensors")
    monkeypatch.setenv("AUDIO_STUDIO_MAX_PARAMS", "1000")
    with pytest.raises(CheckpointError, match="0.0 M parameters, over the 0.001 M limit"):
        load_model(p)
    monkeypatch.setenv("AUDIO_STUDIO_MAX_PARAMS", "10000")
    assert isinstance(load_model(p), TinyNet)


class _NoMeta(torch.nn.Module):
    """Uses tensor values in __init__ (cannot be built on the meta device)."""

    CHECKPOINT_BOUNDS = {"n": checkpoint.Int(1, 64)}

    def __init__(self, n: int = 4):
        super().__init__()
        self.lin = torch.nn.Linear(n, n)
        self.scale = float(self.lin.weight.detach().abs().max())  # .item() of a meta tensor raises


@pytest.fixture
def no_meta_allowed(monkeypatch):
    path = f"{__name__}:_NoMeta"
    monkeypatch.setattr(checkpoint, "MODEL_CLASSES", checkpoint.MODEL_CLASSES | {path})
    monkeypatch.setattr(checkpoint, "ALLOWED_PREFIXES", checkpoint.ALLOWED_PREFIXES + ("tests.",))
    monkeypatch.setattr(_NoMeta, "__module__", __name__)
    return path


def test_class_that_cannot_be_built_on_meta(tmp_path, monkeypatch, no_meta_allowed):
    m = _NoMeta(4)
    p = save_model(m, tmp_path / "nm.safetensors", kwargs={"n": 4})
    # without the opt-out the meta build fails and the file is refused with a readable message
    with pytest.raises(CheckpointError, match="cannot build _NoMeta from its stored arguments"):
        load_model(p)
    monkeypatch.setattr(_NoMeta, "CHECKPOINT_META_BUILD", False, raising=False)
    back = load_model(p)
    x = torch.randn(2, 4)
    assert torch.equal(back.lin(x), m.lin(x))
    # the fallback still applies the bounds, the file's tensor sizes and the shape comparison
    with pytest.raises(CheckpointError, match="with n that is 100000"):
        load_model(_craft(tmp_path / "b.safetensors", no_meta_allowed, {"n": 100000}))
    monkeypatch.setenv("AUDIO_STUDIO_MAX_PARAMS", "10")
    with pytest.raises(CheckpointError, match="over the 1e-05 M limit"):
        load_model(p)
    monkeypatch.delenv("AUDIO_STUDIO_MAX_PARAMS")
    with pytest.raises(CheckpointError, match="does not match _NoMeta"):
        load_model(_craft(tmp_path / "s.safetensors", no_meta_allowed, {"n": 8}, _NoMeta(4).state_dict()))


def test_malformed_headers(tmp_path):
    from safetensors.torch import save_file

    for hdr in ([1, 2], {"klass": 5}, {"klass": "engines.testing:TinyNet", "kwargs": [1]}):
        save_file({"w": torch.zeros(1)}, tmp_path / "h.safetensors", metadata={"audio_studio": json.dumps(hdr)})
        with pytest.raises(CheckpointError, match="malformed"):
            load_model(tmp_path / "h.safetensors")
    p = _craft(tmp_path / "v.safetensors", "engines.testing:TinyNet", {}, version=99)
    with pytest.raises(CheckpointError, match="format 99"):
        load_model(p)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: Path(p).stem)
def test_every_shipped_checkpoint_loads_unchanged(path):
    """Each registry model goes through every check and holds exactly the file's weights."""
    header, tensors = read_checkpoint(path)
    model = load_model(path)
    assert checkpoint.class_path(model) == header["klass"] and not model.training
    sd = model.state_dict()
    assert sd.keys() == tensors.keys()
    assert all(torch.equal(sd[k], tensors[k]) for k in tensors)
    # the old loader's way (build from the kwargs, load the tensors) gives the same outputs
    ref = checkpoint._import_class(header["klass"])(**header["kwargs"])
    ref.load_state_dict(tensors)
    ref.eval()
    if header["klass"].endswith("VocalMaskCNN"):
        x = torch.randn(1, model.n_bins, model.context + 3, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(model(x), ref(x))


def test_registry_defaults_load():
    from engines import registry

    kinds = {e["kind"] for e in registry.entries()}
    assert {"vocals", "query", "timbre", "fusion"} <= kinds
    for kind in kinds:
        members = registry.members(None, kind)  # an ensemble default: each of its members loads
        for name in [n for n, _ in members] if members else [None]:
            assert isinstance(load_model(registry.resolve(name, kind)), torch.nn.Module)


def test_save_refuses_what_load_would_refuse(tmp_path):
    m = TinyNet()
    m._init_kwargs = {**m._init_kwargs, "hidden": 60000}
    with pytest.raises(CheckpointError, match="Saving 'm.safetensors' asks for TinyNet with hidden that is 60000"):
        save_model(m, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_trainers_refuse_an_unloadable_model_before_building_it(monkeypatch):
    """build_checked: the kwargs bound of the exported checkpoint applies when the trainer builds the model."""
    from engines.checkpoint import CheckpointError, build_checked
    from engines.vocals.model import VocalMaskCNN

    built = []
    monkeypatch.setattr(VocalMaskCNN, "__init__", lambda self, **k: built.append(k))
    with pytest.raises(CheckpointError, match="res_dims"):
        build_checked(VocalMaskCNN, n_bins=513, context=25, res_dims=[60000] * 4, dilations=[1, 2, 4, 8])
    assert built == []
