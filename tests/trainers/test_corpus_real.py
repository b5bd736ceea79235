"""Real recordings in the rendered corpus (``trainers/corpus/sources.py`` real sources).

A fake installed tree (``real_sources.SYSTEM_ROOT`` pointed at ``tmp_path``) holds a few short
files at the registered paths of two speech sources (train: two MegaGlest norsemen speakers; dev:
two persian ones), two soundtrack sources (supertux train, singularity dev), effect sources
(MegaGlest ambience, Oxygen bells), the Sonic Pi drum loops (train) and one hydrogen kit (BJA
Pacific, dev), plus evaluation-only files planted where a registered glob would find them. A few
clips / query / songs items are rendered without effects with the small TimGM6mb soundfont.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainers.corpus import real_sources as R  # noqa: E402
from trainers.corpus import sources as S  # noqa: E402

SMALL_SF2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
HAVE_TOOLS = bool(shutil.which("fluidsynth")) and bool(shutil.which("espeak-ng")) and SMALL_SF2.is_file()
pytestmark = pytest.mark.skipif(not HAVE_TOOLS, reason="fluidsynth / espeak-ng / TimGM6mb not installed")

MG = "usr/share/games/megaglest"
#: relative path -> (seconds, kind of signal)
FAKE = {
    # speech, train: two speakers (units) of megaglest-voices-norsemen
    f"{MG}/techs/megapack/factions/norsemen/units/spearman/sounds/spearman_ack1.wav": (1.2, "voice"),
    f"{MG}/techs/megapack/factions/norsemen/units/spearman/sounds/spearman_select1.wav": (0.9, "voice"),
    f"{MG}/techs/megapack/factions/norsemen/units/valkyrie/sounds/valkyrie_ack1.wav": (1.1, "voice"),
    f"{MG}/techs/megapack/factions/norsemen/units/valkyrie/sounds/valkyrie_select2.wav": (0.8, "voice"),
    # speech, dev: two speakers of megaglest-voices-persian
    f"{MG}/techs/megapack/factions/persian/units/fakir/sounds/fakir_ack1.wav": (1.0, "voice"),
    f"{MG}/techs/megapack/factions/persian/units/genie/sounds/genie_select1.wav": (1.3, "voice"),
    # music beds
    "usr/share/games/supertux2/music/antarctic/chipdisko.ogg": (40.0, "music"),
    "usr/share/games/singularity/music/Aberrations.ogg": (40.0, "music"),
    # effects (train only: no dev source has these labels)
    f"{MG}/tilesets/forest/sounds/wind.wav": (12.0, "noise"),
    "usr/share/sounds/Oxygen-Sys-App-Message.ogg": (0.8, "tone"),
    "usr/share/sounds/Oxygen-Im-Message-In.ogg": (0.6, "tone"),
    # drums: a loop set (train) and a kit (dev)
    "usr/share/sonic-pi/samples/loop_amen.flac": (1.8, "beat"),
    "usr/share/sonic-pi/samples/loop_garzul.flac": (2.0, "tone"),  # not a drum loop: never used
    "usr/share/hydrogen/data/drumkits/BJA_Pacific/BD_01.wav": (0.4, "hit"),
    "usr/share/hydrogen/data/drumkits/BJA_Pacific/SN_01.wav": (0.3, "hit"),
    "usr/share/hydrogen/data/drumkits/BJA_Pacific/HH_01.wav": (0.2, "hit"),
}
#: evaluation-only files where registered globs would find them
RESERVED = [f"{MG}/tilesets/forest/sounds/blackbird.ogg", "usr/share/sounds/Oxygen-x_desc_y.ogg"]


def _signal(kind: str, seconds: float, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    if kind == "voice":  # a buzzing vowel with a syllable envelope, 0.1 s of silence around it
        f0 = rng.uniform(100, 220)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        x[: int(0.1 * sr)] = 0
        x[-int(0.1 * sr):] = 0
    elif kind == "music":
        x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    elif kind == "noise":
        x = 0.2 * rng.standard_normal(t.size)
    elif kind in ("hit", "beat"):
        x = rng.standard_normal(t.size) * np.exp(-t / 0.05)
        if kind == "beat":
            x = x * (1 + (np.arange(t.size) % (sr // 4) < sr // 20))
    else:
        x = np.sin(2 * np.pi * 880 * t) * np.exp(-t / 0.3)
    return (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    root = tmp_path / "root"
    for rel, (secs, kind) in list(FAKE.items()) + [(r, (1.0, "tone")) for r in RESERVED]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), _signal(kind, secs, rng), 16000)
    monkeypatch.setattr(R, "SYSTEM_ROOT", root)
    S.clear_real_cache()
    # every path the renderer decodes or measures
    seen: list[str] = []
    for mod, name in ((R, "read"), (R, "duration"), (S, "read_real")):
        orig = getattr(mod, name)

        def wrapped(path, *a, _orig=orig, **k):
            seen.append(str(path))
            return _orig(path, *a, **k)
        monkeypatch.setattr(mod, name, wrapped)
    yield root, seen
    S.clear_real_cache()


def _ctx(tmp_path, real: float = 2.0):
    from trainers.corpus.kinds.base import Context
    return Context(root=tmp_path / "out", soundfont=str(SMALL_SF2), seed=5, effects=0.0, real=real)


def _split_of(path: str, root: Path) -> str:
    """The registry split of the source a fake-tree file belongs to."""
    rel = "/" + Path(path).relative_to(root).as_posix()
    for s in R.SOURCES:
        if rel.startswith(s.root.rstrip("/") + "/") and Path(path) in S.real_files(s):
            return s.split
    raise AssertionError(f"{path} belongs to no registered source")


def _check_sources(row: dict, root: Path) -> list[dict]:
    real = [s for s in row["sources"] if s["real"]]
    for s in real:
        assert s["licence"] and R.licence_ok(s["licence"]) and s["package"]
        assert not R.is_evaluation_only(s["path"])
        assert _split_of(s["path"], root) == row["split"], (row["id"], s["path"])
    return real


def _first(kind, label: str, split: str, seed: int = 5) -> int:
    from trainers.corpus.kinds.base import item_split
    return next(i for i in range(400) if item_split(i) == split and kind.plan(seed, i)["label"] == label)


def test_item_split_rule():
    from trainers.corpus.kinds.base import item_split
    assert [item_split(i) for i in range(21)].count("dev") == 2
    assert item_split(9) == item_split(19) == "dev" and item_split(0) == item_split(10) == "train"


def test_clips_use_real_recordings_of_their_split(fake_root, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    root, seen = fake_root
    k, ctx = KIND_CLASSES["clips"](), _ctx(tmp_path)
    rows = {i: k.render(ctx, i, k.plan(5, i)) for i in (0, 9, 10, 13)}  # speech, drums (dev), bells, noise
    assert [rows[i]["split"] for i in (0, 9, 10, 13)] == ["train", "dev", "train", "train"]
    for i, row in rows.items():
        assert _check_sources(row, root), (i, row["sources"])  # p * 2 >= 1: always real here
    assert rows[0]["info"]["source"]["type"] == "real-speech"
    assert rows[9]["info"]["source"]["type"] == "real-drum-kit"  # the only dev drums: the BJA kit
    assert {s["package"] for s in rows[9]["sources"]} == {"hydrogen-drumkits"}
    assert rows[10]["sources"][0]["package"] == "oxygen-sounds" and rows[10]["sources"][0]["licence"].startswith("LGPL")
    assert rows[13]["info"]["source"]["label"] == "ambience"
    # the same seed gives the same clip; the planted evaluation-only files were never touched
    again = _ctx(tmp_path / "again")
    assert k.render(again, 0, k.plan(5, 0))["sources"] == rows[0]["sources"]
    assert (again.root / "clips" / rows[0]["path"]).read_bytes() == (ctx.root / "clips" / rows[0]["path"]).read_bytes()
    assert seen and not any(Path(p).name in ("blackbird.ogg", "Oxygen-x_desc_y.ogg", "loop_garzul.flac") for p in seen)


def test_real_zero_gives_renders_only(fake_root, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    root, seen = fake_root
    ctx = _ctx(tmp_path, real=0.0)
    for kind, idx in (("clips", (0, 9, 10, 11, 13)), ("query", (0, 9))):
        k = KIND_CLASSES[kind]()
        for i in idx:
            row = k.render(ctx, i, k.plan(5, i))
            assert not any(s["real"] for s in row["sources"]), (kind, i, row["sources"])
    assert not seen


def test_query_real_target_and_background_by_split(fake_root, tmp_path):
    from trainers.corpus.kinds import KIND_CLASSES
    root, seen = fake_root
    k, ctx = KIND_CLASSES["query"](), _ctx(tmp_path)
    for split in ("train", "dev"):
        i = _first(k, "speech", split)
        row = k.render(ctx, i, k.plan(5, i))
        assert row["split"] == split
        real = _check_sources(row, root)
        d = ctx.root / "query" / row["path"]
        meta = json.loads((d / "meta.json").read_text())
        assert meta["source"]["type"] == "real-speech" and meta["source"]["split"] == split
        target_speaker = meta["source"]["speaker"]
        assert any(s["path"] in meta["source"]["files"] for s in real)
        for comp in meta["background"]:  # never the target's own speaker in the babble
            assert all(v.get("speaker") != target_speaker for v in comp.get("voices", []))
        mix, _ = sf.read(str(d / "mix.wav"), dtype="float32")
        tgt, _ = sf.read(str(d / "target.wav"), dtype="float32")
        bg, _ = sf.read(str(d / "background.wav"), dtype="float32")
        assert np.array_equal(mix, tgt + bg)
    # real backgrounds: over a few items, a real music bed, real babble and real ambience appear
    kinds = set()
    for i in range(0, 12):
        row = k.render(ctx, i, k.plan(5, i))
        _check_sources(row, root)
        meta = json.loads((ctx.root / "query" / row["path"] / "meta.json").read_text())
        for c in meta["background"]:
            if c.get("real_source") or c.get("real"):
                kinds.add(c["type"])
    assert {"babble", "ambience"} <= kinds
    assert not any(Path(p).name in ("blackbird.ogg", "Oxygen-x_desc_y.ogg") for p in seen)


def test_songs_real_speech_and_real_bed_keep_exact_sums(fake_root, tmp_path, monkeypatch):
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds import songs as SG
    root, _ = fake_root
    monkeypatch.setattr(SG, "VOCAL_KINDS", {"spoken": 1.0})
    monkeypatch.setattr(SG, "REAL_BED_P", 0.5)  # x ctx.real 2 = always
    k, ctx = KIND_CLASSES["songs"](), _ctx(tmp_path)
    for i in (0, 9):
        row = k.render(ctx, i, k.plan(5, i))
        real = _check_sources(row, root)
        assert row["info"]["accompaniment"] == "real-bed" and row["info"]["real_vocal_seconds"] > 0
        assert {s["package"] for s in real} == {"megaglest-data", {"train": "supertux-data", "dev": "singularity-music"}[row["split"]]}
        d = ctx.root / "songs" / row["path"]
        st = {n: sf.read(str(d / f"{n}.wav"), dtype="float32")[0]
              for n in ("mixture", "vocals", "accompaniment", "drums", "bass", "other")}
        assert np.array_equal(st["mixture"], st["vocals"] + st["accompaniment"])
        assert np.array_equal(st["accompaniment"], st["drums"] + st["bass"] + st["other"])
        assert not st["drums"].any() and not st["bass"].any() and np.abs(st["other"]).max() > 0.05
        meta = json.loads((d / "meta.json").read_text())
        assert meta["accompaniment"] == "real-bed" and meta["real_bed"]["real_source"]
        assert all(s["kind"] == "spoken" and s.get("real") for s in meta["vocals"]["sections"])


def test_fusion_real_bed_pairs_have_real_sources_and_estimated_meta(fake_root, tmp_path, monkeypatch):
    """Both songs of a pair from (fake) real soundtracks of the item's split: real sources with
    licences, estimated tempo/beats/key marked ``estimated``, no soundfont; the same seed gives the
    same files and row."""
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds import fusion as FU
    from trainers.corpus.kinds.base import Context
    from trainers.data import parse_row
    root, seen = fake_root
    monkeypatch.setattr(FU, "REAL_BED_P", 0.5)  # x ctx.real 2 = always, both sides
    k, ctx = KIND_CLASSES["fusion"](), _ctx(tmp_path)
    for i in (0, 9):
        row = k.render(ctx, i, k.plan(5, i))
        parse_row("fusion", row)
        real = _check_sources(row, root)
        assert real == row["sources"] and len(real) == 2  # one file per song, no soundfont
        assert {s["package"] for s in real} == {{"train": "supertux-data", "dev": "singularity-music"}[row["split"]]}
        d = ctx.root / "fusion" / row["path"]
        meta = json.loads((d / "meta.json").read_text())
        for side in ("a", "b"):
            m = meta[side]
            assert row[side]["real"] is True and row[side]["estimated"] is True and m["estimated"] is True
            assert m["source"].startswith("real:") and m["real_bed"]["files"] == [real["ab".index(side)]["path"]]
            assert m["tempo_bpm"] > 0 and m["key"]["name"] and m["time_signature"] in ("3/4", "4/4")
            assert all(0 <= t < m["seconds"] for t in m["beats"]) and set(m["downbeats"]) <= set(m["beats"])
            x, sr = sf.read(str(d / f"{side}.wav"), dtype="float32")
            assert sr == 24000 and x.size == int(round(m["seconds"] * sr)) and np.abs(x).max() > 0.05
    again = k.render(_ctx(tmp_path / "again"), 0, k.plan(5, 0))
    row0 = k.render(_ctx(tmp_path / "again2"), 0, k.plan(5, 0))
    assert again == row0
    for side in ("a", "b"):
        assert (tmp_path / "again" / "out" / "fusion" / again["path"] / f"{side}.wav").read_bytes() == \
            (tmp_path / "again2" / "out" / "fusion" / row0["path"] / f"{side}.wav").read_bytes()
    assert not any(Path(p).name in ("blackbird.ogg", "Oxygen-x_desc_y.ogg") for p in seen)


def test_fusion_rhythm_estimate_of_a_click_track():
    from trainers.corpus.kinds.fusion import estimate_rhythm
    sr = 24000
    y = np.zeros(12 * sr, np.float32)
    t = np.arange(int(0.08 * sr)) / sr
    for j in range(24):  # 120 bpm; a low kick on every 4th beat (beat 1 of 4/4 bars from 0 s), clicks between
        a = int(j * 0.5 * sr)
        hit = np.sin(2 * np.pi * (60 if j % 4 == 0 else 2000) * t) * np.exp(-t / 0.02)
        y[a:a + hit.size] += (0.9 if j % 4 == 0 else 0.3) * hit
    r = estimate_rhythm(y, sr)
    assert abs(r["tempo_bpm"] - 120) < 4 and r["beats_per_bar"] == 4
    assert len(r["beats"]) >= 18
    assert all(abs(d / 2.0 - round(d / 2.0)) < 0.05 for d in r["downbeats"])  # on the kicks, every 2 s


def test_no_installed_source_falls_back_to_renders(tmp_path, monkeypatch, caplog):
    from trainers.corpus.kinds import KIND_CLASSES
    monkeypatch.setattr(R, "SYSTEM_ROOT", tmp_path / "empty")
    S.clear_real_cache()
    try:
        k, ctx = KIND_CLASSES["clips"](), _ctx(tmp_path)
        with caplog.at_level("INFO", logger="trainers.corpus.sources"):
            row = k.render(ctx, 9, k.plan(5, 9))  # drums, dev
            k.render(ctx, 79, k.plan(5, 79))  # drums, dev again: logged once
        assert row["info"]["source"]["type"] == "gm-drums"
        assert sum("no real drums" in r.getMessage() for r in caplog.records) == 1
    finally:
        S.clear_real_cache()


def test_cli_flags_and_corpus_json(tmp_path, fake_root):
    from trainers.corpus import cli
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert p.parse_args(["--out", "x"]).real == 1.0
    assert p.parse_args(["--out", "x", "--no-real"]).real == 0.0
    assert p.parse_args(["--out", "x", "--real", "0.5"]).real == 0.5
    assert cli.main(["--out", str(tmp_path / "c"), "--kinds", "clips", "--minutes", "0.02", "--real", "0.3",
                     "--soundfont", str(SMALL_SF2), "--no-progress", "--no-effects"]) == 0
    assert json.loads((tmp_path / "c" / "corpus.json").read_text())["real"] == 0.3
    assert cli.main(["--out", str(tmp_path / "d"), "--real", "3", "--soundfont", str(SMALL_SF2)]) == 2


def test_triple_set_trains_on_train_rows(tmp_path):
    from trainers.data import QueryRow, Source
    from trainers.query_embedder import TripleSet, _triple_rows

    q = tmp_path / "query"
    rows = []
    for i in range(12):
        d = q / f"q_{i:05d}"
        d.mkdir(parents=True)
        for n in ("mix", "target", "background", "query"):
            sf.write(str(d / f"{n}.wav"), np.zeros(16000, np.float32), 16000)
        rows.append(QueryRow(id=d.name, index=i, path=d.name, sr=16000, seconds=1.0, effects=[],
                             sources=[Source("x", "audio-studio", "MIT", False)], label="piano", events=[[0.1, 0.5]],
                             split="dev" if i % 10 == 9 else "train").to_json())
    (q / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert [r["split"] for r in _triple_rows(q)].count("dev") == 1
    assert len(TripleSet([q], 2).rows) == 11
    assert len(TripleSet([q], 2, split="dev").rows) == 1 and len(TripleSet([q], 2, split=None).rows) == 12


def test_a_trainer_steps_on_a_tiny_real_source_corpus(fake_root, tmp_path):
    """Triples rendered from (fake) real recordings are read through the data contract by the query
    trainer, which fine-tunes a step on them and exports a model."""
    import os
    import subprocess
    import sys

    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.runner import plan_kind, render_plan
    from trainers.data import read

    root, _seen = fake_root
    ctx = _ctx(tmp_path)
    render_plan(plan_kind(KIND_CLASSES["query"](), ctx.seed, 1.7), ctx, progress=False)  # 10 triples, one dev
    rows = read(ctx.root, "query", check_files=True)
    assert len(rows) >= 10 and any(r.real for r in rows) and [r.split for r in rows].count("dev") >= 1
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    cmd = [sys.executable, str(repo / "launch.py"), "train", "query", "--triples", str(ctx.root / "query"),
           "--init", "query-builtin", "--out_dir", str(out), "--max_steps", "2", "--epochs", "1", "--batch_size", "2",
           "--examples_per_epoch", "4", "--seg_s", "2", "--threads", "1", "--no_mlflow",
           "--export", str(out / "q.safetensors")]
    p = subprocess.run(cmd, cwd=str(repo), capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "held out" in p.stdout and (out / "q.safetensors").is_file()


def test_songs_real_sung_sections_are_pitch_locked_real_words(fake_root, tmp_path, monkeypatch):
    """A sung section made of a real speaker's recorded words, pitch-locked to the melody: listed as
    that speaker's real recordings (no espeak-ng), with exact sums."""
    from trainers.corpus.kinds import KIND_CLASSES
    from trainers.corpus.kinds import songs as SG
    root, _ = fake_root
    monkeypatch.setattr(SG, "VOCAL_KINDS", {"sung": 1.0})
    monkeypatch.setattr(SG, "REAL_SUNG_P", 0.5)  # x ctx.real 2 = always
    k, ctx = KIND_CLASSES["songs"](), _ctx(tmp_path)
    row = k.render(ctx, 0, k.plan(5, 0))
    _check_sources(row, root)
    assert row["info"]["real_vocal_seconds"] > 0 and "espeak-ng" not in {s["package"] for s in row["sources"]}
    d = ctx.root / "songs" / row["path"]
    meta = json.loads((d / "meta.json").read_text())
    secs = meta["vocals"]["sections"]
    assert secs and all(s["kind"] == "sung" and s.get("real") and s["singer"]["words"] > 0 and s["notes"] for s in secs)
    mix, _ = sf.read(str(d / "mixture.wav"), dtype="float32")
    voc, _ = sf.read(str(d / "vocals.wav"), dtype="float32")
    acc, _ = sf.read(str(d / "accompaniment.wav"), dtype="float32")
    assert np.array_equal(mix, voc + acc) and np.abs(voc).max() > 0.01


def test_sing_words_locks_a_recorded_word_to_the_note():
    import librosa

    from trainers.corpus import voices as V
    sr = V.ESPEAK_SR
    t = np.arange(int(0.4 * sr)) / sr
    f0 = 140 * (1 + 0.15 * t)  # a gliding "spoken" word
    word = (0.3 * np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * np.hanning(t.size)).astype(np.float32)
    y = V.sing_words([(0.1, 0.8, 69)], [word], 1.2, sr, np.random.default_rng(0))
    core = y[int(0.4 * sr): int(0.7 * sr)].astype(np.float64)
    f = librosa.yin(core, fmin=200, fmax=900, sr=sr, frame_length=2048)
    assert abs(12 * np.log2(np.median(f) / 440.0)) < 0.5  # within half a semitone of A4
