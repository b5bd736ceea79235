"""Vocals tab: the stems choice (four stems with a band-split checkpoint; the players get vocals and drums +
bass + other, the zip the four stems) and the two-stem model refusing it."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("engines.vocals.api")


def test_vocals_four_stems_api(client, audio_files, tmp_path):
    from gradio_client import handle_file

    from engines.testing import tiny_vocals_bs

    ck = tiny_vocals_bs(tmp_path / "bs.safetensors", randomized=True)
    res = client.predict(paths=[handle_file(str(audio_files["song"]))], binary=False, sharp=None, model_name=None,
                         ckpt_path=handle_file(str(ck)), n_stems=4, api_name="/vocals")
    summary, _show, vocals, acc, _mel, _mask, files = res
    assert "1 song(s) done" in summary
    v, sr = sf.read(vocals, dtype="float32")
    a, _ = sf.read(acc, dtype="float32")
    m, msr = sf.read(audio_files["song"], dtype="float32")
    assert sr == msr and v.shape == m.shape
    np.testing.assert_allclose(v + a, m, atol=2e-4)
    names = sorted(zipfile.ZipFile(files[0]).namelist())
    assert names == ["song/bass.wav", "song/drums.wav", "song/other.wav", "song/vocals.wav"]


def test_vocals_four_stems_refused_by_cnn(client, audio_files):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="stems"):
        client.predict(paths=[handle_file(str(audio_files["song"]))], binary=False, sharp=None, model_name=None,
                       ckpt_path=None, n_stems=4, api_name="/vocals")
