"""The Train tab's two holes, replayed: (1) a public studio runs no training event at all, called by
``fn_index`` through the queue as an attacker does (the ``features_cache.pt`` upload + Start recipe
included); (2) an owner's studio confines every folder to AUDIO_STUDIO_RUNS / AUDIO_STUDIO_DATA,
parses the extra arguments against the trainer's own flags, bounds every number and runs at most
AUDIO_STUDIO_MAX_TRAIN_JOBS runs. Unit tests of the checks in :mod:`studio.training` come first
(no server), then the live replays.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
import uuid
from pathlib import Path

import pytest

from studio import training
from tests.studio import raw_api

OFF = "Training is turned off on this studio"


@pytest.fixture
def roots(tmp_path, monkeypatch):
    runs, data = tmp_path / "runs", tmp_path / "data"
    runs.mkdir()
    data.mkdir()
    monkeypatch.setenv("AUDIO_STUDIO_RUNS", str(runs))
    monkeypatch.setenv("AUDIO_STUDIO_DATA", str(data))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("AUDIO_STUDIO_OUTPUTS", str(tmp_path / "outputs"))
    return runs, data


# ----------------------------------------------------------------------- folders (no server)
def test_output_folders_only_below_the_runs_roots(roots, tmp_path):
    runs, data = roots
    assert training.out_folder("exp1") == runs / "exp1"  # a plain name lands in the runs root
    assert training.out_folder(str(runs / "a" / "b")) == runs / "a" / "b"
    for bad in ("/etc", str(tmp_path / "elsewhere"), str(runs / ".." / "x"), str(runs / "a" / ".." / ".." / "data"),
                "../x", str(data / "r")):
        with pytest.raises(training.TrainInputError, match="outside the folders training may use"):
            training.out_folder(bad)
    with pytest.raises(training.TrainInputError, match="root AUDIO_STUDIO_RUNS names itself"):
        training.out_folder(str(runs))
    (runs / "link").symlink_to(tmp_path)  # a symlink inside the root that leads out of it
    with pytest.raises(training.TrainInputError, match="outside"):
        training.out_folder(str(runs / "link" / "evil"))
    with pytest.raises(training.TrainInputError, match="Choose an output folder"):
        training.out_folder("  ")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "evil").exists()


def test_roots_are_lists_and_never_the_filesystem_root(roots, tmp_path, monkeypatch):
    runs, _data = roots
    other = tmp_path / "more-runs"
    monkeypatch.setenv("AUDIO_STUDIO_RUNS", f"{runs}{os.pathsep}{other}")
    assert training.runs_roots() == [runs, other]
    assert training.out_folder(str(other / "r")) == other / "r"
    assert training.out_folder("r") == runs / "r"
    monkeypatch.setenv("AUDIO_STUDIO_RUNS", f"{runs}{os.pathsep}/")
    with pytest.raises(training.TrainInputError, match="AUDIO_STUDIO_RUNS must not be the filesystem root"):
        training.out_folder(str(runs / "r"))
    monkeypatch.setenv("AUDIO_STUDIO_RUNS", str(runs))
    monkeypatch.setenv("AUDIO_STUDIO_DATA", "/")
    with pytest.raises(training.TrainInputError, match="AUDIO_STUDIO_DATA must not be the filesystem root"):
        training.data_folder("/usr")
    monkeypatch.delenv("AUDIO_STUDIO_DATA")
    assert training.data_roots() == [runs.parent / "data"]  # default: `data` beside the runs root


def test_runs_never_write_into_a_folder_the_studio_serves(roots, tmp_path, monkeypatch):
    runs, _data = roots
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(runs / "uploads"))  # a misconfiguration: uploads inside the runs
    with pytest.raises(training.TrainInputError, match="serves on the web"):
        training.out_folder(str(runs / "uploads" / "abc123"))
    with pytest.raises(training.TrainInputError, match="serves on the web"):
        training.out_folder(str(runs / "parent-of-nothing" / ".."  / "uploads"))
    assert training.out_folder("fine") == runs / "fine"


def test_dataset_folders_only_below_the_data_roots(roots):
    runs, data = roots
    (data / "songs").mkdir()
    assert training.data_folder(str(data / "songs")) == data / "songs"
    assert training.data_folder("songs") == data / "songs"
    assert training.data_folder(str(data)) == data  # the data root itself is a dataset folder
    for bad in ("/", "/etc", str(runs), str(data / ".." / "runs")):
        with pytest.raises(training.TrainInputError, match="outside the folders training may use"):
            training.data_folder(bad)
    with pytest.raises(training.TrainInputError, match="does not exist"):
        training.data_folder(str(data / "missing"))
    assert training.data_folder("new-corpus", must_exist=False) == data / "new-corpus"


def test_watch_and_use_only_inside_the_runs_roots(roots, tmp_path):
    runs, _data = roots
    with pytest.raises(training.TrainInputError, match="outside"):
        training.run_folder("/etc")
    assert training.run_folder("r1") == runs / "r1"
    (runs / "r1").mkdir()
    model = runs / "r1" / "query.safetensors"
    model.write_bytes(b"x")
    (runs / "r1" / "checkpoint.pt").write_bytes(b"x")
    (runs / "r1" / "model.pt").write_bytes(b"x")
    outside = tmp_path / "query.safetensors"
    outside.write_bytes(b"x")
    assert training.exported_model(str(model)) == model
    with pytest.raises(training.TrainInputError, match="resumable training state"):
        training.exported_model(str(runs / "r1" / "checkpoint.pt"))
    with pytest.raises(training.TrainInputError, match="only \\*.safetensors"):
        training.exported_model(str(runs / "r1" / "model.pt"))
    with pytest.raises(training.TrainInputError, match="outside"):
        training.exported_model(str(outside))
    with pytest.raises(training.TrainInputError, match="No checkpoint selected"):
        training.exported_model(None)


# ----------------------------------------------------------------------- extra arguments
def test_extra_arguments_against_the_trainers_own_flags(roots, tmp_path):
    pytest.importorskip("trainers.query_embedder")
    runs, data = roots
    ok = training.check_extra("query", "--synthetic 16 --no_mlflow --seed 3 --export=r/q.safetensors "
                                       "--init r/a.safetensors")
    assert ok == ["--synthetic", "16", "--no_mlflow", "--seed", "3", f"--export={runs}/r/q.safetensors",
                  "--init", f"{data}/r/a.safetensors"]
    assert training.check_extra("query", f"--init {runs}/r1/query.safetensors") == \
        ["--init", f"{runs}/r1/query.safetensors"]  # a model of an earlier run
    assert training.check_extra("query", f"--extra_data a {data}/b") == ["--extra_data", f"{data}/a", f"{data}/b"]
    refused = {
        "--export /tmp/x.safetensors": "--export path '/tmp/x.safetensors' is outside",
        f"--export {data}/x.safetensors": "outside",  # outputs only under the runs roots
        "--init /etc/passwd": "--init path '/etc/passwd' is outside",
        "--extra_data / ": "outside",
        "--triples ../../etc": "outside",
        "--bogus 1": "has no flag --bogus",
        "--expo /tmp/x": "did you mean --export",  # argparse would take the abbreviation: refused
        "somefile": "'somefile' in the extra arguments is not a --flag",
        "--seed 1 stray": "'stray' in the extra arguments is not a --flag",
        "--out_dir /tmp/x": "--out_dir is set by the Output folder field",
        "--no_mlflow=1": "takes no value",
        "--export": "needs a value",
        "--lr nan": "finite",
        "--lr -1": "above 0",
        "--lr inf": "finite",
        "--threads -1": "--threads must be between 1 and",
        "--num_workers 1000": "--num_workers must be between 0 and",
        "--hidden 2.5": "whole number",
        "--hidden 99999999999": "between 0 and",
        "--examples_per_epoch 1e12": "between 1 and",
        "--limit abc": "must be a number",
        "--seed 'unclosed": "cannot be parsed",
    }
    for extra, message in refused.items():
        with pytest.raises(training.TrainInputError, match=message.replace("*", "\\*").replace("(", "\\(")):
            training.check_extra("query", extra)


def test_path_flags_of_every_trainer_are_confined(roots):
    runs, data = roots
    for name in training.available_trainers():
        spec = training.trainer_spec(name)
        if spec.has("--export"):
            assert training.check_extra(name, "--export m.safetensors") == ["--export", f"{runs}/m.safetensors"]
            with pytest.raises(training.TrainInputError, match="outside"):
                training.check_extra(name, "--export /tmp/m.safetensors")
        for flag in ("--init", "--data", "--dataset_folder", "--stats", "--triples", "--extra_data", "--input_only"):
            if spec.has(flag):
                with pytest.raises(training.TrainInputError, match="outside"):
                    training.check_extra(name, f"{flag} /etc/passwd")
        if spec.data_flag == "":  # a positional dataset (vocals): never through the extra arguments
            with pytest.raises(training.TrainInputError, match="not a --flag"):
                training.check_extra(name, "/")
    if "fusion" in training.available_trainers():
        assert training.check_extra("fusion", "--codec builtin --cascade false") == ["--codec", "builtin", "--cascade",
                                                                                   "false"]
        with pytest.raises(training.TrainInputError, match="outside"):
            training.check_extra("fusion", "--codec /etc")


# ----------------------------------------------------------------------- numbers and the whole run
def test_prepare_run_bounds_every_number_and_creates_nothing(roots):
    pytest.importorskip("trainers.query_embedder")
    runs, data = roots
    good = {"--epochs": 2.0, "--max_steps": None, "--batch_size": 4, "lr": 0.001, "--threads": 1, "--ckpt_every": 50}
    commands, out = training.prepare_run("query", out="r1", params=good, extra="--synthetic 16")
    assert out == runs / "r1" and len(commands) == 1
    cmd = commands[0]
    assert cmd[cmd.index("--out_dir") + 1] == str(runs / "r1")
    assert cmd[cmd.index("--export") + 1] == str(runs / "r1" / "query.safetensors")
    assert cmd[cmd.index("--epochs") + 1] == "2" and "--max_steps" not in cmd
    empty = training.prepare_run("query", out="r1", params={**good, "--max_steps": 0})[0][0]  # an empty field sends 0
    assert "--max_steps" not in empty
    bad_params = {
        "--epochs": (float("nan"), "finite"), "--max_steps": (-5, "between 1 and 1000000"),
        "--batch_size": (10**6, "between 1 and 256"), "--threads": (-1, "Threads must be between 1 and"),
        "--ckpt_every": (2.5, "whole number"), "lr": (float("inf"), "finite"),
    }
    for flag, (value, message) in bad_params.items():
        with pytest.raises(training.TrainInputError, match=message):
            training.prepare_run("query", out="r2", params={**good, flag: value})
    with pytest.raises(training.TrainInputError, match="between 1 and 1000"):
        training.prepare_run("query", out="r2", params={**good, "--epochs": 1001})
    for n in (0, -1, training.cpu_count() + 1, 1.5):
        with pytest.raises(training.TrainInputError, match="Processes must"):
            training.prepare_run("query", out="r2", params=good, nproc=n)
    with pytest.raises(training.TrainInputError, match="outside"):
        training.prepare_run("query", out="/tmp/r2", params=good)
    with pytest.raises(training.TrainInputError, match="outside"):
        training.prepare_run("query", out="r2", data="/", params=good)
    with pytest.raises(training.TrainInputError, match="outside"):
        training.prepare_run("query", out="r2", data="/tmp", render=True, minutes=1, params=good)
    for minutes in (0, -1, 10_000, float("nan")):
        with pytest.raises(training.TrainInputError, match="corpus minutes"):
            training.prepare_run("query", out="r2", data="c", render=True, minutes=minutes, params=good)
    with pytest.raises(training.TrainInputError, match="no trainer"):
        training.prepare_run("nope", out="r2")
    assert sorted(p.name for p in runs.iterdir()) == [] and sorted(p.name for p in data.iterdir()) == []
    if training.corpus_spec() is not None:
        commands, _ = training.prepare_run("query", out="r3", data="c", render=True, minutes=2, params=good)
        assert commands[0][2:] == ["corpus", "--out", str(data / "c"), "--kinds", "clips", "--minutes", "2"]
        assert commands[1][commands[1].index("--data") + 1] == str(data / "c" / "clips")


def test_numbers_read_by_people():
    assert training.whole_number("12", "Epochs", 1, 100) == 12
    assert training.whole_number(3.0, "Epochs", 1, 100) == 3
    assert training.whole_number(None, "Epochs", 1, 100) is None
    for value, message in ((True, "must be a number"), ("x", "must be a number"), (float("nan"), "finite"),
                           (0, "between 1 and 100"), (1.5, "whole number")):
        with pytest.raises(training.TrainInputError, match=message):
            training.whole_number(value, "Epochs", 1, 100)
    assert training.real_number("0.5", "The learning rate", 0, 10, low_open=True) == 0.5
    with pytest.raises(training.TrainInputError, match="above 0 and at most 10"):
        training.real_number(0, "The learning rate", 0, 10, low_open=True)


def test_at_most_max_train_jobs_runs_at_once(roots, monkeypatch):
    runs, _data = roots
    manager = training.TrainManager()
    sleeper = [["sleep", "30"]]
    first = manager.start(sleeper, runs / "a", "toy", limit=1)
    try:
        with pytest.raises(training.TrainInputError, match="already writing to"):
            manager.start(sleeper, runs / "a", "toy", limit=2)
        with pytest.raises(training.TrainInputError, match=r"1 training run\(s\) already going.*limit.*is 1"):
            manager.start(sleeper, runs / "b", "toy", limit=1)
        assert not (runs / "b").exists()
        monkeypatch.setenv("AUDIO_STUDIO_MAX_TRAIN_JOBS", "2")
        second = manager.start(sleeper, runs / "b", "toy")
        manager.get(second).kill()
        manager.get(second).proc.wait(10)
    finally:
        manager.get(first).kill()
        manager.get(first).proc.wait(10)
    assert not manager.running_jobs()
    manager.start([["true"]], runs / "c", "toy", limit=1)  # a finished run frees its place


# ----------------------------------------------------------------------- the log tail
def test_log_tail_hides_tracebacks_and_keeps_the_error_line():
    lines = ["epoch 1 done",
             "Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "    f()",
             "KeyError: 'a'", "",
             "During handling of the above exception, another exception occurred:", "",
             "Traceback (most recent call last):", '  File "y.py", line 2, in g', "    raise ValueError('bad')",
             "ValueError: bad",
             "error: bad"]
    assert training.hide_tracebacks(lines) == ["epoch 1 done", training.TRACEBACK_NOTE, "error: bad"]
    indented = ["[rank0]: Traceback (most recent call last):"]  # not at the start: left alone
    assert training.hide_tracebacks(indented) == indented
    child = ["  Traceback (most recent call last):", "    File \"z.py\", line 3", "  OSError: x", "done"]
    assert training.hide_tracebacks(child) == ["  " + training.TRACEBACK_NOTE, "done"]


def test_a_failing_trainer_logs_its_traceback_but_the_tab_shows_one_line(roots):
    pytest.importorskip("trainers.timbre")
    runs, data = roots
    out = runs / "fails"
    (data / "empty").mkdir()
    commands, out = training.prepare_run("timbre", out=str(out), data=str(data / "empty"),
                                         params={"--max_steps": 1}, extra="--no_mlflow")
    job = training.TrainJob(commands, out, "timbre")
    job.proc.wait(120)
    assert job.proc.returncode == 2, job.log_tail()
    log = (out / "train.log").read_text()
    assert "Traceback (most recent call last):" in log and "\nerror: " in log
    tail = job.log_tail().splitlines()
    assert tail[-1].startswith("error: ") and "\n" not in tail[-1]
    assert not any(ln.startswith("Traceback") or ln.startswith('  File "') for ln in tail)
    assert training.TRACEBACK_NOTE in tail
    assert job.status().startswith("failed (exit code 2): No timbre data under")


# ----------------------------------------------------------------------- live: a public studio
TRAIN_EVENTS = ("on_model", "on_start", "on_tick", "on_watch", "on_stop", "on_use")


def _start_data(out, *, data="", render=False, extra="", epochs=1, max_steps=4, batch=2, threads=1, minutes=1):
    #       model    nproc data  render  minutes  epochs  max_steps  batch  lr     threads  ckpt extra  out  job_id
    return ["query", 1, data, render, minutes, epochs, max_steps, batch, 0.002, threads, 100, extra, out, None]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


class _Marker:
    """Unpickling this creates ``path`` (what a malicious features_cache.pt would do, harmlessly)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_public_studio_shows_why_training_is_off(public_studio):
    url, _tmp = public_studio
    cfg = raw_api.config(url)
    by_id = {c.get("props", {}).get("elem_id"): c for c in cfg["components"]}
    off = by_id["train-off"]["props"]
    assert off.get("visible") is not False and OFF in off["value"] and "Hugging Face Space" in off["value"]
    assert "AUDIO_STUDIO_ALLOW_TRAINING=1" in off["value"]
    assert by_id["train-panel"]["props"].get("visible") is False
    assert by_id["train-out"]["props"].get("value") in ("", None)  # no server path shown to visitors
    names = {d.get("api_name") for d in cfg["dependencies"]}
    assert set(TRAIN_EVENTS) <= names


