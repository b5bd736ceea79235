"""The synthesis decoder: the harmonic-plus-noise synthesiser, the pitch tracker and polyphony check, the
TimbreSynth model (checkpoint, windows, engine path, chunked == whole, the polyphony warning)."""
import json

import numpy as np
import pytest
import torch

from engines.timbre import features as F
from engines.timbre import pitch
from engines.timbre import synth as S
from engines.testing import TINY_SYNTH, tiny_timbre_synth

torch.set_num_threads(1)
SR = F.SAMPLE_RATE


def tiny_synth(path=None, seed=0):
    """A tiny TimbreSynth with every weight randomised and class prototypes set."""
    return tiny_timbre_synth(path, seed)


def melody(notes, sr=SR, harmonics=(1, 0.5, 0.3, 0.2), decay=0.0):
    """A monophonic harmonic melody: ``notes`` = [(onset s, offset s, midi)]."""
    y = np.zeros(int(notes[-1][1] * sr) + sr // 10, np.float32)
    for on, off, midi in notes:
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        t = np.arange(int((off - on) * sr)) / sr
        env = np.minimum(1, t * 50) * np.exp(-decay * t)
        y[int(on * sr):int(on * sr) + len(t)] += 0.1 * env * sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t)
                                                                 for k, a in enumerate(harmonics))
    return y


NOTES = [(0.0, 0.4, 69), (0.4, 0.8, 72), (0.8, 1.3, 76), (1.3, 1.8, 74)]


# ------------------------------------------------------------------------------------------ synthesiser
def test_harmonic_is_the_sum_of_its_partials_and_block_size_free():
    N, hop = 40, 256
    f0 = torch.full((1, N), 3000.0)
    amps = torch.zeros(1, N, 6)
    amps[..., 0], amps[..., 2], amps[..., 4] = 1.0, 0.5, 0.25  # 3 kHz, 9 kHz, 15 kHz (above Nyquist: muted)
    T = (N - 1) * hop
    y = S.harmonic(f0, amps, SR, hop, T)
    t = torch.arange(T, dtype=torch.float64) / SR
    expect = torch.sin(2 * np.pi * 3000 * t) + 0.5 * torch.sin(2 * np.pi * 9000 * t)
    assert torch.allclose(y.double(), expect, atol=2e-3)
    assert torch.allclose(S.harmonic(f0, amps, SR, hop, T, block=1000), y, atol=1e-5)
    spec = np.abs(np.fft.rfft(y[0].numpy()))
    assert np.argmax(spec) == round(3000 * T / SR)


def test_upsample_is_linear_between_frame_centres_and_holds_after():
    x = torch.tensor([[[0.0, 1.0, 3.0]]])
    y = S.upsample(x, 4, 12)[0, 0]
    assert torch.allclose(y[:9], torch.tensor([0, .25, .5, .75, 1, 1.5, 2, 2.5, 3]))
    assert torch.all(y[9:] == 3)


def test_filtered_noise_follows_its_bands_and_silence_is_silent():
    N, hop, T = 50, 256, 49 * 256
    g = torch.Generator().manual_seed(0)
    assert torch.count_nonzero(S.filtered_noise(torch.zeros(1, N, 9), hop, T, g)) == 0
    low = torch.zeros(1, N, 9)
    low[..., :2] = 1.0  # 0 .. ~1.4 kHz
    y = S.filtered_noise(low, hop, T, torch.Generator().manual_seed(0))[0].numpy()
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f < 2000].sum() > 50 * spec[f > 4000].sum()


