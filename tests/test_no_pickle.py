"""No pickle from anywhere a user can reach: the source tree holds no unpickling call, feature caches
are safetensors/npz, an old pickle cache is never read, and solver checkpoints load with
``weights_only=True``."""
from __future__ import annotations

import ast
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["engines", "trainers", "studio", "benchmarks", "scripts", "launch.py"]
#: Modules whose loading runs code stored in the data.
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal", "pickletools"}
#: Keyword arguments that switch a loader to pickle / remote code.
BAD_KEYWORDS = {("allow_pickle", True), ("weights_only", False), ("trust_remote_code", True)}
#: Text patterns for files that are not Python (shell scripts with inline python, docs of commands).
TEXT_PATTERNS = re.compile(r"allow_pickle\s*=\s*True|weights_only\s*=\s*False|trust_remote_code\s*=\s*True"
                           r"|pickle\.loads?\(|joblib\.load\(|dill\.|torch\.load\((?![^)]*weights_only\s*=\s*True)")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def scan_source(source: str, name: str = "<source>") -> list[str]:
    """``file:line: what`` for every unpickling call or import in Python ``source``."""
    found = []
    tree = ast.parse(source, name)
    torch_aliases = {"torch"}
    load_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PICKLE_MODULES:
                    found.append(f"{name}:{node.lineno}: import {a.name}")
                if a.name == "torch" and a.asname:
                    torch_aliases.add(a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLE_MODULES:
                found.append(f"{name}:{node.lineno}: from {node.module} import ...")
            if node.module in ("torch", "torch.serialization") and any(a.name == "load" for a in node.names):
                load_aliases |= {a.asname or a.name for a in node.names if a.name == "load"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        for k, bad in BAD_KEYWORDS:
            if k in kw and isinstance(kw[k], ast.Constant) and kw[k].value is bad:
                found.append(f"{name}:{node.lineno}: {func or 'call'}({k}={bad})")
        is_torch_load = func in {f"{t}.load" for t in torch_aliases} | {f"{t}.serialization.load" for t in
                                                                       torch_aliases} | load_aliases
        if is_torch_load:
            wo = kw.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(f"{name}:{node.lineno}: {func}(...) without weights_only=True")
        root, _, attr = func.rpartition(".")
        if root.split(".")[0] in PICKLE_MODULES or attr in {"read_pickle", "unsafe_load"} \
                or (func == "yaml.load" and "Loader" not in kw):
            found.append(f"{name}:{node.lineno}: {func}(...)")
    return found


def scan_tree(root: Path = ROOT) -> list[str]:
    found = []
    for entry in SCANNED:
        base = root / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(root)
            if f.suffix == ".py":
                found += scan_source(f.read_text(encoding="utf-8"), str(rel))
            elif f.suffix in (".sh", ".bash", ".toml", ".cfg", ".ini", ".txt") or (os.access(f, os.X_OK)
                                                                                   and f.stat().st_size < 1 << 20):
                try:
                    text = f.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    continue
                for i, line in enumerate(text.splitlines(), 1):
                    if TEXT_PATTERNS.search(line):
                        found.append(f"{rel}:{i}: {line.strip()[:80]}")
    return found


def test_project_tree_has_no_unpickling():
    found = scan_tree()
    assert not found, "pickle reachable from the project (use safetensors, npz or weights_only=True):\n" + \
        "\n".join(found)


def test_scanner_finds_every_pattern():
    bad = """
import pickle
import joblib as jl
from dill import loads
import torch as T
from torch import load as tl
import numpy as np
torch.load("a")
torch.load("a", weights_only=False)
T.load("b", map_location="cpu")
tl("c")
np.load("x.npy", allow_pickle=True)
pickle.load(open("f", "rb"))
pd.read_pickle("f")
AutoModel.from_pretrained("x", trust_remote_code=True)
yaml.load(text)
"""
    found = scan_source(bad, "bad.py")
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == [2, 3, 4] + list(range(8, 17)), found  # lines 5-7 only import torch/numpy
    good = """
import torch
torch.load("a", weights_only=True, map_location="cpu")
np.load("x.npy")
np.load("x.npz", allow_pickle=False)
yaml.load(text, Loader=yaml.SafeLoader)
model.load_state_dict(sd)
"""
    assert scan_source(good, "good.py") == []
    assert TEXT_PATTERNS.search('python -c "import torch; torch.load(p)"')
    assert not TEXT_PATTERNS.search('python -c "torch.load(p, weights_only=True)"')


# --------------------------------------------------------------------------- solver checkpoints
@pytest.mark.parametrize("sched", ["step", "lambda", "onecycle"])
def test_solver_checkpoint_loads_with_weights_only(tmp_path, sched):
    """Everything the solver saves (optimizer and scheduler state, RNG, history, hparams) loads
    under ``weights_only=True`` for each scheduler the trainers use."""
    from engines.testing import TinyNet
    from trainers.solver import Solver, SolverConfig, load_training_checkpoint

    model = TinyNet(4, 8, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    s = {"step": lambda: torch.optim.lr_scheduler.StepLR(opt, 5),
         "lambda": lambda: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 / (1 + i)),
         "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10)}[sched]()
    solver = Solver(model, opt, SolverConfig(out_dir=str(tmp_path), mlflow=False, progress_bar=False),
                    scheduler=s, hparams={"path": tmp_path, "dims": (1, 2), "nested": {"a": [1.5, None]}})
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    s.step()
    solver.history.append({"epoch": 1, "train_loss": 0.5})
    solver.save_checkpoint()
    state = load_training_checkpoint(solver.checkpoint_path)
    assert state["optimizer"]["state"] and state["history"][-1]["train_loss"] == 0.5
    assert torch.equal(state["model"]["net.0.weight"], model.state_dict()["net.0.weight"])


# --------------------------------------------------------------------------- the timbre feature cache
class _Payload:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def timbre_data(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    d = tmp_path / "data" / "pairs" / "p0"
    d.mkdir(parents=True)
    t = np.arange(int(0.6 * 22050)) / 22050
    sf.write(d / "piano.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    sf.write(d / "violin.wav", (0.3 * np.sin(2 * np.pi * 660 * t) + 0.01 * rng.standard_normal(len(t)))
             .astype(np.float32), 22050)
    (tmp_path / "data" / "piano").mkdir()
    sf.write(tmp_path / "data" / "piano" / "a.wav", (0.2 * np.sin(2 * np.pi * 220 * t[:9000])).astype(np.float32),
             22050)
    from trainers.timbre import discover

    return discover([str(tmp_path / "data")])


def _same(a, b):
    return torch.equal(a.wav, b.wav) and torch.equal(a.cqt, b.cqt)


def test_timbre_cache_round_trips_as_safetensors(tmp_path, timbre_data, monkeypatch):
    import trainers.timbre as tt

    pairs, pianos, violins = timbre_data
    cache = tmp_path / "out" / "features_cache.safetensors"
    pc, pn, vn = tt.load_clips(pairs, pianos, violins, cache, None)
    assert cache.is_file() and len(pc) == 1 and len(pn) == 1 and vn == []
    from safetensors import safe_open

    with safe_open(str(cache), "pt") as f:  # a plain tensor file
        assert json.loads(f.metadata()["counts"]) == [1, 1, 0] and len(list(f.keys())) == 6
    monkeypatch.setattr(tt, "load_clip", lambda *a: pytest.fail("cache not used"))
    pc2, pn2, vn2 = tt.load_clips(pairs, pianos, violins, cache, None)
    assert _same(pc2[0][0], pc[0][0]) and _same(pc2[0][1], pc[0][1]) and _same(pn2[0], pn[0]) and vn2 == []
    assert pc2[0][0].frames == pc[0][0].frames
    # other settings: the key differs, the cache is rebuilt rather than reused
    monkeypatch.undo()
    pc3, _, _ = tt.load_clips(pairs, pianos, violins, cache, 0.3)
    assert pc3[0][0].wav.shape[0] == int(0.3 * 22050)


def test_old_pickle_cache_is_never_unpickled(tmp_path, timbre_data, capsys):
    import trainers.timbre as tt

    pairs, pianos, violins = timbre_data
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "PWNED"
    # the old format: torch.save of a dict whose unpickling runs code
    torch.save({"key": "x", "pairs": _Payload(marker)}, out / "features_cache.pt")
    # a pickle under the new name too
    (out / "val_cache.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    # the train entry point's paths (trainers/timbre.py run()) with the old name still passed in
    pc, pn, _ = tt.load_clips(pairs, pianos, violins, out / "features_cache.pt", None)
    vp = tt.load_clips(pairs, [], [], out / "val_cache.safetensors", None)[0]
    assert not marker.exists(), "an old cache file was unpickled"
    err = capsys.readouterr().err
    assert "Not reading the old-format feature cache 'features_cache.pt'" in err
    assert "Ignoring the feature cache 'val_cache.safetensors'" in err
    assert (out / "features_cache.safetensors").is_file() and len(pc) == 1 and len(pn) == 1 and len(vp) == 1
    assert tt.read_clip_cache(out / "val_cache.safetensors", json.dumps([pairs, [], [], None]), (1, 0, 0))
    # the payload is live: the old loader would have run it
    torch.load(out / "features_cache.pt", weights_only=False)  # noqa: the test proves the hole, here only
    assert marker.exists()


def test_cache_with_wrong_tensors_is_rebuilt(tmp_path, timbre_data, capsys):
    import trainers.timbre as tt
    from safetensors.torch import save_file

    pairs, pianos, violins = timbre_data
    cache = tmp_path / "c.safetensors"
    key = json.dumps([pairs, pianos, violins, None])
    meta = {"format": tt.CACHE_FORMAT, "version": tt.CACHE_VERSION, "key": key, "counts": "[1000000000, 0, 0]"}
    save_file({"pairs.0.piano.wav": torch.zeros(10)}, cache, metadata=meta)
    assert tt.read_clip_cache(cache, key, (1, 1, 0)) is None
    assert "tensors are not the clips" in capsys.readouterr().err
    names = tt._cache_names((1, 1, 0))
    save_file({n: torch.zeros(4, dtype=torch.float16) for n in names}, cache, metadata=meta)
    assert tt.read_clip_cache(cache, key, (1, 1, 0)) is None
    assert "is not a timbre clip" in capsys.readouterr().err


# --------------------------------------------------------------------------- other caches and stats
def test_timbre_stats_npz_refuses_pickled_objects(tmp_path):
    from engines.timbre.features import N_CQT, N_STFT, FeatureStats

    st = FeatureStats(np.zeros((2, N_STFT), np.float32), np.ones((2, N_STFT), np.float32),
                      np.zeros((2, N_CQT), np.float32), np.ones((2, N_CQT), np.float32), "unified")
    back = FeatureStats.load(st.save(tmp_path / "s.npz"))
    assert back.name == "unified" and np.array_equal(back.stft_std, st.stft_std)
    marker = tmp_path / "PWNED"
    np.savez(tmp_path / "evil.npz", stft_mean=np.array([_Payload(marker)], dtype=object), stft_std=st.stft_std,
             cqt_mean=st.cqt_mean, cqt_std=st.cqt_std)
    with pytest.raises(ValueError, match="'evil.npz' is not a readable timbre statistics file"):
        FeatureStats.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_mel_filterbank_cache_ignores_bad_files(tmp_path, monkeypatch):
    from engines.separation import features

    monkeypatch.setenv("AUDIO_STUDIO_CACHE", str(tmp_path))
    features.mel_fb.cache_clear()
    marker = tmp_path / "PWNED"
    f = tmp_path / "melfb_slaney_16000_512_64.npy"
    np.save(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    fb = features.mel_fb(16000, 512, 64)
    assert tuple(fb.shape) == (64, 257) and not marker.exists()
    np.save(f, np.zeros((3, 3), np.float32))  # wrong shape: recomputed, not used
    features.mel_fb.cache_clear()
    assert torch.equal(features.mel_fb(16000, 512, 64), fb)
    features.mel_fb.cache_clear()
