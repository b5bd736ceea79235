"""Vocal dataset builder (layouts, memory-mapped arrays, windows) and the real trainer as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.checkpoint import load_model
from engines.vocals.features import HParams
from engines.vocals.model import VocalMaskCNN
from tests.engines.vocals_fixtures import write_song_folder
from trainers.vocals_dataset import VocalsWindows, build, eval_songs, find_songs

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_ALLOW_FILE_STORE="true", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("vds")
    write_song_folder(d / "songs", 4, 3.0)
    meta = build(d / "songs", d / "ds", HParams(stft_stride=4, predict_frames=8), eval_songs=1)
    return d / "ds", meta


def test_find_songs_layouts(tmp_path):
    write_song_folder(tmp_path / "dsd", 3, 1.0, layout="dsd100")
    songs = find_songs(tmp_path / "dsd")
    assert [s["name"] for s in songs] == ["Dev__000 - Song", "Dev__002 - Song", "Test__001 - Song"]
    assert all(Path(s["vocals"]).parent.parts[-3] == "Sources" and s["accompaniment"] is None for s in songs)
    # flattened DSD100 (Dev/Test moved up) and MUSDB-style folders
    flat = tmp_path / "flat"
    for sub in ("Mixtures", "Sources"):
        for split in ("Dev", "Test"):
            for song in (tmp_path / "dsd" / sub / split).iterdir():
                (flat / sub).mkdir(parents=True, exist_ok=True)
                song.rename(flat / sub / song.name)
    assert len(find_songs(flat)) == 3
    write_song_folder(tmp_path / "musdb" / "train", 2, 1.0)
    ms = find_songs(tmp_path / "musdb")
    assert len(ms) == 2 and ms[0]["accompaniment"].endswith("accompaniment.wav")
    with pytest.raises(FileNotFoundError):
        find_songs(tmp_path / "nothing_here")


def test_built_arrays_and_windows(dataset):
    folder, meta = dataset
    assert meta["train_songs"] == 3 and len(meta["eval_songs"]) == 1
    ds = VocalsWindows(folder)
    assert ds.features.shape == (meta["frames"], 513) and ds.masks.shape == (meta["frames"], 513)
    assert isinstance(ds.features, np.memmap)
    x, y = ds[len(ds) - 1]
    assert list(x.shape) == [513, 25 + 8 - 1] and list(y.shape) == [513, 8]
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and set(np.unique(y.numpy())).issubset({0.0, 1.0})
    # windows never cross a song boundary, one every stft_stride frames
    ranges = [(s["first_frame"], s["first_frame"] + s["frames"]) for s in meta["songs"] if s["split"] == "train"]
    for start in np.asarray(ds.index):
        assert any(a <= start and start + ds.window <= b for a, b in ranges)
    first = next(s for s in meta["songs"] if s["split"] == "train")
    assert np.all(np.diff(np.asarray(ds.index)[: first["windows"]]) == 4)
    ev = eval_songs(folder)
    assert len(ev) == 1 and (ev[0] / "vocals.wav").is_file()
    with pytest.raises(FileExistsError):
        build(folder.parent / "songs", folder)


def test_train_subprocess_exports_and_resumes(dataset, tmp_path):
    folder, _ = dataset
    out = tmp_path / "run"
    def cmd(epochs):
        return [sys.executable, str(ROOT / "launch.py"), "train", "vocals", str(folder), "--out_dir", str(out),
           "--epochs", str(epochs), "--batch_size", "8", "--res_dims", "16", "16", "16", "16", "--log_every", "2",
           "--num_evals", "1", "--threads", "1", "--fix_learning_rate", "0.001"]

    r = subprocess.run(cmd(2), env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Epoch 2: Train Loss" in r.stdout and "Eval SDR" in r.stdout
    ev = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert ev[-1]["event"] == "done" and "val_sdr" in ev[-1]
    assert (out / "epoch_001.safetensors").is_file() and list((out / "eval" / "epoch_002").glob("*/vocals.wav"))
    assert list((out / "mlruns").rglob("train_loss"))
    model = load_model(out / "vocals.safetensors", expected=VocalMaskCNN)
    assert model.hparams["res_dims"] == [16, 16, 16, 16] and model.hparams["stft_stride"] == 4
    assert model.checkpoint_metadata["hparams"]["batch_size"] == 8
    # resumable: the same command with more epochs continues from the checkpoint
    r2 = subprocess.run(cmd(3), env=_env(), capture_output=True, text=True,
                        timeout=120)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "Resumed from" in r2.stdout and "Epoch 3: Train Loss" in r2.stdout


def test_train_builds_from_songs_under_torchrun(tmp_path):
    write_song_folder(tmp_path / "songs", 3, 2.0)
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "trainers" / "vocals.py"), str(tmp_path / "songs"), "--out_dir", str(out),
                        "--epochs", "1", "--batch_size", "8", "--res_dims", "8", "8", "8", "8", "--no_mlflow",
                        "--stft_stride", "8", "--num_evals", "1", "--threads", "1"],
                       env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "data" / "dataset.json").is_file()
    ev = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert ev[0]["world_size"] == 2 and ev[-1]["event"] == "done"
    assert load_model(out / "vocals.safetensors").hparams["stft_stride"] == 8


def test_waveform_set_remix_and_soft_targets(tmp_path):
    import torch

    from trainers.vocals_dataset import VocalsRemix, build_waves, remix_batch

    write_song_folder(tmp_path / "a", 3, 2.0)
    write_song_folder(tmp_path / "b", 3, 2.0)
    hp = HParams(stft_stride=4, predict_frames=8)
    meta = build_waves([tmp_path / "a", tmp_path / "b"], tmp_path / "w", hp, eval_songs=1)
    # held-out songs come from the last root; names carry the root index
    assert meta["train_songs"] == 5 and len(meta["eval_songs"]) == 1 and meta["eval_songs"][0].startswith("r1_")
    assert (tmp_path / "w" / "eval" / meta["eval_songs"][0] / "vocals.wav").is_file()
    plain = VocalsRemix(tmp_path / "w", remix_prob=0.0, stem_gain_db=0.0, jitter=False)
    aug = VocalsRemix(tmp_path / "w", remix_prob=1.0, stem_gain_db=6.0, seed=1)
    assert len(plain) == len(aug) > 0
    ranges = [(s["first_sample"], s["first_sample"] + s["samples"]) for s in meta["songs"] if s["split"] == "train"]
    for start in np.asarray(plain.index):  # windows never cross songs
        assert any(a <= start and start + plain.length <= b for a, b in ranges)
    b0 = torch.stack([plain[i] for i in range(len(plain))])
    b1 = torch.stack([aug[i] for i in range(len(aug))])
    assert b0.dtype == b1.dtype == torch.float32 and b0.shape == b1.shape == (len(plain), 2, plain.length)
    assert not torch.allclose(b0[:, 1], b1[:, 1])  # other songs' accompaniment / gains
    x, y = remix_batch(b1, hp, soft=True)
    assert x.shape == (len(plain), 513, 25 + 8 - 1) and y.shape == (len(plain), 513, 8)
    assert 0 <= float(y.min()) and float(y.max()) <= 1 and 0.01 < float(((y > 0.05) & (y < 0.95)).float().mean())
    _, yb = remix_batch(b1, hp, soft=False)
    assert set(np.unique(yb.numpy())).issubset({0.0, 1.0})
    # the on-the-fly features of an unaugmented window equal the song's own features (same song gain, frames)
    from trainers.vocals_dataset import _load_song, find_songs, song_arrays
    first = next(s for s in meta["songs"] if s["split"] == "train")
    song = next(s for s in find_songs(tmp_path / "a") if "r0_" + s["name"] == first["name"])
    f8, m8 = song_arrays(*_load_song(song, hp.sample_rate), hp)
    x0, y0 = remix_batch(b0[:1], hp, soft=False)
    W = 25 + 8 - 1
    assert np.abs(x0[0].numpy().T - f8[2:2 + W] / 255.0).max() <= 1.0 / 255 + 1e-4
    # (the builder gates on the unscaled vocal magnitude > 1e-6, the waveform set on the gain-scaled one)
    assert np.mean(y0[0].numpy().T == m8[2 + 12:2 + 12 + 8]) > 0.95


def test_train_soft_mask_remix_two_roots(tmp_path):
    write_song_folder(tmp_path / "a", 2, 2.0)
    write_song_folder(tmp_path / "b", 2, 2.0)
    out = tmp_path / "run"
    init = tmp_path / "init.safetensors"
    from engines.checkpoint import save_model
    save_model(VocalMaskCNN(res_dims=[8, 8, 8, 8], hparams=HParams(res_dims=[8, 8, 8, 8]).to_dict()), init)
    r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "train", "vocals", str(tmp_path / "a"),
                        str(tmp_path / "b"), "--out_dir", str(out), "--epochs", "1", "--batch_size", "8",
                        "--res_dims", "8", "8", "8", "8", "--stft_stride", "8", "--soft_mask", "--remix_prob", "0.5",
                        "--stem_gain_db", "6", "--eval_songs", "1", "--num_evals", "1", "--threads", "1",
                        "--no_mlflow", "--init", str(init), "--fix_learning_rate", "0.001", "--loss", "psa"],
                       env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Initialised the weights" in r.stdout and "Eval SDR" in r.stdout
    assert (out / "waves" / "waves.json").is_file()
    hp = load_model(out / "vocals.safetensors").hparams
    assert hp["soft_mask"] is True and hp["remix_prob"] == 0.5 and hp["stem_gain_db"] == 6.0
    assert hp["loss"] == "psa"


def test_psa_loss_spectra_oracle_and_descent(tmp_path):
    import torch

    from engines.audio import spectral
    from trainers.vocals import psa_loss
    from trainers.vocals_dataset import VocalsRemix, build_waves, remix_batch

    write_song_folder(tmp_path / "a", 3, 2.0)
    hp = HParams(stft_stride=4, predict_frames=8)
    build_waves([tmp_path / "a"], tmp_path / "w", hp, eval_songs=1)
    ds = VocalsRemix(tmp_path / "w", remix_prob=0.5, stem_gain_db=6.0, seed=3)
    batch = torch.stack([ds[i] for i in range(min(len(ds), 16))])
    x, y, sv, sx = remix_batch(batch, hp, soft=True, spectra=True)
    B = batch.shape[0]
    assert sv.shape == sx.shape == (B, 513, 8) and sv.is_complex()
    full = spectral.stft(batch[:, 0] + batch[:, 1], hp.n_fft, hp.hop_size)
    assert torch.allclose(sx, full[..., 2 + 12:2 + 12 + 8], atol=1e-4)  # the mixture's own STFT frames
    # the phase-sensitive oracle beats the ratio mask, which beats "all vocals" and "no vocals"
    psm = (sv * sx.conj()).real / sx.abs().pow(2).clamp_min(1e-12)
    logit = lambda m: torch.logit(m.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    l_psm, l_ratio = psa_loss(logit(psm), sv, sx), psa_loss(logit(y), sv, sx)
    l_one, l_zero = psa_loss(torch.full_like(y, 20.0), sv, sx), psa_loss(torch.full_like(y, -20.0), sv, sx)
    assert l_psm < l_ratio < min(l_one, l_zero)
    # a few Adam steps on the loss lower it
    torch.manual_seed(0)
    net = VocalMaskCNN(res_dims=[16, 16, 16, 16], hparams=hp.to_dict())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = psa_loss(net(x), sv, sx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_dataset_builder_never_replaces_a_user_folder(tmp_path):
    """OUT = the song folder, a folder holding it, or a folder of other files: refused before any work,
    and nothing in it changes."""
    from tests.engines.test_data_safety import _snapshot

    songs = tmp_path / "songs"
    write_song_folder(songs, 3, 1.0)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for out in (songs, tmp_path, mine):
        before = _snapshot(tmp_path)
        with pytest.raises(ValueError):
            build(songs, out, eval_songs=1, overwrite=True)
        assert _snapshot(tmp_path) == before
    (tmp_path / "set.building").mkdir()  # a staging-looking folder the builder did not make
    (tmp_path / "set.building" / "x.wav").write_bytes(b"x")
    with pytest.raises(ValueError):
        build(songs, tmp_path / "set", eval_songs=1)
    assert (tmp_path / "set.building" / "x.wav").read_bytes() == b"x"