def test_reverb_adds_a_tail_and_every_control_gets_gradients():
    synth = S.HarmonicNoiseSynth(SR, 256, 2, reverb_seconds=0.1)
    imp = torch.zeros(1, 4000)
    imp[0, 0] = 1.0
    out = synth.reverb(imp, torch.tensor([1]))
    assert out[0, 0] == 1.0 and out[0, 1:].abs().sum() > 0  # dry path kept, wet tail after it
    N = 30
    amp = torch.full((2, N), 0.5, requires_grad=True)
    harm = torch.softmax(torch.randn(2, N, 8), -1).requires_grad_()
    noise = torch.full((2, N, 9), 0.01, requires_grad=True)
    y = synth(torch.full((2, N), 330.0), amp, harm, noise, torch.tensor([0, 1]), generator=torch.Generator().manual_seed(1))
    assert y.shape == (2, (N - 1) * 256)
    y.pow(2).mean().backward()
    for p in (amp, harm, noise, synth.reverb.ir, synth.reverb.decay):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_spectral_magnitude_loss_is_zero_on_itself_and_phase_free():
    from engines.timbre.losses import SpectralMagnitudeLoss

    loss = SpectralMagnitudeLoss()
    t = torch.arange(8192) / SR
    a = torch.sin(2 * np.pi * 440 * t)[None]
    b = torch.sin(2 * np.pi * 440 * t + 1.0)[None]  # the same tone, another phase
    c = torch.sin(2 * np.pi * 660 * t)[None]
    assert float(loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(a, b)) < 0.25 * float(loss(a, c))  # the phase costs a little (at the clip edges) only
    # a near-silent reference (a decayed note's window) gives a bounded loss, not a division by ~0
    quiet = 1e-6 * torch.randn(1, 8192, generator=torch.Generator().manual_seed(0))
    assert float(loss(a, quiet)) < 30 and float(loss(quiet, a)) < 30
    assert float(loss(0.5 * a, a)) == pytest.approx(float(loss(a, 0.5 * a)), rel=0.05)  # symmetric in loudness


# ------------------------------------------------------------------------------------------ pitch
def test_track_follows_a_melody_and_holds_pitch_through_silence():
    y = melody(NOTES)
    y[int(1.8 * SR):] = 0.0
    f0, loud, voiced = pitch.track(y)
    assert len(f0) == len(y) // F.HOP + 1 == len(loud) == len(voiced)
    notes = [{"onset": a, "offset": b, "pitch": p} for a, b, p in NOTES]
    assert pitch.cents_accuracy(f0, notes) > 0.95
    assert not voiced[-3:].any() and abs(1200 * np.log2(f0[-1] / 587.33)) < 50  # the last note's pitch, held


def test_track_removes_short_octave_slips_and_keeps_short_notes():
    # the refinement's multiple check can read a decayed note an octave up for a frame or two: removed
    f0 = np.full(60, 261.63, np.float32)
    f0[20:22] = 523.25  # a two-frame slip
    f0[40:43] = 392.0  # three frames: kept
    out = pitch.remove_slips(f0)
    np.testing.assert_allclose(out[:35], 261.63, rtol=1e-5)
    np.testing.assert_allclose(out[40:43], 392.0, rtol=1e-5)
    # a 90 ms note an octave up inside a held note survives the whole tracker
    y = melody([(0.0, 1.0, 60), (1.0, 1.09, 72), (1.09, 2.0, 60)])
    f0, _, _ = pitch.track(y)
    assert np.sum(np.abs(1200 * np.log2(f0 / 523.25)) < 50) >= 4


def test_note_features_mark_onsets_hold_the_peak_and_count_the_age():
    # a struck, decaying tone held for 1.5 s, then a new note at the same level, then a change of pitch (legato)
    y = melody([(0.1, 1.6, 60), (1.6, 2.2, 60), (2.2, 2.8, 67)], decay=3.0)
    f0, loud, _ = pitch.track(y)
    nf = pitch.note_features(f0, loud)
    assert nf.shape == (len(f0), 3) and np.array_equal(nf[:, 0], loud)
    t = np.arange(len(f0)) * F.HOP / SR
    onsets = t[nf[:, 2] == 0]
    assert len(onsets) == 4 and onsets[0] == 0.0  # the clip's start, then one per note
    np.testing.assert_allclose(onsets[1:], [0.1, 1.6, 2.2], atol=0.03)
    held = (t > 0.3) & (t < 1.5)  # inside the first note: loudness decays, the note's loudest stays
    assert loud[held][-1] < loud[held][0] - 20
    assert np.ptp(nf[held, 1]) < 0.5 and np.all(nf[held, 1] >= loud[held])
    np.testing.assert_allclose(nf[held, 2], t[held] - onsets[1], atol=0.013)  # the age, in seconds
    # the beating of a decaying note (a 6 dB wobble 30 dB down) starts no note
    wob = melody([(0.0, 2.0, 64)], decay=3.0)
    tt = np.arange(len(wob)) / SR
    wob *= 1 + 0.9 * (tt > 1.0) * np.sin(2 * np.pi * 3 * tt) ** 2
    f0w, lw, _ = pitch.track(wob)
    assert (pitch.note_features(f0w, lw)[:, 2] == 0).sum() == 1


