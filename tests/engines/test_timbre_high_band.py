"""engines.timbre.high_band: band replication above the 22050 Hz models' Nyquist (fit, apply, checkpoint metadata)."""
import numpy as np
import pytest

from engines.audio import io as aio
from engines.timbre import high_band as H


def _tilted_noise(seconds, sr, db_per_khz, seed=0):
    """White noise whose spectrum falls by ``db_per_khz`` (a known slope for the fit to find)."""
    n = int(seconds * sr)
    X = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    return (0.05 * np.fft.irfft(X * 10 ** (db_per_khz * f / 1000 / 20), n)).astype(np.float32)


def _band_db(y, sr, lo, hi):
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return 10 * np.log10(np.mean(np.abs(np.fft.rfft(y))[(f >= lo) & (f < hi)] ** 2) + 1e-20)


def test_fit_finds_each_instruments_slope():
    """Per bin the gain is the level difference to the bin it is copied from: -6 dB/kHz noise copied 1.5 kHz up
    needs -9 dB, a tilt of -6 dB/kHz; flat noise 0 dB. The tilt never rises."""
    hb = H.fit({"violin": [(_tilted_noise(3, 24000, -6.0, s), 24000) for s in range(2)],
                "piano": [(_tilted_noise(3, 48000, 0.0, 5), 48000)]})  # resampled to the fit rate
    assert hb.hz[0] >= H.CUTOFF and hb.hz[-1] <= 12000
    g = np.asarray(hb.gain_db["violin"])
    assert abs(np.median(g) - (-9.0)) < 1.0 and abs(np.median(hb.gain_db["piano"])) < 1.0
    assert hb.slope_db_per_khz["violin"] == pytest.approx(-6.0, abs=0.7) and -1.0 < hb.slope_db_per_khz["piano"] <= 0
    assert hb.info["fitted_on"]["violin"]["clips"] == 2 and hb.edge_hz == pytest.approx(H.EDGE * H.FIT_RATE / 2)


def test_fit_skips_clips_below_the_fit_rate_and_refuses_nothing_to_fit():
    hb = H.fit({"violin": [(_tilted_noise(2, 24000, -3.0), 24000)], "piano": [(_tilted_noise(2, 22050, 0.0), 22050)]})
    assert set(hb.gain_db) == {"violin"}  # the 22050 Hz piano holds nothing up there: no curve
    with pytest.raises(ValueError, match="no clip"):
        H.fit({"piano": [(_tilted_noise(2, 16000, 0.0), 16000)]})


def test_apply_follows_the_output_not_the_input():
    """The band above the cutoff is made from the output itself: silent where the output is silent, at the
    curve's level relative to the band it is copied from where it sounds."""
    sr = 24000
    x = _tilted_noise(2, sr, 0.0)
    y = aio.resample(aio.resample(x[None], sr, 22050), 22050, sr)[0]
    y[: sr] = 0.0  # the first second silent
    hb = H.HighBand(hz=(10000.0, 12000.0), gain_db={"violin": (-6.0, -6.0)}, slope_db_per_khz={"violin": 0.0})
    z = hb.apply(y, sr, "violin")
    assert z.shape == y.shape and np.abs(z[: sr - 2048]).max() < 1e-4
    loud = z[sr + 2048:]
    assert _band_db(y[sr + 2048:], sr, 11200, 11900) < _band_db(loud, sr, 11200, 11900) - 20  # filled
    assert abs((_band_db(loud, sr, 11000, 11900) - _band_db(loud, sr, 9500, 10400)) - (-6.0)) < 1.5
    assert np.allclose(z[sr + 2048:], y[sr + 2048:], atol=0.05)  # below the cutoff: the output as it was


def test_apply_in_blocks_equals_one_pass_and_extrapolates_at_48k():
    sr = 48000
    y = _tilted_noise(3, sr, -1.0, 3)
    hb = H.HighBand(hz=(10000.0, 12000.0), gain_db={"piano": (-3.0, -5.0)}, slope_db_per_khz={"piano": -2.0})
    z = hb.apply(y, sr, "piano")
    assert np.abs(z - hb.apply(y, sr, "piano", block_seconds=0.5)).max() < 1e-5
    # past the curve: the tilt times the distance copied (17 kHz is copied from 9.5 kHz: 5 widths, 7.5 kHz)
    assert hb.gains("piano", np.array([11000.0, 12000.0, 17000.0])) == pytest.approx(
        10 ** (np.array([-4.0, -5.0, -15.0]) / 20))
    edged = H.HighBand(hz=(10000.0, 11000.0, 12000.0), gain_db={"piano": (-3.0, -5.0, -25.0)},
                       slope_db_per_khz={"piano": -2.0}, fit_rate=24000, edge_hz=11000.0)
    # at the fit rate the whole curve (its own roll-off included); above it, the curve up to the edge, then the slope
    assert edged.gains("piano", np.array([12000.0]), 24000) == pytest.approx(10 ** (-25 / 20))
    assert edged.gains("piano", np.array([12000.0, 16000.0]), 48000) == pytest.approx(10 ** (np.array([-6.0, -15.0]) / 20))
    assert hb.apply(y[:4000], 16000, "piano").shape == (4000,)  # nothing above the cutoff at 16 kHz: unchanged


def test_metadata_round_trip_and_hostile_values_refused():
    hb = H.fit({"violin": [(_tilted_noise(2, 24000, -4.0), 24000)]})
    back = H.HighBand.from_json(hb.to_json())
    assert back.hz == pytest.approx(hb.hz) and back.gain_db["violin"] == pytest.approx(hb.gain_db["violin"], abs=1e-3)
    good = hb.to_json()
    for bad in ("nope", {**good, "cutoff": float("nan")}, {**good, "hz": list(range(5000))},
                {**good, "hz": good["hz"][::-1]}, {**good, "gain_db": {"violin": [1e9] * len(good["hz"])}},
                {**good, "gain_db": {"violin": good["gain_db"]["violin"][:-1]}},
                {**good, "slope_db_per_khz": {"piano": 0.0}}):
        with pytest.raises(ValueError, match="high_band"):
            H.HighBand.from_json(bad)
