"""Timbre engine: features, modules, losses, model windows, checkpoint, API and CLI."""
import json

import numpy as np
import pytest
import torch

from engines.timbre import features as F
from engines.timbre import losses
from engines.timbre.content_encoder import ContentEncoder
from engines.timbre.decoder import Decoder
from engines.timbre.discriminator import Discriminator
from engines.timbre.model import TimbreTransfer, window_starts
from engines.timbre.style_encoder import StyleEncoder

torch.set_num_threads(1)


def tone(seconds=1.0, sr=F.SAMPLE_RATE, f0=440.0, decay=True, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-3 * t) if decay else np.minimum(1, t * 20)
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * env
    return (0.1 * y + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def tiny(**kw):
    from engines.testing import tiny_timbre

    return tiny_timbre(**kw)


def test_features_shapes_and_alignment():
    wav = tone(1.0)
    raw = F.features(wav)
    assert list(raw.shape) == [2, 597, len(wav) // 256 + 1]
    assert torch.isfinite(raw).all()
    # the STFT part is exactly the shared STFT
    s = F.stft_complex(torch.from_numpy(wav))
    assert torch.allclose(raw[0, :513], s.real, atol=1e-5) and torch.allclose(raw[1, :513], s.imag, atol=1e-5)


def test_stats_roundtrip_and_validation(tmp_path):
    acc = F.StatsAccumulator()
    acc.update(F.features(tone(0.5)))
    st = acc.finalize("piano")
    assert st.stft_mean.shape == (2, 513) and st.cqt_std.shape == (2, 84)
    path = st.save(tmp_path / "s.npz")
    back = F.FeatureStats.load(path)
    assert np.allclose(back.stft_std, st.stft_std) and back.name == "piano"
    np.savez(tmp_path / "bad.npz", stft_mean=np.zeros((2, 10)), stft_std=np.ones((2, 10)),
             cqt_mean=np.zeros((2, 84)), cqt_std=np.ones((2, 84)))
    with pytest.raises(ValueError):
        F.FeatureStats.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError):
        F.StatsAccumulator().finalize()


def test_encoders_and_discriminator_shapes():
    x = torch.randn(2, 3, 597, 30)
    fs, cls = StyleEncoder(d_model=32, n_blocks=1, n_layers=1, style_dim=16).eval()(x)
    assert list(fs.shape) == [2, 30, 16] and list(cls.shape) == [2, 16]
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    c = ContentEncoder(d_model=32, n_blocks=1, n_layers=1, content_dim=16).eval()(x, mask)
    assert list(c.shape) == [2, 30, 16]
    assert list(Discriminator(16).eval()(c).shape) == [2, 30, 2]


@pytest.mark.parametrize("residual", [True, False])
def test_decoder_cache_matches_teacher_forcing_and_is_causal(residual):
    torch.manual_seed(0)
    dec = Decoder(content_dim=16, style_dim=16, n_out=513, latent_dim=8, d_model=32, n_layers=2,
                  residual=residual).eval()
    torch.nn.init.normal_(dec.head[-1].weight, std=0.05)  # a residual decoder starts as the identity
    c, s = torch.randn(2, 25, 16), torch.randn(2, 16)
    base = torch.randn(2, 25, 513) if residual else None
    gen = dec.generate(c, s, base)
    assert list(gen.shape) == [2, 25, 513]
    # teacher forcing on the generated frames reproduces them: the cached path equals the parallel one
    tf = dec(c, s, gen, base)
    assert torch.allclose(tf, gen, atol=1e-4)
    # causal: changing frames >= 10 of the target leaves outputs 0..10 unchanged
    tgt = gen.clone()
    tgt[:, 10:] += 5.0
    tf2 = dec(c, s, tgt, base)
    assert torch.allclose(tf2[:, :11], tf[:, :11], atol=1e-5)
    assert not torch.allclose(tf2[:, 11:], tf[:, 11:])


def test_losses_behave():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    sep = torch.cat([torch.randn(3, 8, generator=g) * 0.1 + 3, torch.randn(3, 8, generator=g) * 0.1 - 3])
    mixed = torch.randn(6, 8, generator=g)
    nce = losses.InfoNCELoss(0.1)
    assert nce(sep, labels) < nce(mixed, labels)
    assert float(losses.MarginLoss(1.0)(sep, labels)) == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(128, 4, generator=g)
    h = losses.HSICLoss()
    assert h(x, x ** 2 + 0.01 * torch.randn(128, 4, generator=g)) > 5 * h(x, torch.randn(128, 4, generator=g))
    assert float(losses.ConfusionLoss()(torch.zeros(5, 2))) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.ConfusionLoss()(torch.tensor([[5.0, -5.0]]))) > 1.0
    w = torch.from_numpy(tone(0.5))[None]
    mr = losses.MultiResolutionSTFTLoss()
    assert float(mr(w, w)) == pytest.approx(0.0, abs=1e-6)
    assert float(mr(0.5 * w, w)) > 0.1
    # the magnitude part is auraloss's multi-resolution STFT loss (engines.audio.losses.mrstft)
    from engines.audio.losses import mrstft

    est = w + 0.02 * torch.randn(w.shape, generator=g)
    sizes = (512, 1024, 2048)
    assert float(mr.magnitude(est, w)) == pytest.approx(float(mrstft(est, w, sizes, (128, 256, 512), sizes)))
    assert float(mr(est, w)) == pytest.approx(float(mr.magnitude(est, w) + mr.complex(est, w)), rel=1e-5)
    assert float(losses.MultiResolutionSTFTLoss(complex_weight=0)(est, w)) == pytest.approx(float(mr.magnitude(est, w)))
    est, ref = torch.randn(2, 10, 513), torch.randn(2, 10, 513)
    fb = torch.rand(80, 513)
    assert float(losses.LogSpectralLoss()(ref, ref, None, fb)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.LogSpectralLoss()(est, ref, None, fb)) > 0.5


