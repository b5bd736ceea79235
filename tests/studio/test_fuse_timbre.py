"""Fuse and Timbre tabs: in the browser (players and plots appear; the mask picker shows only the
parameters its type uses; a batch of B songs into one zip; bad-file message) and through gradio_client."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.studio.helpers import error_toast, open_tab, upload


def fuse_args(a, b, mask_type="temporal", mode="direct"):
    from gradio_client import handle_file

    return [handle_file(str(a)), handle_file(str(b)), mask_type, mode, None, True, False, True, 20, "bars", 1, 150,
            0.3, 0.5, 0, 0.7, 100]


def _fuse_quick(page, a, b):
    """The Fuse tab with songs ``a`` and ``b`` uploaded and the quick preset picked (from the preset picker that
    Config.PRESETS generates; it turns tempo matching off)."""
    open_tab(page, "Fuse")
    upload(page, "fuse-a", a)
    upload(page, "fuse-b", b)
    page.locator("#fuse-preset input").first.click()
    page.get_by_role("option", name="quick").click()
    page.wait_for_function("() => !document.querySelector('#fuse-match-tempo input[type=checkbox]').checked")


def test_fuse_in_browser(page, audio_files):
    pytest.importorskip("engines.fusion.api")
    _fuse_quick(page, audio_files["song"], audio_files["piano"])
    seg = page.get_by_label("segment_length")
    split = page.get_by_label("mask_freq_split")
    assert seg.first.is_visible() and not split.first.is_visible()
    page.locator("#fuse-mask-type").get_by_label("hybrid").check()
    split.first.wait_for(state="visible")
    assert seg.first.is_visible()
    page.locator("#fuse-mask-type").get_by_label("frequency").check()
    seg.first.wait_for(state="hidden")
    page.locator("#fuse-run").click()
    page.wait_for_selector("#fuse-regions .js-plotly-plot", timeout=120_000)
    page.wait_for_selector("#fuse-mel .js-plotly-plot")
    summary = page.locator("#fuse-summary").inner_text()
    assert "frequency" in summary and "Tempo" not in summary  # the quick preset: no beat tracking
    assert page.locator("#fuse-out a[download]").get_attribute("download") == "fusion.wav"


def test_fuse_stems_options_in_browser(page, audio_files):
    """The stem mashup's own options appear with its mask type only; the song chosen to lead supplies the vocals."""
    pytest.importorskip("engines.fusion.api")
    _fuse_quick(page, audio_files["song"], audio_files["song2"])
    lead = page.locator("#fuse-vocals-from")
    assert not lead.is_visible()
    page.locator("#fuse-mask-type").get_by_label("stems").check()
    lead.wait_for(state="visible")
    assert page.locator("#fuse-stem-split").is_visible() and not page.get_by_label("segment_length").first.is_visible()
    lead.get_by_label("b").check()
    page.locator("#fuse-run").click()
    page.wait_for_selector("#fuse-regions .js-plotly-plot", timeout=120_000)
    summary = page.locator("#fuse-summary").inner_text()
    assert "stems" in summary and "B: vocals" in summary and "A: accompaniment" in summary, summary


def test_fuse_batch_in_browser(page, studio, audio_files):
    """Two more B songs in the batch box: each fused with song A, every result in one zip, one summary line each."""
    pytest.importorskip("engines.fusion.api")
    _fuse_quick(page, audio_files["song"], audio_files["piano"])
    page.locator("#fuse-batch input[type=file]").first.set_input_files([str(audio_files["song2"]),
                                                                        str(audio_files["mix"])])
    page.wait_for_function("() => ['song2', 'mix'].every(n => document.querySelector('#fuse-batch')"
                           ".textContent.includes(n))")
    page.locator("#fuse-run").click()
    page.wait_for_selector("#fuse-batch-zip a", timeout=120_000)
    assert "results.zip" in page.locator("#fuse-batch-zip").inner_text().replace("\n", "")
    summary = page.locator("#fuse-summary").inner_text()
    assert "Batch" in summary and "song2.wav: 2 files in batch/song2/" in summary, summary
    assert "mix.wav: 2 files in batch/mix/" in summary and "⚠" not in summary, summary
    zips = sorted((studio[1] / "outputs").rglob("results.zip"), key=lambda p: p.stat().st_mtime)
    names = sorted(zipfile.ZipFile(zips[-1]).namelist())
    assert names == ["batch/mix/fusion.json", "batch/mix/fusion.wav", "batch/song2/fusion.json",
                     "batch/song2/fusion.wav", "fusion.json", "fusion.wav"], names


def test_fuse_learned_api_and_bad_file(client, audio_files):
    pytest.importorskip("engines.fusion.api")
    from gradio_client.exceptions import AppError

    res = client.predict(*fuse_args(audio_files["song"], audio_files["piano"], "temporal", "learned"), api_name="/fuse")
    summary, a, b, fusion, _regions, _mel, files, batch_zip = res
    assert batch_zip is None  # no batch: no zip
    y, sr = sf.read(fusion, dtype="float32")
    # by default the output follows song A's channels (a stereo song here)
    assert "learned" in summary and y.ndim == 2 and y.shape[1] == 2 and np.abs(y).max() <= 1.0
    info = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert info["mode"] == "learned" and info["mask_type"] == "temporal"
    with pytest.raises(AppError) as exc:
        client.predict(*fuse_args(audio_files["bad"], audio_files["piano"]), api_name="/fuse")
    assert "Song A" in str(exc.value)


def test_timbre_in_browser_and_api(page, client, audio_files):
    pytest.importorskip("engines.timbre.api")
    from gradio_client import handle_file

    open_tab(page, "Timbre")
    upload(page, "tim-input", audio_files["piano"])
    page.locator("#tim-run").click()
    page.wait_for_selector("#tim-compare .js-plotly-plot", timeout=120_000)
    assert "violin" in page.locator("#tim-summary").inner_text()
    assert page.locator("#tim-out a[download]").get_attribute("download") == "violin.wav"
    summary, _inp, out, _fig, _zip = client.predict(handle_file(str(audio_files["piano"])),
                                              handle_file(str(audio_files["song2"])), "piano", "input", 0, None,
                                              api_name="/timbre")
    y, sr = sf.read(out, dtype="float32")
    x, xsr = sf.read(audio_files["piano"], dtype="float32")
    assert sr == xsr and y.shape == x.shape and "style: reference" in summary


def test_timbre_bad_file_message(page, audio_files):
    pytest.importorskip("engines.timbre.api")
    open_tab(page, "Timbre")
    upload(page, "tim-input", audio_files["bad"])
    page.locator("#tim-run").click()
    msg = error_toast(page)
    assert "The input" in msg and "Traceback" not in msg, msg
