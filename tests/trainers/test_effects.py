"""The production chain (trainers/corpus/effects.py): every effect keeps length and finiteness, is
deterministic, leaves silence silent, and stems processed one by one still sum exactly to their
quantised mixture."""
from __future__ import annotations

import numpy as np
import pytest

from trainers.corpus import audio as A
from trainers.corpus import effects as E


def _signal(sr: int, seconds: float = 2.0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
    return np.stack([x, 0.8 * x[::-1]]).astype(np.float32) if channels == 2 else x.astype(np.float32)


@pytest.mark.parametrize("name", E.ORDER)
@pytest.mark.parametrize("sr", [16000, 24000, 44100])
def test_each_effect_keeps_shape_is_finite_and_deterministic(name, sr):
    e = E._draw(name, np.random.default_rng(3), sr)
    assert e["effect"] == name
    for x in (_signal(sr), _signal(sr, channels=2)):
        y1, y2 = E.apply_chain(x, sr, [e]), E.apply_chain(x, sr, [e])
        assert y1.shape == x.shape and y1.dtype == np.float32 and np.isfinite(y1).all()
        assert np.array_equal(y1, y2)
        assert np.sqrt(np.mean(y1 ** 2)) > 0.01  # still sound, not wiped
    assert not np.any(E.apply_chain(np.zeros(sr, np.float32), sr, [e]))  # silence stays silent


def test_effects_change_the_sound_and_the_record_replays_it():
    sr = 44100
    stems = {"vocals": _signal(sr), "drums": _signal(sr)[::-1].copy(), "bass": 0.5 * _signal(sr)}
    out, record = E.process_stems(stems, {k: k for k in stems}, sr, np.random.default_rng(5), strength=1.5)
    assert record and {r["stem"] for r in record} <= set(stems)
    assert all("effect" in r for r in record)
    chains = E.chains_of(record)
    for k, x in stems.items():
        assert np.array_equal(out[k], E.apply_chain(x, sr, chains.get(k, [])))  # the manifest reproduces it
    assert any(not np.allclose(out[k], stems[k]) for k in stems)
    none, rec0 = E.process_stems(stems, {k: k for k in stems}, sr, np.random.default_rng(5), strength=0.0)
    assert rec0 == [] and all(np.array_equal(none[k], stems[k]) for k in stems)


def test_noise_only_on_background_roles_and_sums_stay_exact():
    sr = 16000
    rng = np.random.default_rng(0)
    for _ in range(40):
        assert all(e["effect"] != "noise" for e in E.draw_chain(rng, "vocals", sr, strength=1.5))
        assert all(e["effect"] != "width" for e in E.draw_chain(rng, "other", sr, stereo=False, strength=1.5))
    stems = {"target": _signal(sr), "background": _signal(sr)[::-1].copy()}
    out, _ = E.process_stems(stems, {"target": "speech", "background": "background"}, sr, rng, strength=1.5)
    q, _ = A.quantize_stems(out, 0.9)
    mix = q["target"] + q["background"]
    assert np.array_equal(mix - q["background"], q["target"])  # integer-exact after quantisation


def test_unknown_role_is_refused():
    with pytest.raises(ValueError):
        E.draw_chain(np.random.default_rng(0), "kazoo", 16000)
