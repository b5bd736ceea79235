import numpy as np
import pytest
import torch

from engines.audio import metrics as M
from engines.audio import spectral as S


@pytest.mark.parametrize("n_fft,hop,T", [(512, 128, 16000), (1024, 256, 22050), (2048, 512, 12345)])
def test_stft_roundtrip(n_fft, hop, T):
    x = torch.randn(2, 3, T)
    X = S.stft(x, n_fft, hop)
    assert X.shape == (2, 3, n_fft // 2 + 1, T // hop + 1) and X.is_complex()
    y = S.istft(X, n_fft, hop, length=T)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-5


def test_magphase_polar_and_mel():
    X = S.stft(torch.randn(4000))
    mag, ph = S.magphase(X)
    assert torch.allclose(S.polar(mag, ph), X, atol=1e-5)
    fb = S.mel_filterbank(22050, 1024, 80, 0, 8000)
    assert fb.shape == (80, 513) and fb.dtype == torch.float32
    m = S.mel_spectrogram(torch.randn(2, 22050), 22050, n_mels=80)
    assert m.shape == (2, 80, 22050 // 256 + 1)
    sr = 22050
    y = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    C = S.cqt(y, sr, hop=256, n_bins=84)
    assert C.shape[0] == 84 and np.iscomplexobj(C)
    # A4 is bin 57 of an 84-bin CQT starting at C1 (MIDI 24)
    assert abs(int(np.argmax(np.abs(C).mean(axis=1))) - (69 - 24)) <= 1


def test_metrics_hand_computed():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(16000)
    # a scaled copy: SI-SDR is (numerically) perfect, SDR is not
    assert M.si_sdr(s, 0.5 * s) > 100
    assert M.sdr(s, 0.5 * s) == pytest.approx(10 * np.log10(1 / 0.25), abs=0.05)
    # known noise level: noise at -20 dB relative -> ~20 dB SDR and SI-SDR
    n = rng.standard_normal(16000)
    n *= np.linalg.norm(s) / np.linalg.norm(n) * 0.1
    assert M.sdr(s, s + n) == pytest.approx(20.0, abs=0.01)
    assert M.si_sdr(s, s + n) == pytest.approx(20.0, abs=0.1)
    assert M.si_sdr(s, np.zeros_like(s)) == -50.0
    assert M.cross_correlation(s, s) == pytest.approx(1.0)
    assert M.cross_correlation(s, -s) == pytest.approx(-1.0)
    assert M.energy_ratio(s, 2 * s) == pytest.approx(4.0)
    assert M.spectral_convergence(s, s) == pytest.approx(0.0, abs=1e-6)
    assert M.spectral_convergence(s, np.zeros_like(s)) == pytest.approx(1.0, abs=1e-6)
    assert [M.quality_label(v) for v in (12, 7, 1, -3)] == ["excellent", "good", "fair", "poor"]
    r = M.evaluate(s, s + n, mix=s + 3 * n)
    assert r["quality"] == "excellent" and r["si_sdri"] > 9
