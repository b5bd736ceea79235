"""No command loses a user's file: for every engine, every input/output name collision (by name, by
symlink, by hard link) is refused with exit code 2, the inputs are byte-for-byte unchanged and no
output is left behind; an unusable --out_dir is refused before the work; killed writes leave no
litter that later runs keep."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import launch
from engines.atomic import OutputStage, atomic_path, clean_stale

ROOT = Path(__file__).resolve().parents[2]


def _tone(path: Path, seconds: float = 2.0, sr: int = 16000, freq: float = 440.0, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr, format="WAV")  # WAV content whatever the name
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str], folder: Path, capsys) -> str:
    """Run the CLI; assert exit code 2, one-line error, and that ``folder`` is exactly as before."""
    before = _snapshot(folder)
    rc = launch.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert _snapshot(folder) == before  # inputs intact, nothing added (hidden staging files included)
    assert not [p for p in folder.rglob(".*")], "litter left behind"
    return err[-1]


# ------------------------------------------------------------------ separate
@pytest.fixture(scope="module")
def query_class(tmp_path_factory) -> str:
    """The class the built-in model gives our query clip (its renamed copy is written as <class>.wav)."""
    d = tmp_path_factory.mktemp("sepclass")
    mix, q = _tone(d / "m.wav", 2.0, freq=880), _tone(d / "q.wav", 1.0, freq=880, noise=0.0)
    rc = launch.main(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(d / "o"),
                      "--save_visualizations", "False", "--threads", "1"])
    assert rc in (0, 3)
    wavs = {p.name for p in (d / "o").glob("*.wav")} - {"target.wav", "residual.wav"}
    assert len(wavs) == 1
    return next(iter(wavs))[:-4]


@pytest.mark.parametrize("mix_name", ["target.wav", "residual.wav"])
def test_separate_mixture_named_like_an_output(tmp_path, capsys, mix_name):
    out = tmp_path / "out"
    mix, q = _tone(out / mix_name, 2.0, freq=880), _tone(tmp_path / "q.wav", 1.0, freq=880, noise=0.0)
    msg = _refused(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(out)], out, capsys)
    assert "one of the inputs" in msg


def test_separate_query_named_after_its_class(tmp_path, capsys, query_class):
    out = tmp_path / "out"
    mix = _tone(tmp_path / "m.wav", 2.0, freq=880)
    q = _tone(out / f"{query_class}.wav", 1.0, freq=880, noise=0.0)
    _refused(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(out),
              "--save_visualizations", "False", "--threads", "1"], out, capsys)


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_separate_output_linked_to_an_input(tmp_path, capsys, how):
    out = tmp_path / "out"
    out.mkdir()
    mix, q = _tone(tmp_path / "mix.wav", 2.0, freq=880), _tone(tmp_path / "q.wav", 1.0, freq=880, noise=0.0)
    (os.symlink if how == "symlink" else os.link)(mix, out / "residual.wav")
    before = mix.read_bytes()
    _refused(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--out_dir", str(out)], out, capsys)
    assert mix.read_bytes() == before


def test_separate_gt_and_negative_are_inputs_too(tmp_path, capsys):
    out = tmp_path / "out"
    mix, q = _tone(tmp_path / "m.wav", 2.0, freq=880), _tone(tmp_path / "q.wav", 1.0, freq=880, noise=0.0)
    gt = _tone(out / "target.wav", 2.0, freq=880, noise=0.0)
    _refused(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--gt_wav", str(gt), "--out_dir", str(out)],
             out, capsys)
    gt.unlink()
    neg = _tone(out / "event.json", 1.0, freq=300, noise=0.0)  # audio under an output's name
    _refused(["separate", "--mix_wav", str(mix), "--query_wav", str(q), "--negative_wav", str(neg), "--out_dir",
              str(out)], out, capsys)


# ------------------------------------------------------------------ vocals
@pytest.mark.parametrize("name", ["vocals.wav", "accompaniment.wav"])
def test_vocals_input_named_like_a_stem(tmp_path, capsys, name):
    out = tmp_path / "out"
    song = _tone(out / name, 2.0, sr=22050)
    msg = _refused(["vocals", "-i", str(song), "-o", str(out), "--quiet"], out, capsys)
    assert "one of the inputs" in msg


def test_vocals_batch_collision_writes_nothing(tmp_path, capsys):
    """Two songs into one folder; the second's stems would land on an input: no song is written."""
    out = tmp_path / "out"
    a = _tone(tmp_path / "songs" / "a.wav", 2.0, sr=22050)
    b = _tone(out / "b" / "vocals.wav", 2.0, sr=22050, seed=1)  # out/<stem>/... of input "vocals"
    (out / "vocals").mkdir()
    os.symlink(b, out / "vocals" / "accompaniment.wav")
    _refused(["vocals", "-i", str(a), "-i", str(b), "-o", str(out), "--quiet"], out, capsys)