def test_polyphony_tells_a_chord_from_a_melody():
    mono = melody(NOTES)
    chord = melody([(0.0, 1.8, 60)]) + melody([(0.0, 1.8, 64)]) + melody([(0.0, 1.8, 67)])
    assert pitch.polyphony(mono) < pitch.POLY_FRAMES < pitch.polyphony(chord)


# ------------------------------------------------------------------------------------------ the model
def test_checkpoint_round_trip_and_windows_match_the_whole_clip(tmp_path):
    from engines.checkpoint import load_model
    from engines.timbre.model import TimbreTransfer
    from engines.timbre.synth_model import TimbreSynth

    path = tiny_synth(tmp_path / "s.safetensors")
    m = load_model(path, expected=TimbreTransfer)
    assert isinstance(m, TimbreSynth)
    y = melody(NOTES)
    raw = F.features(y)
    f0, loud, _ = pitch.track(y)
    f0, loud = torch.from_numpy(f0), torch.from_numpy(loud)
    ctl = m.transfer_controls(raw, f0, loud, m.style_of("violin"))
    K = m.decoder.K
    assert ctl.shape == (raw.shape[-1], 1 + K + TINY_SYNTH["n_noise"])
    assert torch.allclose(ctl[:, 1:1 + K].sum(-1), torch.ones(len(ctl)), atol=1e-4)  # one distribution per frame
    # a window inside the clip: its controls equal the decoder on that window alone where no other window overlaps
    content = m.content_encoder(m.prepare(raw[None, ..., :40]))
    first = m.decoder.controls(content, m.style_of("violin")[None], f0[None, :40], loud[None, :40])[0]
    assert torch.allclose(ctl[:20], first[:20], atol=1e-5)
    wave = m.transfer_wave(raw, f0, loud, m.style_of("violin"), 1, len(y))
    assert wave.shape == (len(y),) and torch.isfinite(wave).all()
    assert torch.equal(wave, m.transfer_wave(raw, f0, loud, m.style_of("violin"), 1, len(y)))  # fixed noise seed


def test_note_features_decoder_takes_dynamics_and_windows_see_notes_begun_before_them():
    from engines.timbre.synth_model import SynthDecoder, TimbreSynth

    torch.manual_seed(0)
    kw = {k: v for k, v in TINY_SYNTH.items()}
    m = TimbreSynth(**{**kw, "note_features": True}).eval()
    assert m.note_features and m.decoder.in_pitch.in_features == 5
    y = melody([(0.0, 1.5, 60)], decay=3.0)
    f0, loud, _ = pitch.track(y)
    dyn = m.dynamics(f0, loud)
    assert dyn.shape == (len(f0), 3)
    raw = F.features(y)
    ctl = m.transfer_controls(raw, torch.from_numpy(f0), dyn, m.style_of("violin"))
    assert ctl.shape[0] == raw.shape[-1] and torch.isfinite(ctl).all()
    with pytest.raises(ValueError, match="dynamics"):  # plain loudness to a note-feature decoder
        m.transfer_controls(raw, torch.from_numpy(f0), torch.from_numpy(loud), m.style_of("violin"))
    old = SynthDecoder(8, 8, 16, 1, 2, 0.0, 8, 9)
    with pytest.raises(ValueError, match="loudness"):
        old(torch.zeros(1, 5, 8), torch.zeros(1, 8), torch.full((1, 5), 440.0), torch.zeros(1, 5, 3))
    # the age feature is what the whole clip says: a window starting mid-note sees the note's age, not zero
    late = slice(60, 100)
    assert float(dyn[late][0, 2]) > 0.6 and float(dyn[late][0, 1]) > float(dyn[late][0, 0]) + 5


