"""Dynamic mixing in the timbre trainer's windows (trainers.timbre.TimbreWindows, --remix_p)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from engines.timbre.features import HOP, SAMPLE_RATE, cqt_complex
from trainers.timbre import Clip, TimbreWindows, add_arguments

WINDOW = 100


def _melody(seed: int, seconds: float = 2.0) -> np.ndarray:
    """A few harmonic notes (MIDI 60-84) at -20 dBFS-ish, 22050 Hz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n, np.float32)
    t = np.arange(n) / SAMPLE_RATE
    cuts = np.sort(rng.integers(0, n, 3))
    edges = [0, *cuts.tolist(), n]
    for lo, hi in zip(edges[:-1], edges[1:]):
        f = 440 * 2 ** ((rng.integers(60, 85) - 69) / 12)
        seg = sum(np.sin(2 * np.pi * f * h * t[lo:hi]) / h for h in (1, 2, 3))
        out[lo:hi] = 0.05 * seg * np.hanning(hi - lo)
    return out


@pytest.fixture(scope="module")
def clips():
    """Three "pairs" whose violin is exactly twice the piano (a relation the remix must keep), and
    two unpaired clips per instrument."""
    pairs = []
    for k in range(3):
        w = _melody(k, 2.0 + 0.5 * k)
        pairs.append((Clip(w), Clip(2 * w)))
    pianos = [Clip(_melody(10 + k, 1.5)) for k in range(2)]
    violins = [Clip(_melody(20 + k, 1.5)) for k in range(2)]
    return pairs, pianos, violins


def _items(ds, order):
    return [ds[i] for i in order]


def _same(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_p0_gives_the_plain_windows(clips):
    pairs, pianos, violins = clips
    plain = TimbreWindows(pairs, pianos, violins, WINDOW, 0.3, seed=3)
    off = TimbreWindows(pairs, pianos, violins, WINDOW, 0.3, seed=3, remix_p=0.0)
    assert len(plain) == len(off) > len(pairs)
    for i in range(len(plain)):
        a, b = plain[i], off[i]
        assert _same(a, b) and "remixed" not in a
        kind, c, s = plain.index[i]
        if kind == "pair":  # the window is the stored clip's own samples and CQT frames, unscaled
            p = pairs[c][0]
            n = int(a["frames"])
            assert torch.equal(a["piano_wav"][: (n - 1) * HOP], p.wav[s * HOP: s * HOP + (n - 1) * HOP])
            assert torch.equal(a["piano_cqt"][..., :n], p.cqt[..., s:s + n].float())
            assert float(a["paired"]) == 1.0


def test_remix_keeps_pairs_consistent(clips):
    pairs, pianos, violins = clips
    ds = TimbreWindows(pairs, pianos, violins, WINDOW, 0.3, seed=5, remix_p=1.0)
    plain = TimbreWindows(pairs, pianos, violins, WINDOW, 0.3, seed=5)
    n_pair = sum(k == "pair" for k, _, _ in ds.index)
    changed = 0
    for rep in range(3):
        for i in range(n_pair):
            it = ds[i]
            assert float(it["remixed"]) == 1.0 and float(it["paired"]) == 1.0
            # one gain, one offset, one second pair for both sides: violin is still exactly 2 x piano
            assert torch.equal(it["violin_wav"], 2 * it["piano_wav"])
            assert torch.allclose(it["violin_cqt"], 2 * it["piano_cqt"], rtol=0, atol=1e-6)
            assert 1 <= int(it["frames"]) <= WINDOW
            assert it["piano_wav"].shape == plain[i]["piano_wav"].shape
            assert it["piano_cqt"].shape == plain[i]["piano_cqt"].shape
            changed += not torch.equal(it["piano_wav"], plain[i]["piano_wav"])
    assert changed >= 2 * n_pair  # gains are never exactly 1
    for i in range(n_pair, len(ds)):  # unpaired items stay unpaired, well-formed
        it = ds[i]
        assert float(it["paired"]) == 0.0 and it["violin_cqt"].shape == (2, 84, WINDOW)


def test_mixed_cqt_is_the_cqt_of_the_mixed_wave(clips):
    pairs, pianos, violins = clips
    ds = TimbreWindows(pairs, [], [], WINDOW, 0.3, seed=1, remix_p=1.0)
    ds.REMIX_SECOND_P = 1.0  # always sum a second pair
    it = ds[0]
    assert float(it["remixed"]) == 1.0
    n = int(it["frames"])
    wav = it["piano_wav"].numpy()
    ref = cqt_complex(wav)[:, :WINDOW]
    got = it["piano_cqt"][0].numpy() + 1j * it["piano_cqt"][1].numpy()
    core = slice(30, n - 30)  # away from the window's edges, where each window's CQT is cut anyway
    assert n > 70
    err = np.linalg.norm(got[:, core] - ref[:, core]) / np.linalg.norm(ref[:, core])
    assert err < 0.05, err
    # and not merely the first pair's CQT scaled: the second pair is really in it
    first = TimbreWindows(pairs, [], [], WINDOW, 0.3, seed=1)[0]["piano_cqt"]
    scale = float(torch.linalg.norm(it["piano_cqt"]) / torch.linalg.norm(first))
    assert not torch.allclose(it["piano_cqt"], scale * first, atol=1e-3)


def test_remix_is_deterministic_per_seed_and_new_per_read(clips):
    pairs, pianos, violins = clips
    mk = lambda seed: TimbreWindows(pairs, pianos, violins, WINDOW, 0.3, seed=seed, remix_p=0.5)  # noqa: E731
    order = list(range(len(mk(0)))) * 2
    a, b, c = _items(mk(7), order), _items(mk(7), order), _items(mk(8), order)
    assert all(_same(x, y) for x, y in zip(a, b))
    assert not all(_same(x, y) for x, y in zip(a, c))
    n = len(order) // 2
    assert not all(_same(x, y) for x, y in zip(a[:n], a[n:]))  # a second read is remixed anew
    share = np.mean([float(x["remixed"]) for x in a])
    assert 0.15 < share < 0.85


def test_cli_flag_and_range(clips):
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--data", "x", "--out_dir", "o"]).remix_p == pytest.approx(0.3)
    assert p.parse_args(["--data", "x", "--out_dir", "o", "--remix_p", "0"]).remix_p == 0.0
    with pytest.raises(ValueError, match="remix_p"):
        TimbreWindows(*clips, WINDOW, 0.3, remix_p=1.5)
