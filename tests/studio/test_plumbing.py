"""Studio plumbing without a server: context folders and cleanup, the engine cache, the error
wrapper, upload checks and the plot helpers."""
from __future__ import annotations

import os
import threading
import time

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from engines.audio.errors import SilentAudioError
from studio import plots
from studio.common import check_upload, guard, load_audio, readable
from studio.context import EngineCache, StudioContext


def test_job_dirs_are_per_session_and_old_ones_are_removed(tmp_path):
    ctx = StudioContext(tmp_path, keep_hours=1)
    a, b = ctx.job_dir("sessA", "separate"), ctx.job_dir("sess/../B", "separate")
    assert a.parent.name == "sessA" and b.parent.name == "sessB" and a.is_dir() and b.is_dir()
    assert ctx.job_dir("sessA", "separate") != a  # a fresh folder per job
    old = tmp_path / "oldsession"
    old.mkdir()
    t = time.time() - 2 * 3600
    os.utime(old, (t, t))
    ctx.job_dir("sessC", "vocals")
    assert not old.exists() and a.exists()
    ctx.drop_session("sessA")
    assert not a.parent.exists() and b.exists()


def test_context_reads_limits_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_STUDIO_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("AUDIO_STUDIO_MAX_SECONDS", "12")
    monkeypatch.setenv("AUDIO_STUDIO_CONCURRENCY", "4")
    ctx = StudioContext(tmp_path)
    assert (ctx.max_upload_bytes, ctx.max_seconds, ctx.concurrency) == (3 * 2**20, 12.0, 4)


def test_engine_cache_builds_once_under_concurrency():
    cache, calls = EngineCache(), []

    def factory():
        calls.append(1)
        time.sleep(0.05)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", factory))) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 1 and len({id(g) for g in got}) == 1


def test_guard_turns_every_error_into_a_readable_gr_error():
    @guard
    def audio_problem():
        raise SilentAudioError("The query is silent.")

    @guard
    def bug():
        raise KeyError("x")

    with pytest.raises(gr.Error) as e1:
        audio_problem()
    assert e1.value.message == "The query is silent."
    with pytest.raises(gr.Error) as e2:
        bug()
    assert e2.value.message.startswith("Something went wrong (KeyError)")
    assert readable(MemoryError()).startswith("Out of memory: try a shorter file")


def test_upload_checks_name_the_input(tmp_path):
    ctx = StudioContext(tmp_path / "out", max_seconds=2, max_upload_mb=1)
    with pytest.raises(gr.Error, match="The mixture is missing"):
        check_upload(None, "The mixture", ctx)
    assert check_upload(None, "The ground truth", ctx, required=False) is None
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(gr.Error, match=r"The mixture \(empty.wav\) is empty"):
        check_upload(empty, "The mixture", ctx)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(3 * 8000, np.float32) + 0.1, 8000)
    with pytest.raises(gr.Error, match=r"is 3.0 s long; the studio accepts at most 2 s"):
        check_upload(long, "The query", ctx)
    big = tmp_path / "big.raw"
    big.write_bytes(b"\0" * (2**20 + 10))
    with pytest.raises(gr.Error, match="accepts files up to 1 MB"):
        check_upload(big, "The song", ctx)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all " * 10)
    with pytest.raises(gr.Error) as e:
        load_audio(bad, "The song", ctx)
    assert e.value.message.startswith("The song (bad.wav)") and str(tmp_path) not in e.value.message


def test_plot_helpers_pool_long_inputs():
    sr = 8000
    y = (0.1 * np.random.default_rng(0).standard_normal(sr * 60)).astype(np.float32)
    fig = plots.mel_figure([("a", y, sr), ("b", y[None], sr)])
    assert len(fig.data) == 2 and all(np.asarray(t.z).shape[1] <= plots.MAX_COLS for t in fig.data)
    m = plots.heatmap_figure(np.random.rand(257, 5000), times=np.arange(5000) * 0.01)
    z = np.asarray(m.data[0].z)
    assert z.shape[0] == 257 and 300 < z.shape[1] <= plots.MAX_COLS and len(m.data[0].x) == z.shape[1]
    t = plots.timeline_figure(3.0, [{"start": 0.5, "end": 1.2}], window_times=[0.5, 1.0],
                              window_scores={"cosine": [0.2, 0.8]}, thresholds={"cosine gate": 0.45})
    assert [d.name for d in t.data] == ["cosine", "cosine gate 0.45"] and len(t.layout.shapes) == 1
