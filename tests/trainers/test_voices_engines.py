"""Voice engines beside espeak-ng (trainers/corpus/voices.py): flite and festival voices, their
pitch/formant/tempo variation, sung lines, provenance, and the fall-back to espeak-ng."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from trainers.corpus import voices as V
from trainers.corpus.real_sources import licence_ok

HAVE_FLITE = shutil.which("flite") is not None
HAVE_FESTIVAL = shutil.which("festival") is not None and V._festival_has("kal_diphone")
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_flite = pytest.mark.skipif(not HAVE_FLITE, reason="flite not installed")
needs_festival = pytest.mark.skipif(not HAVE_FESTIVAL, reason="festival / festvox-kallpc16k not installed")


def _f0(x: np.ndarray, sr: int) -> float:
    import librosa
    f = librosa.yin(x.astype(np.float64), fmin=60, fmax=600, sr=sr, frame_length=2048)
    r = librosa.feature.rms(y=x, frame_length=2048)[0][: f.size]
    return float(np.median(f[: r.size][r > 0.3 * r.max()]))


def test_engine_draws_follow_the_documented_shares(monkeypatch):
    monkeypatch.setattr(V, "engine_available", lambda e: True)
    monkeypatch.setattr(V, "_festival_has", lambda v: True)
    rng = np.random.default_rng(1)
    vs = [V.random_voice(rng, lang="en", gender="male", odd=0.0) for _ in range(1500)]
    share = {e: np.mean([v.engine == e for v in vs]) for e in ("espeak-ng", "flite", "festival")}
    assert abs(share["flite"] - V.ENGINE_P["flite"]) < 0.04 and abs(share["festival"] - V.ENGINE_P["festival"]) < 0.04
    assert {v.engine_voice for v in vs if v.engine == "flite"} == set(V.ENGINE_VOICES["flite"]["en"]["male"])
    assert all(V.FORMANT_RANGE[0] <= v.formant <= V.FORMANT_RANGE[1] for v in vs if v.engine != "espeak-ng")
    # languages without voices of an engine are spoken by espeak-ng (German) or festival only (Italian men)
    de = [V.random_voice(rng, lang="de", odd=0.0) for _ in range(200)]
    it = [V.random_voice(rng, lang="it", gender="male", odd=0.0) for _ in range(300)]
    assert {v.engine for v in de} == {"espeak-ng"} and {v.engine for v in it} == {"espeak-ng", "festival"}


def test_missing_engines_fall_back_to_espeak_without_changing_the_stream(monkeypatch, caplog):
    def draws(available: bool):
        monkeypatch.setattr(V, "engine_available", lambda e: available or e == "espeak-ng")
        monkeypatch.setattr(V, "_festival_has", lambda v: available)
        rng = np.random.default_rng(5)
        vs = [V.random_voice(rng, lang="en") for _ in range(60)]
        return vs, rng.random()

    with_, after_with = draws(True)
    with caplog.at_level("INFO", logger="trainers.corpus.voices"):
        V._FALLBACK_LOGGED.clear()
        without, after_without = draws(False)
    assert after_with == after_without  # the same draws were made
    assert {v.engine for v in without} == {"espeak-ng"} and {v.engine for v in with_} > {"espeak-ng"}
    for a, b in zip(with_, without):  # the espeak-ng part of each voice is the same
        assert (a.lang, a.voice, a.variant, a.pitch, a.speed, a.gender) == (b.lang, b.voice, b.variant, b.pitch, b.speed, b.gender)
    assert any("espeak-ng speaks instead" in r.getMessage() for r in caplog.records)


def test_sources_name_engine_voice_package_and_a_free_licence():
    for (engine, ev), (package, licence) in V.VOICE_PACKAGES.items():
        assert licence_ok(licence), licence
    v = V.Voice("en", "en-us", "m1", 50, 160, "male", "festival", "kal_diphone", 1.02)
    s = V.source_of(v)
    assert (s.path, s.package, s.real) == ("festival:kal_diphone", "festvox-kallpc16k", False)
    assert V.source_of(v.as_dict()) == s and v.as_dict()["engine"] == "festival"
    e = V.source_of(V.Voice("de", "de", "f1"))
    assert (e.package, e.real) == ("espeak-ng", False)
    from trainers.corpus import provenance as P
    assert P.of_info({"type": "espeak-speech", "voice": v.as_dict()}, "x.sf2") == [s]


@needs_flite
def test_flite_speech_varies_pitch_tempo_and_formants():
    text = "The quick brown fox jumps over the lazy dog."
    sr = 16000
    base = V.Voice("en", "en-us", "m1", 50, 160, "male", "flite", "awb", 1.0)
    x = V.speak(text, base, sr)
    assert 1.0 < x.size / sr < 6.0 and np.abs(x).max() > 0.05
    hi = V.speak(text, V.Voice("en", "en-us", "m1", 75, 160, "male", "flite", "awb", 1.0), sr)
    assert _f0(hi, sr) > 1.2 * _f0(x, sr)  # pitch 75 -> a higher f0 target
    slow = V.speak(text, V.Voice("en", "en-us", "m1", 50, 120, "male", "flite", "awb", 1.0), sr)
    assert slow.size > 1.15 * x.size
    up = V.speak(text, V.Voice("en", "en-us", "m1", 50, 160, "male", "flite", "awb", 1.06), sr)
    assert up.size == pytest.approx(x.size / 1.06, rel=0.02)
    assert _f0(up, sr) / _f0(x, sr) == pytest.approx(1.06, rel=0.03)


@pytest.mark.parametrize("engine,ev,gender", [
    pytest.param("flite", "slt", "female", marks=needs_flite),
    pytest.param("festival", "kal_diphone", "male", marks=needs_festival),
])
def test_sung_lines_of_other_engines_hit_the_notes(engine, ev, gender):
    v = V.Voice("en", "en-us", "m1", 50, 160, gender, engine, ev, 1.0)
    sr = 22050
    notes = [(0.0, 0.6, 57 if gender == "male" else 67, "la"), (0.7, 0.6, 60 if gender == "male" else 70, "no")]
    y = V.sing_line(notes, v, 1.4, sr, np.random.default_rng(0))
    for start, dur, midi, _ in notes:
        seg = y[int((start + 0.2) * sr): int((start + dur - 0.1) * sr)]
        cents = 1200 * np.log2(_f0(seg, sr) / (440 * 2 ** ((midi - 69) / 12)))
        assert abs(cents) < 50, (engine, midi, cents)


@needs_flite
def test_a_clip_spoken_by_flite_lists_flite_in_its_sources(tmp_path, monkeypatch):
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng not installed")
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context
    monkeypatch.setattr(V, "ENGINE_P", {"flite": 1.0, "festival": 0.0})
    k = KIND_CLASSES["clips"]()
    ctx = Context(root=tmp_path, soundfont="/usr/share/sounds/sf2/TimGM6mb.sf2", seed=3, effects=0.0, real=0.0)
    for i in range(0, 14 * 12, 14):  # speech clips, until one has an English (flite) voice
        row = k.render(ctx, i, k.plan(3, i))
        voice = row["info"]["source"].get("voice") or {}
        if voice.get("engine") == "flite":
            assert row["sources"] == [{"path": f"flite:{voice['engine_voice']}", "package": "flite",
                                       "licence": V.VOICE_PACKAGES[("flite", "")][1], "real": False}]
            return
    pytest.fail("no flite-spoken clip among 12 speech clips")
