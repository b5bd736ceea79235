"""The shipped default model gives the same output as before the engine contract (issue #14).

Reference samples were taken with the pre-contract code (``TimbreEngine.transfer`` of commit b7e82ab) on a fixed
input: 3 s of a decaying 261.63 Hz tone plus seeded noise, model ``timbre-v3`` (the registered default), CPU.
"""
import numpy as np
import pytest
import torch

IDX = [0, 1000, 12345, 30000, 45678, 60001]
#: (rate, phase) -> output samples at IDX (scaled by rate / 22050)
REF = {
    (22050, "input"): [-0.0350309, -0.13484602, -0.01275015, -0.04306288, -0.01072292, -0.01402805],
    (22050, "griffinlim"): [-0.06070588, -0.14736655, -0.0171445, -0.03699067, -0.02721765, -0.0095986],
    (44100, "input"): [-0.02954563, -0.1469714, 0.01536047, -0.03198585, -0.0290188, -0.0278162],
    (44100, "griffinlim"): [-0.01790342, -0.13866237, 0.01769346, -0.03557845, -0.02908682, -0.02822073],
}
RMS = {22050: 0.08211681, 44100: 0.08211625}
PROBS = {22050: {"piano": 0.029974544420838356, "violin": 0.9700254201889038},
         44100: {"piano": 0.012387691996991634, "violin": 0.9876123070716858}}
#: piano with the style of a reference clip (the input reversed, 1.5 s), 22050 Hz, phase input
REF_STYLE = [-0.02386465, -0.14863110, -0.01116784, -0.04223903, -0.01194325, -0.01384890]
TOL = 1e-4


def fixed_input(sr, seconds=3.0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(1234)
    y = 0.2 * np.sin(2 * np.pi * 261.63 * t) * np.exp(-1.5 * (t % 1.0)) + 0.02 * rng.standard_normal(len(t))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def engine():
    from engines.timbre import Engine

    torch.set_num_threads(1)
    return Engine.load("timbre-v3", device="cpu")


@pytest.mark.parametrize("rate", [22050, 44100])
def test_default_config_gives_the_old_output(engine, rate):
    x = fixed_input(rate)
    res = engine.run({"input": (x, rate)})  # the Config's defaults: violin, phase input
    y = res.audio["violin"][0]
    idx = [i * rate // 22050 for i in IDX]
    assert np.abs(y[idx] - np.array(REF[(rate, "input")])).max() < TOL
    assert float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) == pytest.approx(RMS[rate], abs=1e-6)
    assert res.source_probs == pytest.approx(PROBS[rate], abs=1e-5)


@pytest.mark.parametrize("rate", [22050, 44100])
def test_griffinlim_gives_the_old_output(engine, rate):
    x = fixed_input(rate)
    res = engine.run({"input": (x, rate)}, phase="griffinlim")  # 32 iterations, as before
    idx = [i * rate // 22050 for i in IDX]
    assert np.abs(res.wave[0][idx] - np.array(REF[(rate, "griffinlim")])).max() < TOL


def test_style_reference_and_chunked_path_give_the_old_output(engine):
    x = fixed_input(22050)
    ref = fixed_input(22050, 1.5)[::-1].copy()
    res = engine.transfer(x, "piano", sr=22050, style_ref=ref, style_ref_sr=22050)  # the old call still works
    assert np.abs(res.wave[0][IDX] - np.array(REF_STYLE)).max() < TOL
    old = engine.chunk_frames
    try:
        engine.chunk_frames = 100  # the long-clip path (chunks of windows, chunked resynthesis) on this clip
        res = engine.run({"input": (x, 22050)})
    finally:
        engine.chunk_frames = old
    assert np.abs(res.wave[0][IDX] - np.array(REF[(22050, "input")])).max() < TOL