def test_public_studio_refuses_every_train_event_by_fn_index(public_studio):
    url, tmp = public_studio
    idx = {name: raw_api.fn_index(url, name) for name in TRAIN_EVENTS}
    calls = {"on_model": ["query"], "on_start": _start_data(str(tmp / "runs" / "x"), extra="--synthetic 8"),
             "on_tick": [None], "on_watch": [str(tmp / "runs" / "x"), None], "on_stop": [None],
             "on_use": [None, "query"]}
    for name, data in calls.items():
        res = raw_api.call(url, idx[name], data)
        assert res["success"] is False and OFF in (res["error"] or ""), (name, res)
        assert "space" in res["error"].lower()
    assert not (tmp / "runs").exists()


def test_public_studio_features_cache_recipe_is_refused(public_studio, tmp_path):
    """The measured RCE: upload a pickle named features_cache.pt, then Start with its server folder as
    the output folder and "render a corpus first". Refused; nothing is created, loaded or started."""
    url, tmp = public_studio
    marker = tmp_path / "unpickled-marker"
    evil = tmp_path / "features_cache.pt"
    evil.write_bytes(pickle.dumps(_Marker(str(marker))))
    server_path = raw_api.upload(url, evil)
    folder = str(Path(server_path).parent)
    assert Path(server_path).name == "features_cache.pt"
    before = sorted(p.name for p in Path(folder).iterdir())
    for render in (True, False):
        res = raw_api.call(url, raw_api.fn_index(url, "on_start"),
                           _start_data(folder, data=folder, render=render, extra=f"--init {server_path}"))
        assert res["success"] is False and OFF in (res["error"] or ""), res
    time.sleep(1.0)
    assert sorted(p.name for p in Path(folder).iterdir()) == before  # no train.log, no corpus, no cache
    assert not marker.exists()
    assert not _processes_mentioning(folder)
    assert not (tmp / "runs").exists() and not (tmp / "data" / "timbre").exists()


