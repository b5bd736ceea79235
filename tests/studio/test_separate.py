"""Separate tab: in the browser (upload, run, players, plots, downloads, error message) and through
the API with gradio_client (outputs correct and isolated per session)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("engines.separation.api")

from tests.studio.helpers import error_toast, open_tab, upload  # noqa: E402


def separate_args(mix, query, gt=None, vis=False, **over):
    """Positional inputs of the /separate endpoint: files, model, class threshold, PARAMS (the Config's studio
    options), the two save_* switches."""
    from gradio_client import handle_file

    from studio.tabs import separate as tab

    vals = {**tab.preset_values("balanced"), "threads": 1, **over}
    return [handle_file(str(mix)), handle_file(str(query)), handle_file(str(gt)) if gt else None, None,
            None, False, 0.5, *[vals[n] for n, *_ in tab.PARAMS], vis, False]


def test_separate_in_browser(page, audio_files):
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])
    upload(page, "sep-query", audio_files["query"])
    upload(page, "sep-gt", audio_files["gt"])
    page.locator("#sep-preset input").first.click()  # the preset picker generated from Config.PRESETS
    page.get_by_role("option", name="selective").click()
    page.locator("#tab-separate").get_by_text("Detection", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('#tab-separate input[type=number]')]"
                           ".some(e => e.value === '96')")  # cls_percentile of the preset
    page.locator("#sep-run").click()
    page.wait_for_selector("#sep-mel .js-plotly-plot", timeout=120_000)
    page.wait_for_selector("#sep-mask .js-plotly-plot")
    page.wait_for_selector("#sep-timeline .js-plotly-plot")
    summary = page.locator("#sep-summary").inner_text()
    assert "Detected class:" in summary and "Quality:" in summary
    for player in ("sep-target", "sep-residual"):
        link = page.locator(f"#{player} a[download]")
        assert link.get_attribute("download").endswith(".wav")
    files = page.locator("#sep-files").inner_text()
    assert "target.wav" in files and "event.json" in files
    assert "si_sdr" in page.locator("#sep-metrics").inner_text()


def test_separate_bad_file_shows_a_message(page, audio_files):
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["bad"])
    upload(page, "sep-query", audio_files["query"])
    page.locator("#sep-run").click()
    msg = error_toast(page)
    assert "The mixture" in msg and ("not an audio file" in msg or "cannot be decoded" in msg), msg
    assert "Traceback" not in msg


def test_separate_missing_query_and_too_long(page, audio_files):
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["long"])
    page.locator("#sep-run").click()
    msg = error_toast(page)
    assert "The mixture" in msg and "at most 20 s" in msg, msg


def test_upload_size_limit_message(page, audio_files):
    open_tab(page, "Separate")
    page.locator("#sep-mix input[type=file]").first.set_input_files(str(audio_files["big"]))
    msg = error_toast(page)
    assert "exceed the maximum allowed size of 2.0 Mb" in msg and "big.wav" in msg, msg


def test_separate_api(client, audio_files, tmp_path):
    res = client.predict(*separate_args(audio_files["mix"], audio_files["query"], audio_files["gt"], vis=True),
                         api_name="/separate")
    target, residual, summary, metrics, mel, mask, timeline, files = res
    t, sr = sf.read(target, dtype="float32")
    r, _ = sf.read(residual, dtype="float32")
    m, msr = sf.read(audio_files["mix"], dtype="float32")
    assert sr == msr and t.shape == m.shape
    np.testing.assert_allclose(t + r, m, atol=1e-5)  # residual = mixture - target
    assert "Detected class" in summary
    assert {"si_sdr", "sdr", "quality"} <= set(metrics)
    names = sorted(Path(f).name for f in files)
    assert "event.json" in names and "target.wav" in names
    assert any(n.endswith("_comparison.png") for n in names) and any(n.endswith("_timeline.png") for n in names)
    event = json.loads(Path(next(f for f in files if f.endswith("event.json"))).read_text())
    assert event["params"]["cls_percentile"] == 92 and event["metrics"]["quality"] == metrics["quality"]


def test_separate_api_sessions_are_isolated(studio, audio_files):
    """Two clients (two sessions) get their outputs in different session folders."""
    from gradio_client import Client

    url, tmp = studio
    outs = []
    for _ in range(2):
        c = Client(url, verbose=False)
        res = c.predict(*separate_args(audio_files["mix"], audio_files["query"], opt_steps=2), api_name="/separate")
        ev = next(f for f in res[7] if f.endswith("event.json"))
        outs.append(ev)
    sessions = [p.name for p in (tmp / "outputs").iterdir() if p.is_dir()]
    assert len(sessions) >= 2
    assert outs[0] != outs[1]


def test_separate_api_error_is_readable(client, audio_files):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as exc:
        client.predict(*separate_args(audio_files["mix"], audio_files["bad"]), api_name="/separate")
    assert "The query" in str(exc.value) and "Traceback" not in str(exc.value)
