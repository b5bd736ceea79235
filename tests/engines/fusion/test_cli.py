"""``launch.py fuse`` with several B songs: one engine, one folder per B, an unreadable B reported while the others
still run (exit 2), ``--stop_on_error``; one B keeps the single-folder layout. Short synthetic songs, direct mode."""
from __future__ import annotations

import json

import soundfile as sf

from tests.engines.fusion.test_engine import SR, _song

QUICK = ["--preset", "quick", "--device", "cpu"]  # no beat tracking: fast


def _write(path, seconds, bpm, f0, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _song(seconds, bpm, f0, seed=seed), SR)
    return path


def test_several_b_songs_one_folder_each_and_a_bad_one(tmp_path, capsys, monkeypatch):
    from engines.fusion import api
    from launch import main

    loads = []
    real_load = api.FusionEngine.load.__func__
    monkeypatch.setattr(api.FusionEngine, "load",
                        classmethod(lambda cls, *a, **k: loads.append(1) or real_load(cls, *a, **k)))
    a = _write(tmp_path / "a.wav", 3.0, 120, 220, 1)
    b1 = _write(tmp_path / "bs" / "first song.wav", 3.0, 100, 660, 2)
    b2 = _write(tmp_path / "more" / "b2.wav", 2.0, 90, 330, 3)
    bad = tmp_path / "bs" / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    out = tmp_path / "out"
    rc = main(["fuse", "--a", str(a), "--b", str(tmp_path / "bs"), "--b", str(b2), "--out_dir", str(out), *QUICK])
    cap = capsys.readouterr()
    assert rc == 2 and len(loads) == 1  # the engine is loaded once for the whole batch
    # the folder is listed sorted (broken.wav, first song.wav), then b2; the broken one wrote nothing
    assert sorted(p.name for p in out.iterdir()) == ["b2", "first_song"]
    for name, b in (("first_song", b1), ("b2", b2)):
        assert sorted(p.name for p in (out / name).iterdir()) == ["fusion.json", "fusion.wav"]
        info = json.loads((out / name / "fusion.json").read_text())
        assert info["a"] == str(a) and info["b"] == str(b)
        y, sr = sf.read(out / name / "fusion.wav")
        assert sr == SR and len(y) == 3 * SR  # song A leads the length
    errors = [line for line in cap.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0], cap.err
    assert "Traceback" not in cap.err and "[100%]" in cap.err  # one progress line stream over the batch
    assert cap.out.count("Fused 3.0 s (direct, temporal)") == 2 and "2 of 3 B songs fused" in cap.out

    # --stop_on_error: the first unreadable B ends the run (the folder lists broken.wav first)
    out2 = tmp_path / "out2"
    rc = main(["fuse", "--a", str(a), "--b", str(tmp_path / "bs"), "--b", str(b2), "--out_dir", str(out2),
               "--stop_on_error", *QUICK])
    assert rc == 2 and not any(out2.rglob("fusion.wav"))

    # --dry_run: the first pair is estimated, nothing is written
    out3 = tmp_path / "out3"
    assert main(["fuse", "--a", str(a), "--b", str(b1), "--b", str(b2), "--out_dir", str(out3), "--dry_run",
                 *QUICK]) == 0
    cap = capsys.readouterr()
    assert "the estimate is for the first pair (A and first song.wav)" in cap.out and "Estimate: about" in cap.out
    assert not out3.exists() and len(loads) == 3


def test_one_b_keeps_the_single_layout_and_names_are_checked_first(tmp_path, capsys):
    from launch import main

    a = _write(tmp_path / "a.wav", 2.0, 120, 220, 1)
    b = _write(tmp_path / "b.wav", 2.0, 100, 660, 2)
    out = tmp_path / "out"
    assert main(["fuse", "--a", str(a), "--b", str(b), "--out_dir", str(out), *QUICK]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fusion.json", "fusion.wav"]
    assert "Fused 2.0 s (direct, temporal)" in capsys.readouterr().out
    # several Bs, the second's output (out3/b/fusion.wav) would be the first B: refused before any work
    out3 = tmp_path / "out3"
    inside = _write(out3 / "b" / "fusion.wav", 2.0, 100, 440, 4)
    rc = main(["fuse", "--a", str(a), "--b", str(inside), "--b", str(b), "--out_dir", str(out3), *QUICK])
    cap = capsys.readouterr()
    assert rc == 2 and "one of the inputs" in cap.err and "Fused" not in cap.out
    assert sorted(str(p.relative_to(out3)) for p in out3.rglob("*")) == ["b", "b/fusion.wav"]
