"""Vocals tab: batch of songs in the browser (players, plots, zip), a bad file among them, the API."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("engines.vocals.api")

from tests.studio.helpers import error_toast, open_tab  # noqa: E402


def test_vocals_batch_in_browser(page, audio_files):
    open_tab(page, "Vocals")
    page.locator("#voc-songs input[type=file]").first.set_input_files([str(audio_files["song"]),
                                                                       str(audio_files["song2"])])
    page.wait_for_function("() => document.querySelectorAll('#voc-songs tr, #voc-songs .file').length >= 2 "
                           "|| document.querySelector('#voc-songs').innerText.includes('song2')")
    page.locator("#voc-preset input").first.click()  # the preset picker generated from Config.PRESETS
    page.get_by_role("option", name="hard").click()
    page.wait_for_function("() => document.querySelector('#voc-binary input[type=checkbox]').checked")
    page.locator("#voc-run").click()
    page.wait_for_selector("#voc-mel .js-plotly-plot", timeout=120_000)
    page.wait_for_selector("#voc-mask .js-plotly-plot")
    summary = page.locator("#voc-summary").inner_text()
    assert "2 song(s) done" in summary and "binary" in summary
    assert page.locator("#voc-vocals a[download]").get_attribute("download").endswith(".wav")
    assert "stems\n.zip" in page.locator("#voc-files").inner_text()


def test_vocals_bad_file_message(page, audio_files):
    open_tab(page, "Vocals")
    page.locator("#voc-songs input[type=file]").first.set_input_files(str(audio_files["bad"]))
    page.wait_for_function("() => document.querySelector('#voc-songs').innerText.includes('notes')")
    page.locator("#voc-run").click()
    msg = error_toast(page)
    assert "No song could be processed" in msg and "notes.wav" in msg, msg


def test_vocals_api(client, audio_files):
    from gradio_client import handle_file

    res = client.predict([handle_file(str(audio_files["song"])), handle_file(str(audio_files["bad"]))], False, 1.0,
                         None, None, api_name="/vocals")
    summary, _show, vocals, acc, _mel, _mask, files = res  # (gr.State outputs are not sent)
    assert "1 song(s) done" in summary and "notes.wav" in summary
    v, sr = sf.read(vocals, dtype="float32")
    a, _ = sf.read(acc, dtype="float32")
    m, msr = sf.read(audio_files["song"], dtype="float32")
    assert sr == msr and v.shape == m.shape == (m.shape[0], 2)
    np.testing.assert_allclose(v + a, m, atol=2e-4)
    assert len(files) == 1
    z = files[0]
    assert sorted(zipfile.ZipFile(z).namelist()) == ["song/accompaniment.wav", "song/vocals.wav"]
