"""Tests of the training-corpus renderer (``trainers/corpus``).

A few seconds of every kind are rendered once per session with the small TimGM6mb soundfont and
espeak-ng; the tests then check exact stem sums, labels and metadata, loudness, pitch, determinism,
resuming and the dependency errors. Skipped where fluidsynth / espeak-ng / the soundfont are missing.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainers.corpus import CLASSES, KINDS  # noqa: E402
from trainers.corpus import deps  # noqa: E402

SMALL_SF2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
HAVE_TOOLS = bool(shutil.which("fluidsynth")) and bool(shutil.which("espeak-ng"))
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="fluidsynth / espeak-ng not installed")


def _soundfont() -> str:
    if SMALL_SF2.is_file():
        return str(SMALL_SF2)
    try:
        return str(deps.find_soundfont())
    except deps.CorpusDependencyError:
        pytest.skip("no GM soundfont installed")


def _read(path: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32")
    return x, sr


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x.astype(np.float64)))) + 1e-12))


def _rows(kind_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (kind_dir / "manifest.jsonl").read_text().splitlines() if line.strip()]


# a tiny corpus: ~1 item per kind
KIND_MINUTES = ["clips=0.12", "query=0.15", "songs=0.1", "timbre=0.1", "fusion=0.1"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    if not HAVE_TOOLS:
        pytest.skip("fluidsynth / espeak-ng not installed")
    from trainers.corpus.cli import main

    out = tmp_path_factory.mktemp("corpus")
    rc = main(["--out", str(out), "--seed", "7", "--soundfont", _soundfont(), "--no-progress",
               "--kind-minutes", *KIND_MINUTES])
    assert rc == 0
    return out


def test_classes_constant():
    assert CLASSES == ["speech", "singing", "piano", "strings", "winds", "brass", "guitar", "bass",
                       "organ", "drums", "bells", "alarms", "birds", "noise"]
    assert KINDS[:2] == ["clips", "query"]


def test_missing_fluidsynth_names_debian_packages(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(deps.shutil, "which", lambda name: None)
    with pytest.raises(deps.CorpusDependencyError) as err:
        deps.find_fluidsynth()
    msg = str(err.value)
    assert "fluidsynth" in msg and "fluid-soundfont-gm" in msg and "apt-get install" in msg
    with pytest.raises(deps.CorpusDependencyError, match="espeak-ng"):
        deps.find_espeak()
    from trainers.corpus.cli import main

    rc = main(["--out", str(tmp_path / "x"), "--minutes", "0.1", "--kinds", "clips"])
    assert rc == 2
    assert "fluidsynth" in capsys.readouterr().err


def test_missing_soundfont_names_debian_packages(tmp_path):
    with pytest.raises(deps.CorpusDependencyError, match="fluid-soundfont-gm"):
        deps.find_soundfont(tmp_path / "nope.sf2")


@needs_tools
def test_rendered_a4_piano_is_near_440_hz():
    from trainers.corpus.synth import Note, Track, render, soundfont_presets

    sf2 = _soundfont()
    assert (0, 0) in soundfont_presets(sf2) and (128, 0) in soundfont_presets(sf2)
    sr = 16000
    y = render([Track(0, [Note(0.05, 1.2, 69, 100)], reverb=0)], 1.5, sr, sf2)
    assert y.shape == (int(1.5 * sr),)
    seg = y[int(0.1 * sr): int(1.1 * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) ** 2
    freqs = np.fft.rfftfreq(seg.size, 1 / sr)
    assert abs(freqs[np.argmax(spec)] - 440.0) < 8.0
    band = spec[(freqs > 420) & (freqs < 460)].sum()
    assert band / spec[freqs > 100].sum() > 0.3


@needs_tools
def test_midi_writer_keeps_repeated_notes(tmp_path):
    from trainers.corpus.synth import Note, Track, write_midi

    path = tmp_path / "t.mid"
    write_midi(path, [Track(40, [Note(0.0, 0.6, 60), Note(0.5, 0.5, 60)])], 2.0)
    data = path.read_bytes()
    assert data[:4] == b"MThd" and data.count(b"MTrk") == 2
    assert data.count(bytes([0x90, 60])) == 2 and data.count(bytes([0x80, 60])) == 2


@needs_tools
def test_sung_note_has_the_note_pitch():
    import librosa

    from trainers.corpus.voices import ESPEAK_SR, Voice, sing_note

    y = sing_note("la", Voice("en", "en-us", "m3", 50, 160, "male"), 57, 0.8, np.random.default_rng(0))
    assert y.size == int(0.8 * ESPEAK_SR) and np.abs(y).max() > 0.01
    f0 = librosa.yin(y.astype(np.float64), fmin=80, fmax=600, sr=ESPEAK_SR, frame_length=1024, hop_length=256)
    assert abs(np.median(f0[4:-4]) / 220.0 - 1) < 0.04


def test_corpus_has_every_kind_and_a_summary(corpus_dir):
    for kind in KINDS:
        rows = _rows(corpus_dir / kind)
        assert rows, kind
        assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    summary = json.loads((corpus_dir / "corpus.json").read_text())
    assert summary["seed"] == 7 and set(summary["kinds"]) == set(KINDS)
    assert (corpus_dir / ".cache" / "catalogue.json").is_file()


def test_songs_stems_sum_exactly_to_the_mixture(corpus_dir):
    for row in _rows(corpus_dir / "songs"):
        d = corpus_dir / "songs" / row["path"]
        mix, sr = _read(d / "mixture.wav")
        voc, _ = _read(d / "vocals.wav")
        acc, _ = _read(d / "accompaniment.wav")
        fine = [_read(d / f"{s}.wav")[0] for s in ("drums", "bass", "other")]
        assert sr == 44100 and mix.ndim == 1 and mix.size > 15 * sr
        assert np.array_equal(mix, voc + acc)
        assert np.array_equal(acc, fine[0] + fine[1] + fine[2])
        assert _rms_db(voc) > -50 and _rms_db(acc) > -50 and np.abs(mix).max() <= 1.0
        meta = json.loads((d / "meta.json").read_text())
        for key in ("source", "tempo_bpm", "tempo_qpm", "time_signature", "key", "instruments", "vocals", "notes"):
            assert key in meta, key
        secs = meta["vocals"]["sections"]
        assert 1 <= len(secs) <= 2 and all(s["kind"] in ("sung", "choir_aahs", "voice_oohs", "synth_voice", "spoken")
                                           for s in secs)
        assert 0.3 <= meta["vocals"]["fraction"] <= 0.8
        assert -3.5 <= meta["vocals"]["var_db_target"] <= 4.5
        assert meta["key"]["name"] and meta["instruments"]


def test_query_triples_mix_is_target_plus_background(corpus_dir):
    for row in _rows(corpus_dir / "query"):
        d = corpus_dir / "query" / row["path"]
        mix, sr = _read(d / "mix.wav")
        tgt, _ = _read(d / "target.wav")
        bg, _ = _read(d / "background.wav")
        q, _ = _read(d / "query.wav")
        assert sr == 16000 and mix.size == 10 * sr
        assert np.array_equal(mix, tgt + bg)
        meta = json.loads((d / "meta.json").read_text())
        assert meta["class"] in CLASSES and meta["class"] == row["label"]
        assert 1 <= len(meta["events"]) <= 3
        inside = np.zeros(mix.size, bool)
        for a, b in meta["events"]:
            assert 0 <= a < b <= 10.0
            inside[int(a * sr): int(b * sr)] = True
        assert np.abs(tgt[~inside]).max() < 1e-3  # the target is silent outside its events
        assert -5.5 <= meta["tbr_db_active"] <= 5.5
        assert 1.0 <= q.size / sr <= 4.0 and _rms_db(q) > -40 and _rms_db(bg) > -60
        assert meta["query"]["relation"] and meta["background"]


def test_clips_are_labelled_and_audible(corpus_dir):
    rows = _rows(corpus_dir / "clips")
    assert len(rows) >= 2
    for row in rows:
        assert row["label"] == CLASSES[row["index"] % len(CLASSES)]
        assert row["path"].startswith(row["label"] + "/")
        x, sr = _read(corpus_dir / "clips" / row["path"])
        assert sr == 16000 and 1.0 <= x.size / sr <= 4.0
        assert _rms_db(x) > -45


def test_timbre_pairs_share_the_melody(corpus_dir):
    every = _rows(corpus_dir / "timbre")
    assert all(r["split"] == ("dev" if r["index"] % 10 == 9 else "train") for r in every)
    rows = [r for r in every if r["type"] == "pair"]
    assert rows
    for row in rows:
        d = corpus_dir / "timbre" / row["path"]
        piano, sr = _read(d / "piano.wav")
        violin, _ = _read(d / "violin.wav")
        assert sr == 24000 and piano.shape == violin.shape
        assert abs(_rms_db(piano) + 20) < 1.5 and abs(_rms_db(violin) + 20) < 1.5
        notes = json.loads((d / "melody.json").read_text())["notes"]
        assert len(notes) >= 4
        assert all(55 <= n["pitch"] <= 100 and n["offset"] > n["onset"] and 1 <= n["velocity"] <= 127 for n in notes)
        onsets = [n["onset"] for n in notes]
        assert onsets == sorted(onsets) and all(b >= a["offset"] - 1e-3 for a, b in zip(notes, onsets[1:]))


def test_fusion_pairs_have_beats_tempo_and_key(corpus_dir):
    for row in _rows(corpus_dir / "fusion"):
        d = corpus_dir / "fusion" / row["path"]
        meta = json.loads((d / "meta.json").read_text())
        for side in ("a", "b"):
            x, sr = _read(d / f"{side}.wav")
            m = meta[side]
            assert sr == 24000 and 15.0 <= x.size / sr <= 30.01 and _rms_db(x) > -30
            assert m["tempo_bpm"] > 0 and m["tempo_qpm"] > 0 and "/" in m["time_signature"]
            assert m["key"]["name"] and len(m["beats"]) >= len(m["downbeats"]) > 2
            if m.get("real"):  # a real music bed: estimated meta, its file among the row's real sources
                assert m["estimated"] is True and row[side]["estimated"] is True
                assert any(s["real"] and s["path"] == m["real_bed"]["files"][0] for s in row["sources"])
            else:
                assert m["instruments"] and m["drums"] and m["downbeats"][0] == 0.0
        assert meta["a"]["source"] != meta["b"]["source"]


def test_same_seed_gives_identical_files_and_resume_skips(corpus_dir, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context

    # re-render the first items of three kinds elsewhere (sharing the parsed-score cache)
    other = tmp_path / "again"
    shutil.copytree(corpus_dir / ".cache", other / ".cache")
    ctx = Context(root=other, soundfont=_soundfont(), seed=7)
    for kind in ("clips", "query", "timbre"):
        k = KIND_CLASSES[kind]()
        row = k.render(ctx, 0, k.plan(7, 0))
        a, b = corpus_dir / kind / row["path"], other / kind / row["path"]
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()) if a.is_dir() else [Path()]
        assert files
        for f in files:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f"{kind}/{row['path']}/{f}"
    # another seed gives other audio
    k = KIND_CLASSES["clips"]()
    ctx2 = Context(root=tmp_path / "seed8", soundfont=_soundfont(), seed=8)
    shutil.copytree(corpus_dir / ".cache", ctx2.root / ".cache")
    row = k.render(ctx2, 0, k.plan(8, 0))
    assert (ctx2.root / "clips" / row["path"]).read_bytes() != (corpus_dir / "clips" / row["path"]).read_bytes()
    # resuming: the finished corpus renders nothing again
    from trainers.corpus.runner import plan_kind, render_plan

    ctx0 = Context(root=corpus_dir, soundfont=_soundfont(), seed=7)
    stats = render_plan(plan_kind(KIND_CLASSES["clips"](), 7, 0.12), ctx0, progress=False)
    assert stats["rendered"] == 0 and stats["skipped"] == stats["items"] > 0


def test_effects_are_recorded_and_can_be_turned_off(corpus_dir, tmp_path):
    from trainers.corpus.effects import ORDER
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context

    for kind, stems in (("songs", {"vocals", "drums", "bass", "other"}), ("query", {"target", "background", "query"})):
        for row in _rows(corpus_dir / kind):
            assert isinstance(row["effects"], list)
            assert all(e["stem"] in stems and e["effect"] in ORDER for e in row["effects"])
            meta_name = "meta.json"
            meta = json.loads((corpus_dir / kind / row["path"] / meta_name).read_text())
            assert meta["effects"] == row["effects"]
    # --no-effects: an empty chain, and the same item otherwise
    shutil.copytree(corpus_dir / ".cache", tmp_path / "off" / ".cache")
    k = KIND_CLASSES["query"]()
    off = k.render(Context(root=tmp_path / "off", soundfont=_soundfont(), seed=7, effects=0.0), 0, k.plan(7, 0))
    on = k.render(Context(root=tmp_path / "off", soundfont=_soundfont(), seed=7, effects=1.5), 1, k.plan(7, 1))
    assert off["effects"] == [] and on["effects"]
    assert off["label"] == _rows(corpus_dir / "query")[0]["label"]


def test_every_row_follows_the_contract_with_licensed_sources(corpus_dir):
    from trainers.data import read

    for kind in KINDS:
        rows = read(corpus_dir, kind, check_files=True)
        assert rows
        for r in rows:
            assert r.sources and all(s.package and s.licence and "NC" not in s.licence.split("-") for s in r.sources)
            assert r.split == "train" and isinstance(r.effects, list)


def test_timbre_pairs_share_one_production_chain(corpus_dir, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context

    shutil.copytree(corpus_dir / ".cache", tmp_path / "fx" / ".cache")
    k = KIND_CLASSES["timbre"]()
    row = k.render(Context(root=tmp_path / "fx", soundfont=_soundfont(), seed=7, effects=1.5), 0, k.plan(7, 0))
    assert row["type"] == "pair" and row["effects"]
    by = {s: [{k_: v for k_, v in e.items() if k_ != "stem"} for e in row["effects"] if e["stem"] == s]
          for s in ("piano", "violin")}
    assert by["piano"] and by["piano"] == by["violin"]  # the same room and chain for both
    d = tmp_path / "fx" / "timbre" / row["path"]
    for name in ("piano", "violin"):
        x, _ = _read(d / f"{name}.wav")
        assert abs(_rms_db(x) + 20) < 1.5
    assert json.loads((d / "melody.json").read_text())["effects"] == row["effects"]
    off = k.render(Context(root=tmp_path / "fx0", soundfont=_soundfont(), seed=7, effects=0.0), 0, k.plan(7, 0))
    assert off["effects"] == []


def test_fusion_songs_get_their_own_chain_at_their_level(corpus_dir, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context

    shutil.copytree(corpus_dir / ".cache", tmp_path / "fx" / ".cache")
    k = KIND_CLASSES["fusion"]()
    on = k.render(Context(root=tmp_path / "fx", soundfont=_soundfont(), seed=7, effects=1.5), 0, k.plan(7, 0))
    shutil.copytree(corpus_dir / ".cache", tmp_path / "fx0" / ".cache")
    off = k.render(Context(root=tmp_path / "fx0", soundfont=_soundfont(), seed=7, effects=0.0), 0, k.plan(7, 0))
    assert off["effects"] == [] and on["effects"] and {e["stem"] for e in on["effects"]} <= {"a", "b"}
    for side in ("a", "b"):
        x1, _ = _read(tmp_path / "fx" / "fusion" / on["path"] / f"{side}.wav")
        x0, _ = _read(tmp_path / "fx0" / "fusion" / off["path"] / f"{side}.wav")
        assert x1.shape == x0.shape and abs(_rms_db(x1) - _rms_db(x0)) < 1.0


def test_timbre_piano_soundfont_renders_the_pianos_only(corpus_dir, tmp_path):
    """--piano-soundfont: the same notes and chain, the piano from the other soundfont, the violin unchanged."""
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context

    fonts = [f for f in ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2")
             if Path(f).is_file()]
    if len(fonts) < 2:
        pytest.skip("needs both TimGM6mb and FluidR3_GM")
    k = KIND_CLASSES["timbre"]()
    rows = {}
    for name, piano_sf in (("same", None), ("other", fonts[0])):
        shutil.copytree(corpus_dir / ".cache", tmp_path / name / ".cache")
        ctx = Context(root=tmp_path / name, soundfont=fonts[1], seed=7, effects=0.0, piano_soundfont=piano_sf)
        rows[name] = k.render(ctx, 0, k.plan(7, 0))
    same, other = (tmp_path / n / "timbre" / rows[n]["path"] for n in ("same", "other"))
    v1, _ = _read(same / "violin.wav")
    v2, _ = _read(other / "violin.wav")
    p1, _ = _read(same / "piano.wav")
    p2, _ = _read(other / "piano.wav")
    np.testing.assert_array_equal(v1, v2)
    assert p1.shape == p2.shape and not np.allclose(p1, p2, atol=1e-3)
    assert {s["package"] for s in rows["other"]["sources"]} >= {"timgm6mb-soundfont", "fluid-soundfont-gm"}
    meta = json.loads((other / "melody.json").read_text())
    assert meta["soundfonts"] == {"piano": "TimGM6mb.sf2", "violin": "FluidR3_GM.sf2"}
    assert meta["notes"] == json.loads((same / "melody.json").read_text())["notes"]
    assert "soundfonts" not in json.loads((same / "melody.json").read_text())


def test_timbre_slow_holds_notes_longer_and_zero_changes_nothing(corpus_dir, tmp_path):
    """--timbre-slow 1: the same tune at a slow felt beat (notes held for seconds); 0: the files as without it."""
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds.base import Context
    from trainers.corpus.kinds.timbre import SLOW_TEMPO

    k = KIND_CLASSES["timbre"]()
    notes, info = {}, {}
    for name, slow in (("plain", 0.0), ("slow", 1.0)):
        shutil.copytree(corpus_dir / ".cache", tmp_path / name / ".cache")
        ctx = Context(root=tmp_path / name, soundfont=_soundfont(), seed=7, effects=0.0, timbre_slow=slow)
        row = k.render(ctx, 0, k.plan(7, 0))
        meta = json.loads((tmp_path / name / "timbre" / row["path"] / "melody.json").read_text())
        notes[name], info[name] = meta["notes"], meta
    mean_dur = {n: np.mean([x["offset"] - x["onset"] for x in v]) for n, v in notes.items()}
    assert info["slow"]["slow"] is True and "slow" not in info["plain"]
    assert SLOW_TEMPO[0] * 0.4 <= info["slow"]["tempo_bpm"] <= SLOW_TEMPO[1] and mean_dur["slow"] > 1.5 * mean_dur["plain"]
    assert [x["pitch"] for x in notes["slow"]] == [x["pitch"] for x in notes["plain"]][:len(notes["slow"])]
    assert info["plain"]["source"] == info["slow"]["source"]