# ------------------------------------------------------------------ fuse
@pytest.mark.parametrize("which,name", [("--a", "fusion.wav"), ("--b", "fusion.json")])
def test_fuse_input_named_like_an_output(tmp_path, capsys, which, name):
    out = tmp_path / "out"
    other = "--b" if which == "--a" else "--a"
    x = _tone(out / name, 3.0, sr=24000, freq=330)
    y = _tone(tmp_path / "y.wav", 3.0, sr=24000, freq=550, seed=2)
    _refused(["fuse", which, str(x), other, str(y), "--out_dir", str(out)], out, capsys)


# ------------------------------------------------------------------ timbre
@pytest.mark.parametrize("role", ["input", "style_ref"])
def test_timbre_input_named_like_the_output(tmp_path, capsys, role):
    out = tmp_path / "out"
    inside = _tone(out / "violin.wav", 1.0, sr=24000, freq=262, noise=0.0)
    other = _tone(tmp_path / "p.wav", 1.0, sr=24000, freq=262, noise=0.0)
    inp, ref = (inside, other) if role == "input" else (other, inside)
    _refused(["timbre", "--input", str(inp), "--target", "violin", "--style_ref", str(ref), "--out_dir", str(out),
              "--threads", "1"], out, capsys)


# ------------------------------------------------------------------ unusable output folders, checked first
def _argv(engine: str, tmp: Path, out: Path) -> list[str]:
    a = _tone(tmp / "a.wav", 2.0, sr=22050)
    b = _tone(tmp / "b.wav", 2.0, sr=22050, freq=660)
    return {"separate": ["separate", "--mix_wav", str(a), "--query_wav", str(b), "--out_dir", str(out)],
            "vocals": ["vocals", "-i", str(a), "-o", str(out), "--quiet"],
            "fuse": ["fuse", "--a", str(a), "--b", str(b), "--out_dir", str(out)],
            "timbre": ["timbre", "--input", str(a), "--target", "violin", "--out_dir", str(out)]}[engine]


