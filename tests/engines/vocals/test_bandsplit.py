"""The band-split vocals model: streaming equals whole-song inference, four stems sum to the mixture, the input's
rate and channels come back, the stems option, checkpoints, the CLI's --stems 4 and the trainer's pieces."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.checkpoint import load_model
from engines.testing import tiny_vocals, tiny_vocals_bs
from engines.vocals import Config, Engine
from engines.vocals.api import MODELS, STEMS_4
from engines.vocals.bandsplit import BandSplitSeparator, band_edges, margin_samples, separate_stems

ROOT = Path(__file__).resolve().parents[3]


def _song(seconds=3.0, sr=44100, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x * (0.6 + 0.4 * c) for c in range(channels)]).astype(np.float32)


@pytest.fixture(scope="module")
def engine():
    return Engine.load(net=tiny_vocals_bs(randomized=True, seed=3), device="cpu")


def test_band_edges_cover_the_full_band():
    e = band_edges(2048, 44100, 32)
    assert e[0] == 0 and e[-1] == 1025 and len(e) <= 33
    assert all(b - a >= 3 for a, b in zip(e, e[1:]))  # no band narrower than 3 bins, none above 11 kHz cut
    with pytest.raises(ValueError):
        BandSplitSeparator(n_fft=256, hop=64, band_edges=[0, 10, 5, 129], dim=4, dilations=[1])


def test_chunked_equals_whole_song():
    net = tiny_vocals_bs(randomized=True, seed=1)
    wav = torch.from_numpy(_song(2.5))
    whole = separate_stems(net, wav, 3.0, stems=4, chunk_seconds=600)
    assert margin_samples(net) % net.hop == 0
    chunked = separate_stems(net, wav, 3.0, stems=4, chunk_seconds=1.0)
    assert whole.shape == (4, 2, wav.shape[1])
    torch.testing.assert_close(chunked, whole, atol=2e-5, rtol=0)
    # the stems' masks sum to one: the stems sum to the mixture
    torch.testing.assert_close(whole.sum(0), wav, atol=1e-4, rtol=0)


def test_two_and_four_stems(engine):
    x = _song()
    r2 = engine.run((x, 44100), Config())
    assert r2.stems == ("vocals", "accompaniment") and r2.vocals.shape == x.shape
    np.testing.assert_allclose(r2.vocals + r2.accompaniment, x, atol=1e-6)
    r4 = engine.run((x, 44100), Config(stems=4))
    assert r4.stems == STEMS_4
    np.testing.assert_allclose(sum(r4.audio.values()), x, atol=1e-5)
    np.testing.assert_allclose(r4.vocals, r2.vocals, atol=1e-6)  # the same vocals either way
    np.testing.assert_allclose(r4.accompaniment, r2.accompaniment, atol=1e-5)
    assert r4.mask.shape[0] == 129 and r4.params["stems"] == 4
    b = engine.run((x, 44100), Config(stems=4, binary_mask=True))
    np.testing.assert_allclose(sum(b.audio.values()), x, atol=1e-5)
    assert not np.allclose(b.vocals, r4.vocals)


def test_input_rate_and_channels_come_back(engine):
    mono = engine.run((_song(2.0, 22050, 1), 22050), Config())
    assert mono.sample_rate == 22050 and mono.vocals.shape == (1, 44100)
    three = _song(2.0, 48000, 3)
    r = engine.run((three, 48000), Config(stems=4))
    assert all(v.shape == three.shape for v in r.audio.values())
    np.testing.assert_allclose(sum(r.audio.values()), three, atol=1e-5)
    # a mono song runs as two equal channels: the same vocals as that stereo song's first channel
    m = _song(2.0, 44100, 1)
    a = engine.run((m, 44100), Config()).vocals
    b = engine.run((np.concatenate([m, m]), 44100), Config()).vocals
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def test_cnn_refuses_four_stems_before_work():
    eng = Engine.load(net=tiny_vocals(), device="cpu")
    assert eng.max_stems == 2
    with pytest.raises(ValueError, match="stems = 4"):
        eng.run((_song(), 44100), Config(stems=4))
    with pytest.raises(ValueError, match="Invalid setting: stems"):
        Config(stems=3)


def test_checkpoint_round_trip(tmp_path):
    path = tiny_vocals_bs(tmp_path / "bs.safetensors", randomized=True)
    net = load_model(path, expected=MODELS)
    assert isinstance(net, BandSplitSeparator) and net.stems == list(STEMS_4)
    eng = Engine.load(str(path), device="cpu")
    ref = Engine.load(net=tiny_vocals_bs(randomized=True), device="cpu")
    x = _song(1.5)
    np.testing.assert_allclose(eng.run((x, 44100)).vocals, ref.run((x, 44100)).vocals, atol=1e-6)


def test_cli_four_stems(tmp_path):
    ck = tiny_vocals_bs(tmp_path / "bs.safetensors", randomized=True)
    sf.write(tmp_path / "song.wav", _song(1.5).T, 44100, subtype="FLOAT")
    r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "vocals", "-i", str(tmp_path / "song.wav"), "-o",
                        str(tmp_path / "out"), "--checkpoint", str(ck), "--stems", "4", "--quiet", "--device", "cpu",
                        "--threads", "1"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-1500:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    stems = [sf.read(tmp_path / "out" / f"{n}.wav")[0] for n in STEMS_4]
    assert all(s.shape == (66150, 2) for s in stems)


def test_trainer_pieces(tmp_path):
    """The remix set draws stereo four-stem examples from a tiny corpus; the loss falls on one batch."""
    from trainers.vocals_bs import RemixSet, build_waves, stem_loss

    songs = tmp_path / "corpus" / "songs"
    rows = []
    rng = np.random.default_rng(0)
    for i in range(3):
        d = songs / f"song_{i}"
        d.mkdir(parents=True)
        stems = {n: (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32) for n in STEMS_4}
        for n, a in stems.items():
            sf.write(d / f"{n}.wav", a, 44100, subtype="FLOAT")
        sf.write(d / "mixture.wav", sum(stems.values()), 44100, subtype="FLOAT")
        sf.write(d / "accompaniment.wav", sum(stems.values()) - stems["vocals"], 44100, subtype="FLOAT")
        rows.append({"id": f"song_{i}", "index": i, "path": f"song_{i}", "sr": 44100, "seconds": 2.0, "sources": [],
                     "effects": [], "split": "dev" if i == 2 else "train", "stems": list(STEMS_4)})
    (songs / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = build_waves([tmp_path / "corpus"], tmp_path / "waves", 44100)
    assert meta["train_songs"] == 2 and [d["id"] for d in meta["dev"]] == ["song_2"]  # dev rows never trained on
    ds = RemixSet(tmp_path / "waves", 0.5, remix_prob=0.5, stem_gain_db=6, pan=0.6, items=8)
    x = torch.stack([ds[i] for i in range(2)])
    assert x.shape == (2, 4, 2, 22050) and len(ds) == 8
    assert not torch.allclose(x[:, :, 0], x[:, :, 1])  # panned: the two channels differ
    net = tiny_vocals_bs(randomized=False)
    net.train()
    from engines.audio import spectral

    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    X, S = spectral.stft(x.sum(1), 256, 64), spectral.stft(x, 256, 64)
    w = torch.tensor([2.0, 1, 1, 1])
    first = stem_loss(net(X), S, X, w)
    for _ in range(6):
        loss = stem_loss(net(X), S, X, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first.item()
