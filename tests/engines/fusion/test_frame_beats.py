"""The frame-level beat and downbeat network (``engines/fusion/frame_beats.py``) and the grid it drives."""
import numpy as np
import pytest
import torch

from engines.fusion import align, downbeat, frame_beats as fb


def _pulses(n, period, phase, width=1.0):
    t = np.arange(n)
    d = np.abs(((t - phase + period / 2) % period) - period / 2)
    return np.exp(-0.5 * (d / width) ** 2)


@pytest.mark.parametrize("sub", [2, 3])
def test_beat_grid_takes_the_felt_beat_not_its_subdivision_or_multiple(sub):
    n, period, phase = 1400, 25.3, 7.0
    act = 0.05 + 0.9 * _pulses(n, period, phase) + 0.45 * _pulses(n, period / sub, phase)  # beats + weaker subdivisions
    act = np.minimum(act, 1)
    p, ph = fb.beat_grid(act, fb.FPS, align._tempo_period(act, fb.FPS, 40.0, 220.0))
    assert abs(p / period - 1) < 0.005
    assert abs(((ph - phase + period / 2) % period) - period / 2) <= 1.0


def test_track_decodes_meter_and_phase_and_starts_at_the_edge():
    n, period = 1400, 24.0
    phase = period - 1.0  # the first beat lies a frame before 0 s, as onset features make it
    beat = np.where(_pulses(n, period, phase) > 0.5, 4.0, -4.0)
    grid = np.arange(phase - period, n, period)
    down = np.full(n, -4.0)
    for k, f in enumerate(grid):
        if k % 3 == 1:  # downbeats on every 3rd beat, from the second
            down[max(int(round(f)), 0)] = 4.0
    tempo, beats, bpb, ph = align.track_frames(np.stack([beat, down]))
    assert abs(tempo - 60 * fb.FPS / period) < 0.5
    assert beats[0] == 0.0 and abs(beats[1] - phase / fb.FPS) < 1.5 / fb.FPS
    assert (bpb, ph) == (3, 1)
    assert align.track_frames(np.stack([beat, down]), 4)[2] == 4  # a meter asked for is kept


def test_extend_bars_puts_a_bar_line_just_before_zero_at_zero():
    bar = 60 / 104.4 * 4
    out = align.extend_bars([bar - 0.01, 2 * bar - 0.01], 104.4, 4)
    assert out[0] == 0.0 and len(out) == 3
    assert list(align.extend_bars([bar - 0.2], 104.4, 4)) == [bar - 0.2]  # the one before lies 0.2 s before 0 s
    assert np.allclose(align.extend_bars([2 * bar + 0.1], 104.4, 4), [0.1, bar + 0.1, 2 * bar + 0.1])


def test_frame_features_are_per_band_z_scored_at_the_network_rate():
    rng = np.random.default_rng(0)
    y24 = rng.standard_normal(24000 * 3).astype(np.float32) * 0.1
    import soxr

    y44 = soxr.resample(y24, 24000, 44100).astype(np.float32)
    x24, x44 = fb.frame_features(y24, 24000), fb.frame_features(y44, 44100)
    assert x24.shape[0] == fb.N_FEATURES and abs(x24.shape[1] - x44.shape[1]) <= 1
    assert np.allclose(x24.mean(1), 0, atol=1e-3) and np.all(x24.std(1) <= 1.0 + 1e-3)
    assert fb.frame_features(np.zeros(100, np.float32), 24000).shape == (fb.N_FEATURES, fb.N_FFT // fb.HOP + 1)


def test_network_shape_and_receptive_field():
    torch.manual_seed(0)
    m = fb.FrameBeatNet(channels=8, levels=4, kernel=3).eval()
    x = torch.randn(2, fb.N_FEATURES, 300)
    y = m(x)
    assert y.shape == (2, 2, 300)
    x2 = x.clone()
    x2[:, :, 150] += 5.0
    changed = (m(x2) - y).abs().amax(dim=(0, 1)) > 1e-6
    rf = (3 - 1) * (2 ** 4 - 1) + 3  # the docstring's formula: 33 frames
    idx = torch.nonzero(changed).flatten()
    assert idx.min() >= 150 - rf // 2 and idx.max() <= 150 + rf // 2 and changed[150]
    with pytest.raises(ValueError, match="odd kernel"):
        fb.FrameBeatNet(kernel=4)


def test_track_beats_uses_a_registered_frame_model(monkeypatch, tmp_path):
    from engines.checkpoint import load_model, save_model

    torch.manual_seed(1)
    path = save_model(fb.FrameBeatNet(channels=8, levels=3), tmp_path / "fb.safetensors", metadata={})
    m = load_model(path, expected=downbeat.MODEL_CLASSES)
    assert isinstance(m, fb.FrameBeatNet)
    monkeypatch.setattr(downbeat, "load", lambda name=None: m)
    sr = 24000
    t = np.arange(sr * 6) / sr
    y = (np.sin(2 * np.pi * 80 * t) * np.exp(-20 * (t % 0.5))).astype(np.float32)
    info = align.track_beats(y, sr, downbeats_from="learned")
    assert info.downbeats_from == "learned" and len(info.beats) >= 4
    d = np.diff(info.beats)
    assert np.allclose(d[1:], d[1], atol=1e-6) and d[0] <= d[1] + 1e-9  # a constant grid (its first beat at 0 s or later)
    assert np.allclose(np.diff(info.downbeats[1:]), info.beats_per_bar * d[1], atol=1e-6)
    assert all(0 <= x <= 6.0 for x in info.downbeats)
    assert align.track_beats(y, sr, downbeats_from="heuristic").downbeats_from == "heuristic"


def test_chroma_features_follow_the_chord_and_feed_a_chroma_model():
    """``chroma=True`` adds 12 pitch-class rows (z-scored per row): a C major chord then an F# major chord light
    C/E/G, then F#/A#/C#; a network built for them gets them through ``frame_logits``."""
    sr = 24000
    t = np.arange(2 * sr) / sr
    chord = lambda pcs: sum(np.sin(2 * np.pi * 261.63 * 2 ** (p / 12) * t) for p in pcs)  # noqa: E731
    y = np.concatenate([chord((0, 4, 7)), chord((6, 10, 13))]).astype(np.float32) * 0.1
    plain, with_chroma = fb.frame_features(y, sr), fb.frame_features(y, sr, chroma=True)
    assert with_chroma.shape == (fb.N_FEATURES_CHROMA, plain.shape[1])
    c = with_chroma[fb.N_FEATURES:]
    n = c.shape[1]
    first, second = c[:, 10:n // 2 - 10].mean(1), c[:, n // 2 + 10:-10].mean(1)
    assert set(np.argsort(first)[-3:]) == {0, 4, 7} and set(np.argsort(second)[-3:]) == {6, 10, 1}
    torch.manual_seed(0)
    m = fb.FrameBeatNet(features=fb.N_FEATURES_CHROMA, channels=8, levels=3).eval()
    assert fb.frame_logits(m, y, sr).shape == (2, n)
