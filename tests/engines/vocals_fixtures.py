"""Synthetic songs for the vocal tests: a vibrato 'voice' (harmonic, formant-shaped) over chords + noise drums."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def synth_song(seconds: float = 4.0, sr: int = 22050, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(vocals, accompaniment)`` mono float32 of ``seconds`` at ``sr``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    # voice: notes of 0.5 s with vibrato, harmonics with a formant envelope, gated phrases
    f0 = np.repeat(rng.uniform(180, 420, size=int(seconds * 2) + 1), sr // 2)[:n]
    f0 = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voc = sum((1.0 / h) * np.exp(-((h * 300 - 900) / 700) ** 2) * np.sin(h * phase) for h in range(1, 16))
    gate = (np.sin(2 * np.pi * t / seconds * 2 + rng.uniform(0, 6)) > -0.3).astype(float)
    voc = voc * np.convolve(gate, np.ones(400) / 400, mode="same")
    # accompaniment: low sustained chord + noise hits every 0.25 s
    root = rng.uniform(70, 110)
    acc = sum(0.3 * np.sin(2 * np.pi * root * r * t + rng.uniform(0, 6)) for r in (1, 1.25, 1.5, 2))
    hits = np.zeros(n)
    hits[:: sr // 4] = 1.0
    env = np.convolve(hits, np.exp(-np.arange(2000) / 300), mode="full")[:n]
    acc = acc + 0.5 * env * rng.standard_normal(n)
    voc, acc = 0.3 * voc / np.abs(voc).max(), 0.3 * acc / np.abs(acc).max()
    return voc.astype(np.float32), acc.astype(np.float32)


def write_song_folder(root: Path, n_songs: int = 3, seconds: float = 4.0, sr: int = 22050, layout: str = "musdb") -> Path:
    """Write songs in a ``musdb`` (<song>/mixture.wav + vocals.wav + accompaniment.wav) or ``dsd100`` layout."""
    root = Path(root)
    for i in range(n_songs):
        voc, acc = synth_song(seconds, sr, seed=i)
        mix = voc + acc
        if layout == "dsd100":
            split = "Dev" if i % 2 == 0 else "Test"
            md, sd = root / "Mixtures" / split / f"{i:03d} - Song", root / "Sources" / split / f"{i:03d} - Song"
            md.mkdir(parents=True), sd.mkdir(parents=True)
            sf.write(md / "mixture.wav", np.stack([mix, mix], 1), sr)
            sf.write(sd / "vocals.wav", np.stack([voc, voc], 1), sr)
            sf.write(sd / "bass.wav", np.stack([acc, acc], 1), sr)
        else:
            d = root / f"song_{i:03d}"
            d.mkdir(parents=True)
            sf.write(d / "mixture.wav", mix, sr, subtype="FLOAT")
            sf.write(d / "vocals.wav", voc, sr, subtype="FLOAT")
            sf.write(d / "accompaniment.wav", acc, sr, subtype="FLOAT")
    return root