# ----------------------------------------------------------------------- live: the owner's studio
def _refused(url, data, session=None):
    res = raw_api.call(url, raw_api.fn_index(url, "on_start"), data, session_hash=session)
    assert res["success"] is False, res
    return res["error"] or ""


def test_owner_studio_confines_folders_and_flags(studio):
    url, tmp = studio
    elsewhere = tmp / f"elsewhere-{uuid.uuid4().hex[:6]}"
    ok_out = str(tmp / "runs" / f"never-{uuid.uuid4().hex[:6]}")
    assert "outside the folders training may use" in _refused(url, _start_data(str(elsewhere)))
    assert not elsewhere.exists()
    assert "dataset folder '/' is outside" in _refused(url, _start_data(ok_out, data="/"))
    assert "outside" in _refused(url, _start_data(ok_out, data="/", render=True))
    assert "--export path '/tmp/x.safetensors' is outside" in _refused(
        url, _start_data(ok_out, extra="--export /tmp/x.safetensors"))
    assert "has no flag --bogus" in _refused(url, _start_data(ok_out, extra="--bogus 1"))
    assert "not a --flag" in _refused(url, _start_data(ok_out, extra="/etc/passwd"))
    assert "Threads must be between 1 and" in _refused(url, _start_data(ok_out, threads=-1))
    assert "Epochs must be between 1 and 1000" in _refused(url, _start_data(ok_out, epochs=-3))
    assert "Batch size must be between 1 and 256" in _refused(url, _start_data(ok_out, batch=10**9))
    assert "Max steps must be between 1 and 1000000" in _refused(url, _start_data(ok_out, max_steps=10**12))
    assert "corpus minutes" in _refused(url, _start_data(ok_out, data="c", render=True, minutes=10**6))
    assert not Path(ok_out).exists() and not _processes_mentioning(ok_out)
    watch = raw_api.call(url, raw_api.fn_index(url, "on_watch"), ["/etc", None])
    assert watch["success"] is False and "run folder '/etc' is outside" in watch["error"], watch
    use = raw_api.call(url, raw_api.fn_index(url, "on_use"), ["/etc/passwd", "query"])
    assert use["success"] is False, use


