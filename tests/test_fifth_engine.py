"""Adding an engine is adding one folder: its CLI command and a studio tab follow from its Config and Engine
(docs/DEVELOPING.md). The folder here is tests/fifth_engine (loudness normalisation)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines import discovery, options
from engines.audio import levels

HERE = Path(__file__).resolve().parent


@pytest.fixture
def wav(tmp_path):
    t = np.arange(16000 * 2) / 16000
    p = tmp_path / "in.wav"
    sf.write(p, 0.05 * np.sin(2 * np.pi * 220 * t), 16000)
    return p


def test_the_folder_is_discovered_without_importing_it():
    found = {f.command: f for f in discovery.engines(HERE, prefix="tests")}
    assert found["loudness"].package == "tests.fifth_engine" and found["loudness"].title == "Loudness"
    shipped = {f.command for f in discovery.engines()}
    assert "loudness" not in shipped  # the example is not a shipped engine


def test_its_cli_is_generated_from_the_config(wav, tmp_path):
    import launch

    parser = launch._command_parser("tests.fifth_engine.cli", "launch.py loudness", "loudness")  # noqa: SLF001
    assert options.cli_defaults(parser)["target_lufs"] == -16.0
    args = parser.parse_args(["--input", str(wav), "--out_dir", str(tmp_path / "out"), "--preset", "streaming"])
    assert args._run(args) == 0
    y, sr = sf.read(tmp_path / "out" / "normalised.wav")
    assert sr == 16000 and levels.lufs(y, sr) == pytest.approx(-14.0, abs=0.3)
    assert json.loads((tmp_path / "out" / "loudness.json").read_text())["params"]["target_lufs"] == -14.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--input", str(wav), "--out_dir", "x", "--target_lufs", "5"])


def test_its_generic_studio_tab_runs_it(wav, tmp_path):
    import gradio as gr

    from studio import widgets
    from studio.context import StudioContext
    from studio.tabs.generic import build_engine_tab

    ctx = StudioContext(tmp_path / "outputs")
    widgets.BOUND.clear()
    with gr.Blocks() as app:
        build_engine_tab(ctx, "tests.fifth_engine")
    bound = {name: ref() for ref, _cls, name in widgets.BOUND.values()}
    assert bound["target_lufs"].value == -16.0 and bound["limit"].value is True
    fn = next(f for f in app.fns.values() if f.api_name == "fifth_engine")

    class Req:
        session_hash = "s1"

    player, files, info = fn.fn(str(wav), -20.0, 24.0, True, request=Req(), progress=lambda *a, **k: None)
    y, sr = sf.read(player)
    assert levels.lufs(y, sr) == pytest.approx(-20.0, abs=0.3) and info["params"]["target_lufs"] == -20.0
    assert Path(player).is_relative_to(ctx.root) and len(files) == 2
    app.close()
