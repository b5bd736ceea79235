"""`train query`: the real trainers (query_classifier, query_masknet) as a subprocess (one short run, a resume,
the export), and their data."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from engines.checkpoint import load_model
from engines.separation.model import QueryNet
from trainers.data import QueryRow, Source
from engines.audio.losses import si_sdr
from trainers.query_classifier import QLEN, SEG, WIN, MixtureSet, load_manifest, synthetic_clips

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mixture_examples_are_consistent():
    clips = synthetic_clips(28, 14)
    ds = MixtureSet(clips, 6, absent_p=0.5, fixed_seed=3)
    for i in range(6):
        mix, tgt, q, pos, mwin, label, src, present = ds[i]
        assert mix.shape == tgt.shape == (SEG,) and q.shape == (QLEN,) and pos.shape == mwin.shape == (WIN,)
        assert float(mix.abs().max()) <= 1.0 + 1e-5
        if present:
            assert float(tgt.abs().max()) > 0
        else:
            assert float(tgt.abs().max()) == 0
    a, b = ds[2], ds[2]
    assert torch.equal(a[0], b[0])  # fixed seed: the validation set is reproducible


def test_si_sdr_loss_matches_definition():
    ref = torch.randn(2, 1000)
    assert float(si_sdr(ref, 3 * ref).min()) > 60
    noisy = ref + torch.randn(2, 1000)
    assert abs(float(si_sdr(ref, noisy).mean())) < 3


def test_manifest_loader_reads_clips(tmp_path):
    import soundfile as sf

    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    sf.write(tmp_path / "b.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
    from trainers.data import ClipRow, DataError, Source

    src = [Source("a.wav", "user", "user-supplied", True)]
    rows = [ClipRow(id="a", index=0, path="a.wav", sr=16000, seconds=1.0, sources=src, effects=[], label="piano",
                    info={"source": "p1"}),
            ClipRow(id="b", index=1, path="b.wav", sr=22050, seconds=1.0, sources=src, effects=[], label="bass"),
            ClipRow(id="c", index=2, path="c.wav", sr=16000, seconds=1.0, sources=src, effects=[], label="not-a-class")]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r.to_json()) for r in rows))
    clips = load_manifest(tmp_path, ["piano", "bass"])
    assert [c["label"] for c in clips] == [0, 1]
    assert clips[0]["source"] == "piano:p1" and clips[0]["audio"].dtype == np.int16
    # a row that guesses its field names is refused, naming the line and the field
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"file": "b.wav", "class": "bass"}) + "\n")
    with pytest.raises(DataError, match="manifest.jsonl:1.*unknown field"):
        load_manifest(tmp_path, ["piano", "bass"])


def test_train_query_subprocess_runs_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    exp = tmp_path / "q.safetensors"
    base = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "query", "--synthetic", "28",
            "--out_dir", str(out), "--batch_size", "4", "--examples_per_epoch", "8", "--val_examples", "4",
            "--hidden", "32", "--no_mlflow", "--log_every", "1", "--epochs", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(base + ["--max_steps", "2"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "checkpoint.pt").is_file()
    lines = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert lines[-1]["event"] == "done" and lines[-1]["step"] == 2
    r = subprocess.run(base + ["--max_steps", "3", "--export", str(exp)], capture_output=True, text=True,
                       timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Resumed" in r.stdout
    net = load_model(exp, expected=QueryNet)
    assert net.class_names[0] == "speech" and len(net.class_names) == 14
    assert net.checkpoint_metadata["trained_on"] == "28 synthetic clips"


def _fake_triples(folder, n=4, seconds=5.0):
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    rows = []
    for i in range(n):
        d = folder / f"q_{i:05d}"
        d.mkdir(parents=True)
        tgt = 0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t) * (t > 1) * (t < 3)
        bg = 0.05 * rng.standard_normal(t.size)
        sf.write(d / "target.wav", tgt.astype(np.float32), 16000)
        sf.write(d / "background.wav", bg.astype(np.float32), 16000)
        sf.write(d / "mix.wav", (tgt + bg).astype(np.float32), 16000)
        sf.write(d / "query.wav", (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t[:24000])).astype(np.float32), 16000)
        rows.append(QueryRow(id=d.name, index=i, path=d.name, sr=16000, seconds=seconds, effects=[],
                             sources=[Source(d.name, "user", "user-supplied", True)], label="piano",
                             events=[[1.0, 3.0]]).to_json())
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def test_triple_set_items_and_remix(tmp_path):
    from trainers.query_masknet import TripleSet

    _fake_triples(tmp_path / "query")
    ds = TripleSet([tmp_path / "query"], 6, seg=2 * 16000, remix_p=0.5, fixed_seed=1)
    assert len(ds.rows) == 4
    for i in range(6):
        mix, tgt, q, present = ds[i]
        assert mix.shape == tgt.shape == (32000,) and q.shape == (QLEN,)
        assert float(mix.abs().max()) <= 1.0 + 1e-5
    held = TripleSet([tmp_path / "query"], 2, exclude={str(tmp_path / "query" / "q_00000")})
    assert len(held.rows) == 3


def test_triple_set_absent_queries(tmp_path):
    from trainers.query_masknet import TripleSet

    _fake_triples(tmp_path / "query")
    man = tmp_path / "query" / "manifest.jsonl"
    rows = [json.loads(x) for x in man.read_text().splitlines()]
    for i, r in enumerate(rows):
        r["label"] = "piano" if i % 2 else "bells"
    man.write_text("\n".join(json.dumps(r) for r in rows))
    ds = TripleSet([tmp_path / "query"], 8, seg=2 * 16000, remix_p=0.0, fixed_seed=2, absent_p=1.0)
    own = TripleSet([tmp_path / "query"], 8, seg=2 * 16000, remix_p=0.0, fixed_seed=2)
    for i in range(8):
        mix, tgt, q, present = ds[i]
        mix0, tgt0, q0, present0 = own[i]
        assert torch.equal(mix, mix0)                      # the same mixture ...
        assert float(present) == 0.0 and not torch.any(tgt)  # ... but nothing to extract
        assert not torch.equal(q, q0)                      # with another class's query


def test_finetune_on_triples_exports(tmp_path):
    from engines.checkpoint import save_model

    _fake_triples(tmp_path / "query")
    init = tmp_path / "init.safetensors"
    save_model(QueryNet(hidden=32, channels=(8, 8, 16, 16), dilations=(1, 2), emb_dim=16, profile_dim=8), init)
    exp = tmp_path / "ft.safetensors"
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "query", "--triples", str(tmp_path / "query"),
           "--init", str(init), "--holdout", "1", "--seg_s", "2", "--out_dir", str(tmp_path / "run"),
           "--batch_size", "2", "--examples_per_epoch", "4", "--epochs", "1", "--no_mlflow", "--export", str(exp)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    net = load_model(exp, expected=QueryNet)
    ref = load_model(init, expected=QueryNet)
    assert torch.equal(net.stem[0][0].weight, ref.stem[0][0].weight)  # embedder frozen
    assert not torch.equal(net.head.weight, ref.head.weight)          # mask net trained
    assert "validation" in net.checkpoint_metadata


def test_query_command_keeps_the_former_names():
    """``trainers.query_embedder`` is the ``train query`` command over the two trainers; the former names stay."""
    import launch
    from trainers import query_classifier, query_embedder, query_masknet

    assert launch.TRAINERS["query"][0] == "trainers.query_embedder"
    assert query_embedder.MixtureSet is query_classifier.MixtureSet
    assert query_embedder.TripleSet is query_masknet.TripleSet
    assert not hasattr(query_embedder, "separate_batch")  # the forward pass is QueryNet.separate


def test_step_functions_use_the_models_separation():
    from engines.testing import tiny_separation
    from trainers.query_classifier import train_step_fn
    from trainers.query_masknet import sep_step_fn

    torch.manual_seed(0)
    net = tiny_separation()
    ds = MixtureSet(synthetic_clips(28, 14), 4, fixed_seed=1)
    batch = [torch.stack(x) for x in zip(*[ds[i] for i in range(4)])]
    out = train_step_fn(net, batch)
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    mix, tgt, q, *_rest, present = batch
    out2 = sep_step_fn(net, (mix, tgt, q, present))
    est = net.separate(mix, q)[0]
    pres = present > 0.5
    ref = torch.where(pres, -si_sdr(tgt, est).clamp(max=40),
                      10 * torch.log10(est.pow(2).sum(-1) / (mix.pow(2).sum(-1) + 1e-8) + 1e-3)).mean()
    assert torch.allclose(out2["loss"], ref)