def test_owner_studio_runs_one_job_at_a_time(studio):
    """The `studio` fixture keeps the default AUDIO_STUDIO_MAX_TRAIN_JOBS=1: a second Start (another
    session) is refused while a run goes; the run is stopped before the test ends."""
    pytest.importorskip("trainers.query_embedder")
    url, tmp = studio
    name = f"cap-{uuid.uuid4().hex[:6]}"
    out = tmp / "runs" / name
    a, b = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    long_run = _start_data(name, max_steps=5000, extra="--synthetic 16 --examples_per_epoch 5000 --val_examples 2 "
                                                       "--no_mlflow --log_every 1")
    res = raw_api.call(url, raw_api.fn_index(url, "on_start"), long_run, session_hash=a)
    assert res["success"], res
    try:
        assert res["data"][2].startswith(sys.executable) and f"--out_dir {out}" in res["data"][2]
        other = _start_data(f"{name}-b", extra="--synthetic 16 --no_mlflow")
        assert "AUDIO_STUDIO_MAX_TRAIN_JOBS" in _refused(url, other, session=b)
        assert not (tmp / "runs" / f"{name}-b").exists()
    finally:
        t0 = time.time()
        while time.time() - t0 < 60:
            stop = raw_api.call(url, raw_api.fn_index(url, "on_stop"), [None], session_hash=a)
            if stop["success"] and stop["data"][0].startswith("stopping"):
                break
            time.sleep(0.5)
        t0 = time.time()
        while time.time() - t0 < 90 and _processes_mentioning(str(out)):
            time.sleep(0.5)
    assert not _processes_mentioning(str(out))