def test_residual_decoder_starts_as_identity():
    m = tiny()
    raw = torch.randn(2, 597, 30)
    out = m.transfer_logmag(raw, m.style_of("violin"))
    assert torch.allclose(out, m.input_logmag(raw[None])[0].t(), atol=1e-5)
    with pytest.raises(ValueError):
        m.decoder(torch.randn(1, 5, 16), torch.randn(1, 16), torch.randn(1, 5, 513))


def test_window_starts_cover():
    assert window_starts(10, 287, 201) == [0]
    s = window_starts(690, 287, 201)
    assert s[0] == 0 and s[-1] + 287 == 690 and all(b - a <= 201 for a, b in zip(s, s[1:]))


@pytest.mark.parametrize("n", [15, 40, 97])
def test_model_transfer_logmag_any_length(n):
    m = tiny()
    raw = torch.randn(2, 597, n)
    out = m.transfer_logmag(raw, m.style_of("violin"))
    assert list(out.shape) == [513, n] and torch.isfinite(out).all()
    assert list(m.embed_style(raw).shape) == [16]
    p = m.classify(raw)
    assert p.shape == (2,) and float(p.sum()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        m.style_of("cello")


def test_checkpoint_roundtrip_keeps_stats(tmp_path):
    from engines.checkpoint import load_model, save_model

    m = tiny()
    acc = F.StatsAccumulator()
    acc.update(F.features(tone(0.5)))
    m.set_stats(acc.finalize("unified"))
    m.update_prototypes(torch.randn(4, 16), torch.tensor([0, 0, 1, 1]))
    save_model(m, tmp_path / "t.safetensors", metadata={"trained_on": "test"})
    back = load_model(tmp_path / "t.safetensors", expected=TimbreTransfer)
    assert back.stats_name == "unified"
    assert torch.equal(back.feat_std, m.feat_std) and torch.equal(back.prototypes, m.prototypes)
    raw = torch.randn(2, 597, 20)
    assert torch.allclose(back.transfer_logmag(raw, back.style_of(1)), m.transfer_logmag(raw, m.style_of(1)), atol=1e-5)


def test_griffin_lim_is_consistent():
    w = torch.from_numpy(tone(0.5))
    S = F.stft_complex(w)
    y = F.griffin_lim(S.abs(), S / S.abs().clamp_min(1e-8), len(w), n_iter=4)
    assert y.shape == w.shape
    err = (F.stft_complex(y).abs() - S.abs()).norm() / S.abs().norm()
    assert float(err) < 0.1


@pytest.fixture
def tiny_ckpt(tmp_path):
    from engines.testing import tiny_timbre

    return tiny_timbre(tmp_path / "tiny.safetensors")


def test_api_transfer_keeps_rate_and_length(tiny_ckpt, tmp_path):
    from engines.timbre.api import TimbreResult, load_engine

    eng = load_engine(checkpoint=tiny_ckpt)
    x = tone(0.7, sr=24000)
    calls = []
    res = eng.transfer(x, "violin", sr=24000, gl_iters=2, progress=lambda f, m: calls.append(f))
    assert isinstance(res, TimbreResult)
    assert list(res.audio) == ["violin"] and res.wave is res.audio["violin"]
    assert res.wave.shape == (1, len(x)) and res.sample_rate == 24000 and res.target == "violin"
    assert np.isfinite(res.wave).all() and res.timings["total"] == res.seconds > 0
    assert res.input_db.shape == res.output_db.shape and res.input_db.shape[0] == 513
    assert set(res.source_probs) == {"piano", "violin"} and calls[-1] == 1.0
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(res.wave) == pytest.approx(rms(x), rel=0.05)
    ref = tmp_path / "ref.wav"
    import soundfile as sf

    sf.write(ref, tone(0.5, decay=False), F.SAMPLE_RATE)
    res2 = eng.transfer(x, "piano", sr=24000, style_ref=str(ref), phase="input")
    assert res2.style == "ref.wav" and res2.wave.shape == (1, len(x))
    with pytest.raises(ValueError):
        eng.transfer(x, "cello", sr=24000)
    from engines.audio.errors import SilentAudioError

    with pytest.raises(SilentAudioError):
        eng.transfer(np.zeros(24000, np.float32), "violin", sr=24000)


def test_cli_writes_target_at_input_length(tiny_ckpt, tmp_path, capsys):
    import soundfile as sf

    import launch

    inp = tmp_path / "in.wav"
    sf.write(inp, tone(0.6, sr=16000), 16000)
    rc = launch.main(["timbre", "--input", str(inp), "--target", "violin", "--out_dir", str(tmp_path / "o"),
                      "--checkpoint", str(tiny_ckpt), "--gl_iters", "2"])
    assert rc == 0
    y, sr = sf.read(tmp_path / "o" / "violin.wav")
    assert sr == 16000 and len(y) == int(0.6 * 16000)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["target"] == "violin"
    rc = launch.main(["timbre", "--input", str(tmp_path / "missing.wav"), "--target", "violin",
                      "--out_dir", str(tmp_path / "o"), "--checkpoint", str(tiny_ckpt)])
    assert rc == 2


def test_extend_band_fills_what_22050_hz_cannot_hold():
    from engines.timbre.api import extend_band
    from engines.audio import io as aio

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(24000)).astype(np.float32)
    y = aio.resample(aio.resample(x[None], 24000, 22050), 22050, 24000)[0]  # loses 11.025-12 kHz
    hi = lambda a: float(np.abs(np.fft.rfft(a))[np.fft.rfftfreq(len(a), 1 / 24000) > 11300].mean())  # noqa: E731
    assert hi(y) < 0.05 * hi(x)
    z = extend_band(y, x, 24000)
    assert z.shape == y.shape and hi(z) > 0.5 * hi(x)