def test_engine_runs_a_synth_model_chunked_equals_whole_and_warns_on_chords(tmp_path):
    from engines.timbre import Engine

    eng = Engine.load(tiny_synth(tmp_path / "s.safetensors"), device="cpu")
    assert eng.monophonic
    y = np.tile(melody(NOTES), 2)
    whole = eng.run((y, SR), target="violin")
    assert whole.phase == "synthesised" and whole.wave.shape == (1, len(y)) and whole.warning is None
    assert whole.input_db.shape == whole.output_db.shape == (513, len(y) // F.HOP + 1)
    eng.chunk_frames = 60  # several chunks of windows
    chunked = eng.run((y, SR), target="violin")
    np.testing.assert_allclose(chunked.wave, whole.wave, atol=2e-4)
    chord = melody([(0.0, 1.8, 60)]) + melody([(0.0, 1.8, 64)]) + melody([(0.0, 1.8, 67)])
    res = eng.run((chord, SR), target="piano")
    assert res.warning and "polyphonic" in res.warning and res.summary()["warning"] == res.warning
    assert json.loads(json.dumps(res.summary()))["polyphony"] > pitch.POLY_FRAMES


def test_engine_fills_the_high_band_from_the_checkpoints_curves_and_refuses_bad_ones(tmp_path):
    """At 24 kHz the band above 10 kHz follows the model's own output at the checkpoint's gain for the target
    (here -40 dB: far under what the input-based fill gives for a bright input); a malformed curve is refused."""
    from engines.checkpoint import load_model, save_model
    from engines.timbre import Engine
    from engines.timbre.high_band import HighBand

    sr = 24000
    t = np.arange(int(1.5 * sr)) / sr
    bright = (0.1 * np.sin(2 * np.pi * 440 * t) + 0.02 * np.random.default_rng(0).standard_normal(len(t)))
    bright = bright.astype(np.float32)
    model = load_model(tiny_synth(tmp_path / "s.safetensors"))
    hb = HighBand(hz=(10000.0, 12000.0), gain_db={"violin": (-40.0, -40.0)}, slope_db_per_khz={"violin": 0.0})
    save_model(model, tmp_path / "hb.safetensors", metadata={"high_band": hb.to_json()})

    def band(y, lo, hi):
        f = np.fft.rfftfreq(y.shape[-1], 1 / sr)
        return 10 * np.log10(np.mean(np.abs(np.fft.rfft(y[0]))[(f >= lo) & (f < hi)] ** 2) + 1e-20)

    with_curve = Engine.load(tmp_path / "hb.safetensors", device="cpu")
    assert with_curve.high_band is not None and Engine.load(tmp_path / "s.safetensors", device="cpu").high_band is None
    a = with_curve.run((bright, sr), target="violin").wave
    b = Engine.load(tmp_path / "s.safetensors", device="cpu").run((bright, sr), target="violin").wave
    assert band(a, 11000, 11900) - band(a, 8500, 9900) < -25  # the curve's level, under the band below
    assert band(b, 11000, 11900) > band(a, 11000, 11900) + 15  # the input-based fill: the bright input's band
    save_model(model, tmp_path / "bad.safetensors", metadata={"high_band": {**hb.to_json(), "width": "x"}})
    with pytest.raises(ValueError, match="high_band"):
        Engine.load(tmp_path / "bad.safetensors", device="cpu")


def test_vibrato_wavers_held_notes_only_each_from_its_own_onset():
    fps = SR / F.HOP
    n = int(2 * fps)
    f0 = np.full(n, 440.0)
    age = np.concatenate([np.arange(n // 2), np.arange(n - n // 2)]) / fps  # two notes of 1 s
    v = pitch.vibrato(f0, age, 30.0)
    cents = 1200 * np.log2(v / 440.0)
    young = age < pitch.VIBRATO_DELAY
    assert np.abs(cents[young]).max() < 1e-3  # a note younger than the delay keeps its pitch
    assert 25 < np.abs(cents).max() <= 30.0 + 1e-3
    np.testing.assert_allclose(cents[: n // 2], cents[n // 2: n // 2 * 2], atol=1e-3)  # each note from its onset
    assert np.array_equal(pitch.vibrato(f0, age, 0.0), f0.astype(np.float32))


def test_engine_vibrato_reaches_the_synthesiser_and_zero_changes_nothing(tmp_path):
    from engines.timbre import Engine

    eng = Engine.load(tiny_synth(tmp_path / "s.safetensors"), device="cpu")
    held = melody([(0.0, 1.6, 69)])
    seen = []
    render = eng.model.render
    eng.model.render = lambda controls, f0, *a, **k: seen.append(f0.clone()) or render(controls, f0, *a, **k)
    plain = eng.run((held, SR), target="violin")
    wavy = eng.run((held, SR), target="violin", vibrato=40.0)
    spread = 1200 * np.log2(seen[1].numpy() / seen[0].numpy())
    early = int(0.35 * SR / F.HOP)
    assert np.abs(spread[:early]).max() < 1 and np.abs(spread[early:]).max() > 30  # only once the note is 0.4 s old
    assert not np.allclose(plain.wave, wavy.wave)
    assert np.array_equal(eng.run((held, SR), target="violin", vibrato=0.0).wave, plain.wave)