def test_launch_decides_the_policy_before_building_the_app(monkeypatch):
    """`studio.app.launch` sets ctx.policy from its host/share (the Train tab reads it when built)."""
    from studio import app as studio_app

    seen = []

    class FakeApp:
        def launch(self, **kwargs):
            seen.append(kwargs)

    def fake_build(ctx):
        seen.append(ctx.policy)
        return FakeApp()

    monkeypatch.setattr(studio_app, "build_app", fake_build)
    for var in ("SPACE_ID", "AUDIO_STUDIO_ALLOW_TRAINING", "GRADIO_SHARE"):
        monkeypatch.delenv(var, raising=False)
    cases = [(dict(host="127.0.0.1", port=1), True), (dict(host="0.0.0.0", port=1), False),
             (dict(host="127.0.0.1", port=1, share=True), False)]
    for kwargs, training_on in cases:
        seen.clear()
        assert studio_app.launch(**kwargs) == 0
        assert seen[0].training is training_on, (kwargs, seen[0])
        assert seen[1]["server_name"] == kwargs["host"]
    monkeypatch.setenv("AUDIO_STUDIO_ALLOW_TRAINING", "0")
    seen.clear()
    studio_app.launch(host="127.0.0.1", port=1)
    assert seen[0].training is False and "AUDIO_STUDIO_ALLOW_TRAINING=0" in seen[0].reason


def test_public_studio_train_tab_in_the_browser(browser, public_studio):
    """A visitor sees why training is off and no Train control at all."""
    from tests.studio.conftest import ARTIFACTS
    from tests.studio.helpers import open_tab

    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    try:
        page.goto(public_studio[0])
        page.wait_for_selector("button[role=tab]", timeout=60_000)
        open_tab(page, "Train")
        page.wait_for_selector("#train-off")
        text = page.locator("#train-off").inner_text()
        assert OFF in text and "Hugging Face Space" in text and "AUDIO_STUDIO_ALLOW_TRAINING=1" in text
        for elem in ("#train-start", "#train-out", "#train-extra", "#train-watch", "#train-use"):
            assert page.locator(elem).count() == 0 or not page.locator(elem).first.is_visible(), elem
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "public_train_tab.png"), full_page=True)
    finally:
        ctx.close()
