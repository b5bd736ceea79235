"""The timbre engine under the engine contract: Config, Engine.load/run, TimbreResult.save, chunked == whole
with non-trivial weights, the Griffin-Lim kept against librosa's, levels from engines.audio.levels."""
import argparse

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.testing import tiny_timbre
from engines.timbre import Config
from engines.timbre import features as F

torch.set_num_threads(1)


def tone(seconds=1.0, sr=F.SAMPLE_RATE, f0=440.0, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * np.exp(-3 * (t % 0.5))
    return (0.1 * y + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_timbre(tmp_path_factory.mktemp("tim") / "tiny.safetensors", random=True)


def test_config_defaults_presets_and_refusals():
    cfg = Config()
    assert (cfg.target, cfg.phase, cfg.gl_iters, cfg.threads) == ("violin", "input", 32, None)
    assert Config.preset("fast").phase == "input"
    refined = Config.preset("refined")
    assert refined.phase == "griffinlim" and refined.gl_iters > cfg.gl_iters
    with pytest.raises(ValueError, match="Invalid setting: gl_iters = 100000"):
        Config(gl_iters=100000)
    with pytest.raises(ValueError, match="Invalid setting: target = 'cello'"):
        Config(target="cello")
    with pytest.raises(ValueError, match="phase"):
        Config(phase="random")


def test_cli_flags_are_the_config():
    from engines import options
    from engines.timbre import cli

    p = cli.get_parser()
    defaults = options.cli_defaults(p)
    for name, value in Config().to_dict().items():
        assert defaults[name] == value
    args = p.parse_args(["--input", "a.wav", "--out_dir", "o", "--target", "piano", "--preset", "refined",
                         "--gl_iters", "8"])
    cfg = options.from_args(Config, args)
    assert (cfg.target, cfg.phase, cfg.gl_iters) == ("piano", "griffinlim", 8)  # the explicit flag wins
    assert args.device == "auto"
    with pytest.raises(SystemExit):
        p.parse_args(["--input", "a.wav", "--out_dir", "o"])  # --target stays required


def test_engine_contract_run_and_save(ckpt, tmp_path):
    from engines import base
    from engines.timbre import Engine, Result

    eng = Engine.load(ckpt, device="cpu")
    assert isinstance(eng, base.Engine) and eng.device.type == "cpu"
    assert Engine.INPUTS == ("input", "style_ref") and Engine.OPTIONAL_INPUTS == ("style_ref",)
    inp = tmp_path / "in.wav"
    sf.write(inp, tone(0.8, sr=16000), 16000)
    calls = []
    res = eng.run({"input": str(inp)}, "fast", progress=lambda f, m: calls.append(f), target="piano")
    assert isinstance(res, Result) and isinstance(res, base.Result)
    assert list(res.audio) == ["piano"] and res.audio["piano"].shape == (1, int(0.8 * 16000))
    assert res.sample_rate == 16000 and res.params["phase"] == "input" and res.params["device"] == "cpu"
    assert {"load", "analyse", "generate", "resynth", "total"} <= set(res.timings) and calls[-1] == 1.0
    assert res.to_json()["input_instrument"] == res.source_probs and res.to_json()["target"] == "piano"
    saved = res.save(tmp_path / "out", inputs=[inp])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["piano.wav"]  # what the CLI always wrote
    y, sr = sf.read(saved["piano.wav"], dtype="float32")
    assert sr == 16000 and np.abs(y - res.wave[0]).max() < 1e-4
    # the same source as one positional input, and a style reference as (array, sr)
    assert eng.run(str(inp)).target == "violin"  # one source is the first input; defaults from Config
    res2 = eng.run({"input": str(inp), "style_ref": (tone(0.5), 22050)})
    assert res2.style == "reference" and res2.target == "violin"
    with pytest.raises(ValueError, match="Missing input: input"):
        eng.run({"style_ref": str(inp)})
    with pytest.raises(ValueError, match="not query"):
        eng.run({"input": str(inp), "query": str(inp)})
    with pytest.raises(ValueError, match="give the sample rate"):
        eng.run({"input": tone(0.5)})


def test_output_level_and_peak_come_from_levels(ckpt):
    from engines.audio import levels
    from engines.timbre.api import TimbreEngine

    eng = TimbreEngine.load(ckpt, device="cpu")
    loud = np.clip(tone(0.7) * 12, -1, 1)  # a clipped, loud input: the output is held under the common peak
    res = eng.run({"input": (loud, 22050)})
    assert levels.peak(res.wave) <= levels.OUTPUT_PEAK + 1e-6
    quiet = tone(0.7) * 0.1
    res = eng.run({"input": (quiet, 22050)})
    assert levels.rms(res.wave) == pytest.approx(levels.rms(quiet), rel=1e-3)  # the input's level
    assert F.rms_gain(quiet) == pytest.approx(levels.gain(F.TARGET_RMS_DB) / levels.rms(quiet))


@pytest.mark.parametrize("phase,rate", [("input", 22050), ("griffinlim", 44100)])
def test_chunked_equals_whole_with_random_weights(phase, rate):
    """Long clips go a chunk of windows at a time (features with context, the same OverlapAdd) and are
    resynthesised in chunks with context; with tiny chunks on a short clip that equals the whole-clip path, with
    non-trivial weights (the residual decoder is not the identity)."""
    from engines.timbre.api import TimbreEngine

    m = tiny_timbre(random=True, seed=3)
    x = np.concatenate([tone(1.5, f0=f) for f in (220, 330, 440)])
    x = x if rate == 22050 else np.repeat(x, 2)
    whole = TimbreEngine(m).run({"input": (x, rate)}, phase=phase, gl_iters=4)
    eng = TimbreEngine(m)
    eng.chunk_frames = 100  # 388 frames: several chunks of windows, 4 resynthesis chunks
    chunked = eng.run({"input": (x, rate)}, phase=phase, gl_iters=4)
    # the random decoder really changes the spectrum (else this test could not fail)
    assert np.abs(whole.output_db - whole.input_db).mean() > 0.3
    assert chunked.wave.shape == whole.wave.shape == (1, len(x))
    assert np.abs(chunked.wave - whole.wave).max() < 1e-4 * np.abs(whole.wave).max() + 1e-6
    assert np.abs(chunked.output_db - whole.output_db).max() < 1e-2
    assert chunked.source_probs == pytest.approx(whole.source_probs, abs=1e-5)
    # the style of a long reference: the mean over every window, a chunk at a time
    ref = tone(3.0, f0=300)
    assert torch.allclose(eng.style_from((ref, 22050)), TimbreEngine(m).style_from((ref, 22050)), atol=1e-4)


def test_model_overlap_add_equals_the_chunked_accumulation():
    from engines.timbre.model import OverlapAdd, window_plan

    m = tiny_timbre(random=True, seed=1)
    raw = torch.randn(2, 597, 130)
    style = m.style_of("violin")
    with torch.no_grad():
        whole = m.transfer_logmag(raw, style)
        starts, L, _, fade = window_plan(130, m.window, m.overlap)
        wins = torch.stack([raw[..., s:s + L] for s in starts])
        oa = OverlapAdd(130, L, fade, 513)
        for i in range(0, len(starts), 2):  # two windows at a time
            oa.add(starts[i:i + 2], m.generate_windows(wins[i:i + 2], style))
    assert torch.allclose(oa.result(), whole, atol=1e-5)


def test_griffin_lim_matches_librosa_from_a_zero_phase():
    """The hand-written Griffin-Lim stays (it starts from the input's phase); from a zero phase it is
    librosa.griffinlim(init=None) with the same momentum."""
    import librosa

    w = torch.from_numpy(tone(0.5))
    mag = F.stft_complex(w).abs()
    ours = F.griffin_lim(mag, torch.ones_like(mag, dtype=torch.complex64), len(w), n_iter=8).numpy()
    lib = librosa.griffinlim(mag.numpy(), n_iter=8, hop_length=F.HOP, n_fft=F.N_FFT, window="hann", center=True,
                             pad_mode="constant", momentum=0.99, init=None, length=len(w))
    assert np.abs(ours - lib).max() < 1e-4 * np.abs(lib).max() + 1e-6
    # from the input's own phase it keeps the input (nothing to refine)
    S = F.stft_complex(w)
    back = F.griffin_lim(S.abs(), S / S.abs().clamp_min(1e-8), len(w), n_iter=4)
    assert torch.allclose(back, w, atol=1e-3)


def test_overlap_add_versus_the_shared_runner():
    """Why the model's overlap-add is not engines.audio.chunking.run_chunked: on a regular tiling the two agree;
    where the last window (flush with the end) overlaps its neighbour by more than the fade they do not."""
    from engines.audio.chunking import run_chunked
    from engines.timbre.model import OverlapAdd, window_plan

    g = torch.Generator().manual_seed(0)

    def fn(w):  # an output that depends on the whole window (like the model's)
        return w * w.mean(dim=-1, keepdim=True).tanh()

    diffs = {}
    for n in (488, 700):  # 488: windows at 0 and 201 exactly; 700: the last window 11 frames after the previous
        x = torch.randn(1, 3, n, generator=g)
        starts, L, hop, fade = window_plan(n, 287, 0.3)
        oa = OverlapAdd(n, L, fade, 3)
        oa.add(starts, torch.stack([fn(x[..., s:s + L])[0].t() for s in starts]))
        diffs[n] = float((oa.result() - run_chunked(fn, x, L, overlap=L - hop)[0]).abs().max())
    assert diffs[488] < 1e-6 and diffs[700] > 1e-3
