"""The typed data contract (trainers/data.py): rows round-trip, malformed rows fail loudly with the
file, line and field, user folders become rows, and paths stay inside their folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from trainers import data as D

SRC = [D.Source("x.wav", "user", "user-supplied", True)]


def _write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / D.MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rows_round_trip_for_every_kind(tmp_path):
    rows = {"clips": D.ClipRow(id="c", index=0, path="speech/c.wav", sr=16000, seconds=1.0, sources=SRC, effects=[],
                               label="speech", label_index=0, rms_db=-20.0),
            "query": D.QueryRow(id="q", index=0, path="q", sr=16000, seconds=10.0, sources=SRC,
                                effects=[{"stem": "target", "effect": "reverb", "room_size": 0.5}], label="speech",
                                events=[[1.0, 2.0]], split="dev"),
            "songs": D.SongRow(id="s", index=0, path="s", sr=44100, seconds=20.0, sources=SRC, effects=[]),
            "timbre": D.TimbreRow(id="t", index=0, path="piano/t.wav", sr=24000, seconds=5.0, sources=SRC, effects=[],
                                  type="solo", instrument="piano"),
            "fusion": D.FusionRow(id="f", index=0, path="pairs/f", sr=24000, seconds=30.0, sources=SRC, effects=[],
                                  a={"tempo_bpm": 120.0}, b={"tempo_bpm": 90.0})}
    for kind, row in rows.items():
        _write(tmp_path / kind, [row.to_json()])
        back = D.read(tmp_path, kind)  # a corpus root works too
        assert back == [row] and back[0].sources[0].licence == "user-supplied"
    assert D.read(tmp_path / "query", "query", split="train") == []
    assert set(rows["songs"].files(tmp_path / "songs")) == {"mixture", "vocals", "accompaniment", "drums", "bass", "other"}
    assert rows["query"].files(tmp_path / "query")["mix"] == tmp_path / "query" / "q" / "mix.wav"


@pytest.mark.parametrize("change,match", [
    (lambda r: r.pop("sources"), "missing field 'sources'"),
    (lambda r: r.update(klass="speech"), "unknown field"),
    (lambda r: r.update(seconds="long"), "field 'seconds': expected a number"),
    (lambda r: r.update(sources=[{"path": "x", "package": "p", "licence": "MIT"}]), "missing field 'real'"),
    (lambda r: r.update(split="test"), "split must be"),
    (lambda r: r.update(path="../../etc/passwd"), "inside the kind folder"),
    (lambda r: r.update(events=[[3.0, 1.0]]), "bad event"),
    (lambda r: r.update(label=""), "needs a label"),
])
def test_a_malformed_row_is_refused_naming_file_line_and_field(tmp_path, change, match):
    good = D.QueryRow(id="q", index=0, path="q", sr=16000, seconds=10.0, sources=SRC, effects=[], label="speech",
                      events=[[1.0, 2.0]]).to_json()
    bad = dict(good)
    change(bad)
    _write(tmp_path, [good, bad])
    with pytest.raises(D.DataError, match=match) as err:
        D.read(tmp_path, "query")
    assert f"{D.MANIFEST}:2" in str(err.value)


def test_missing_manifest_and_missing_files_are_clear(tmp_path):
    with pytest.raises(D.DataError, match="holds no manifest.jsonl of songs"):
        D.read(tmp_path, "songs")
    _write(tmp_path, [D.SongRow(id="s", index=0, path="s", sr=44100, seconds=1.0, sources=SRC, effects=[]).to_json()])
    with pytest.raises(D.DataError, match="missing file"):
        D.read(tmp_path, "songs", check_files=True)
    (tmp_path / D.MANIFEST).write_text("{not json\n")
    with pytest.raises(D.DataError, match="not JSON"):
        D.read(tmp_path, "songs")


def test_user_folders_become_rows(tmp_path):
    x = np.zeros(2400, np.float32)
    for name in ("p1/input.wav", "p1/target.wav", "p2/a.wav", "p2/b.wav", "clips/piano/one.wav",
                 "tim/t1/piano.wav", "tim/t1/violin.wav", "tim/violin/solo.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, x, 24000)
    rows, base = D.load(tmp_path / "p1", "fusion")
    assert [D.fusion_files(r, base) for r in rows] == [(tmp_path / "p1/input.wav", tmp_path / "p1/target.wav")]
    assert all(r.sources[0].package == "user" and r.real for r in rows)
    clips, base = D.load(tmp_path / "clips", "clips")
    assert [(r.label, r.files(base)["audio"]) for r in clips] == [("piano", tmp_path / "clips/piano/one.wav")]
    tim, base = D.load(tmp_path / "tim", "timbre")
    assert [(r.type, r.instrument) for r in tim] == [("pair", "pair"), ("solo", "violin")]
    with pytest.raises(D.DataError, match="no folder layout"):
        D.rows_from_folder(tmp_path, "query")