@pytest.mark.parametrize("engine", ["separate", "vocals", "fuse", "timbre"])
@pytest.mark.parametrize("case", ["is_a_file", "under_a_file"])
def test_unusable_out_dir_is_refused_before_the_work(tmp_path, capsys, monkeypatch, engine, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("a user's file\n")
    out = blocker if case == "is_a_file" else blocker / "sub"
    argv = _argv(engine, tmp_path, out)
    import engines.checkpoint as ck

    def no_model(*a, **k):  # the check must come before any model is loaded or audio processed
        raise AssertionError("the work started before the output folder was checked")

    monkeypatch.setattr(ck, "load_model", no_model)
    t0 = time.perf_counter()
    msg = _refused(argv, tmp_path, capsys)
    assert "blocker" in msg and time.perf_counter() - t0 < 5
    assert blocker.read_text() == "a user's file\n"


# ------------------------------------------------------------------ killed writes
def test_sigkill_during_a_write_leaves_no_permanent_litter(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from engines.atomic import atomic_path\n"
            "with atomic_path(%r) as tmp:\n"
            "    open(tmp, 'wb').write(b'partial'); print('writing', flush=True); time.sleep(60)\n"
            % (str(ROOT), str(tmp_path / "out.wav")))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and not (tmp_path / "out.wav").exists()  # the partial file, hidden
    with atomic_path(tmp_path / "other.txt") as t:  # the next write into the folder cleans it
        Path(t).write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


def test_stage_of_a_killed_run_is_removed_and_a_live_one_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f".astage-{pid}-abc").mkdir()
    (tmp_path / f".astage-{pid}-abc" / "target.wav").write_bytes(b"x")
    mine = tmp_path / f".astage-{os.getpid()}-def"
    mine.mkdir()
    removed = clean_stale(tmp_path)
    assert [p.name for p in removed] == [f".astage-{pid}-abc"] and mine.exists()


def test_stage_publishes_all_or_nothing(tmp_path):
    inp = tmp_path / "in.wav"
    inp.write_bytes(b"input")
    with pytest.raises(RuntimeError):
        with OutputStage(tmp_path / "o", inputs=[inp]) as st:
            st.write_text("a.json", "{}")
            raise RuntimeError("the work failed half way")
    assert not (tmp_path / "o").exists()  # the folder it created is gone again
    with OutputStage(tmp_path / "o", inputs=[inp]) as st:
        st.write_text("a.json", "{}")
        st.write_bytes("sub/b.bin", b"1")
    assert st.published == {"a.json": tmp_path / "o" / "a.json", "sub/b.bin": tmp_path / "o" / "sub" / "b.bin"}
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "sub"]
    for bad in ("../x", "/etc/passwd", ".hidden", ""):
        with pytest.raises(ValueError):
            OutputStage(tmp_path / "o").path(bad)


def test_names_made_from_user_file_names_stay_inside_the_output_folder(tmp_path, capsys):
    from engines.atomic import safe_name

    for bad in ("..", ".", "...", "../x", ".hidden", "", "a/b", "a..b"):
        s = safe_name(bad, "song")
        assert s and not s.startswith(".") and "/" not in s and ".." not in s, (bad, s)
    songs = tmp_path / "songs"
    _tone(songs / "...wav", 2.0, sr=22050)  # stem '..'
    _tone(songs / "b.wav", 2.0, sr=22050, seed=1)
    out = tmp_path / "out"
    assert launch.main(["vocals", "-i", str(songs), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["b", "song"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "songs"]  # nothing written beside out


def test_a_refused_output_name_leaves_no_new_folder(tmp_path):
    from engines.atomic import OutputStage

    out = tmp_path / "new" / "deeper"
    out.mkdir(parents=True)
    src = out / "a.wav"
    src.write_bytes(b"input")
    out2 = tmp_path / "other" / "deeper"
    with pytest.raises(Exception, match="one of the inputs"):
        OutputStage(out, inputs=[src], names=["a.wav"])
    assert src.read_bytes() == b"input"
    link = tmp_path / "link"
    link.symlink_to(out)
    with pytest.raises(Exception, match="one of the inputs"):
        OutputStage(out2, inputs=[out2 / "x.wav"], names=["x.wav"])
    assert not (tmp_path / "other").exists()


def test_atomic_folder_replaces_on_success_and_keeps_the_old_one_on_error(tmp_path):
    from engines.atomic import atomic_folder

    final = tmp_path / "item"
    with atomic_folder(final) as d:
        (d / "a.txt").write_text("1")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as d:
            (d / "a.txt").write_text("2")
            raise RuntimeError("boom")
    assert (final / "a.txt").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["item"]
    with atomic_folder(final) as d:
        (d / "b.txt").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
