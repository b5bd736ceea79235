"""The studio for people who just arrived (issue #19), in the browser: examples in every engine tab (one click
fills the inputs and runs), the output format and region, several query clips, the estimate, and a Train job
that survives a page reload (reattach, Stop) and is registered from the page."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import soundfile as sf

from studio import examples
from tests.studio.helpers import fill_settled, open_tab, upload


def _newest(root: Path, name: str, after: float) -> Path:
    """The newest ``name`` written below ``root`` since ``after`` (the server's job folders)."""
    found = [p for p in root.rglob(name) if p.stat().st_mtime >= after]
    assert found, f"no {name} under {root}"
    return max(found, key=lambda p: p.stat().st_mtime)


def _click_example(page, tab_id: str, elem: str) -> None:
    box = page.locator(f"#{tab_id} #{elem}")
    box.locator("tbody tr, button.gallery-item, .gallery-item").first.click()


def test_example_clips_are_small_and_licence_clean():
    files = [p for p in Path(examples.EXAMPLES_DIR).rglob("*.flac")]
    assert len(files) == len(examples.CLIPS) and sum(p.stat().st_size for p in files) < 5 * 2**20
    record = json.loads((Path(examples.EXAMPLES_DIR) / "sources.json").read_text())
    for name, row in record.items():
        assert row["sources"] and all(not s["real"] and s["licence"].startswith(examples.CLEAN) for s in row["sources"])
        assert sf.info(examples.path(name)).duration <= 12.5
    for tab in ("separate", "vocals", "fuse", "timbre"):
        assert examples.rows(tab)


@pytest.mark.parametrize("title,tab_id,elem,done", [
    ("Separate", "tab-separate", "separate-examples", "#sep-mel .js-plotly-plot"),
    ("Vocals", "tab-vocals", "vocals-examples", "#voc-mel .js-plotly-plot"),
    ("Fuse", "tab-fuse", "fuse-examples", "#fuse-regions .js-plotly-plot"),
    ("Timbre", "tab-timbre", "timbre-examples", "#tim-compare .js-plotly-plot"),
])
def test_examples_fill_the_inputs_and_run(page, title, tab_id, elem, done):
    open_tab(page, title)
    _click_example(page, tab_id, elem)
    page.wait_for_selector(done, timeout=120_000)
    assert page.locator(f"#{tab_id} audio").count() >= 1


def test_mp3_output_and_region_preview(page, studio, audio_files):
    t0 = time.time() - 1
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])
    upload(page, "sep-query", audio_files["query"])
    page.locator("#sep-output").get_by_text("Output format and region").click()
    page.locator("#sep-format input").first.click()
    page.get_by_role("option", name="mp3").click()
    page.locator("#sep-start input").fill("0.5")
    page.locator("#sep-end input").fill("2.5")
    page.locator("#sep-run").click()
    page.wait_for_selector("#sep-mel .js-plotly-plot", timeout=120_000)
    assert page.locator("#sep-target a[download]").get_attribute("download").endswith(".mp3")
    assert "target.mp3" in page.locator("#sep-files").inner_text().replace("\n", "")
    target = _newest(studio[1] / "outputs", "target.mp3", t0)
    info = sf.info(target)
    assert info.samplerate == 16000 and abs(info.duration - 2.0) < 0.1  # the region, at the input's rate
    out = json.loads((target.parent / "event.json").read_text())["output"]
    assert out["format"] == "mp3" and out["bitrate"] == 160  # 192 asked: MPEG-2 (16 kHz) holds at most 160


def test_several_query_clips(page, studio, audio_files):
    t0 = time.time() - 1
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])
    upload(page, "sep-query", audio_files["query"])
    page.locator("#sep-more-queries input[type=file]").first.set_input_files([str(audio_files["query"]),
                                                                              str(audio_files["gt"])])
    page.wait_for_function("() => document.querySelector('#sep-more-queries').textContent.includes('gt')",
                           timeout=90_000)
    page.locator("#sep-run").click()
    page.wait_for_selector("#sep-mel .js-plotly-plot", timeout=120_000)
    ev = json.loads(_newest(studio[1] / "outputs", "event.json", t0).read_text())
    assert ev["params"]["n_queries"] == 3


def _status(page) -> str:
    return page.locator("#train-status textarea, #train-status input").first.input_value()


def _start_query_run(page, out: Path, steps: int, examples_per_epoch: int) -> None:
    open_tab(page, "Train")
    page.locator("#train-model input").first.click()
    page.get_by_role("option", name="query: the built-in query embedder/classifier").click()
    fill_settled(page, "#train-max-steps input", str(steps))
    fill_settled(page, "#train-batch input", "2")
    fill_settled(page, "#train-extra textarea, #train-extra input",
        f"--synthetic 16 --examples_per_epoch {examples_per_epoch} --val_examples 2 --no_mlflow --log_every 1")
    fill_settled(page, "#train-out textarea, #train-out input", str(out))
    page.locator("#train-start").click()


def test_train_job_survives_a_reload_then_registers(page, studio, models_dir):
    pytest.importorskip("trainers.query_embedder")
    out = studio[1] / "runs" / "browser-reattach"
    _start_query_run(page, out, 5000, 5000)
    page.wait_for_function("() => document.querySelector('#train-status textarea, #train-status input')"
                           ".value.startsWith('running: step')", timeout=120_000)
    page.reload()  # a new session: the tab reattaches to the running job
    page.wait_for_selector("button[role=tab]")
    open_tab(page, "Train")
    page.wait_for_function("() => document.querySelector('#train-status textarea, #train-status input')"
                           ".value.includes('running: step')", timeout=60_000)
    assert str(out) in page.locator("#train-out textarea, #train-out input").first.input_value()
    page.wait_for_selector("#train-curve .js-plotly-plot")
    page.locator("#train-stop").click()  # Stop works after the reload
    page.wait_for_function("() => document.querySelector('#train-status textarea, #train-status input')"
                           ".value.startsWith('stopped')", timeout=60_000)
    assert (out / "checkpoint.pt").exists()
    # a short run to the end, then registered under a name from the page
    done = studio[1] / "runs" / "browser-register"
    _start_query_run(page, done, 6, 24)
    page.wait_for_function("() => document.querySelector('#train-status textarea, #train-status input')"
                           ".value.startsWith('done')", timeout=150_000)
    page.wait_for_function("() => document.querySelector('#train-ckpts input').value.includes('query.safetensors')")
    page.locator("#train-reg-name textarea, #train-reg-name input").first.fill("query-from-the-page")
    page.locator("#train-register").click()
    page.wait_for_function("() => document.querySelector('#train-use-msg').innerText.includes('Registered')")
    entry = json.loads((models_dir / "query-from-the-page.json").read_text())
    assert entry["kind"] == "query" and (models_dir / entry["file"]).is_file() and entry["default"] is False
    open_tab(page, "Separate")
    page.locator("#tab-separate").get_by_text("Advanced").click()
    assert page.locator("#tab-separate").get_by_label("Built-in model").input_value() == "query-from-the-page"


@pytest.mark.parametrize("title,prefix,inputs", [
    ("Separate", "sep", (("sep-mix", "mix"), ("sep-query", "query"))),
    ("Timbre", "tim", (("tim-input", "piano"),)),
    ("Vocals", "voc", (("voc-songs", "song"),)),
    ("Fuse", "fuse", (("fuse-a", "song"), ("fuse-b", "song2"))),
])
def test_estimate_before_a_run(page, studio, audio_files, title, prefix, inputs):
    t0 = time.time() - 1
    open_tab(page, title)
    for elem, key in inputs:
        upload(page, elem, audio_files[key])
    page.locator(f"#{prefix}-estimate").click()
    page.wait_for_function(f"() => document.querySelector('#{prefix}-estimate-text').innerText.includes('Estimate')",
                           timeout=120_000)
    text = page.locator(f"#{prefix}-estimate-text").inner_text()
    assert "MB peak memory" in text and "probes:" in text
    written = [p for p in (studio[1] / "outputs").rglob("*") if p.is_file() and p.stat().st_mtime >= t0]
    assert not written  # an estimate writes nothing


def test_batch_results_as_a_zip(page, studio, audio_files):
    import zipfile

    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])
    upload(page, "sep-query", audio_files["query"])
    page.locator("#sep-batch input[type=file]").first.set_input_files([str(audio_files["mix"]),
                                                                       str(audio_files["song2"])])
    page.wait_for_function("() => document.querySelector('#sep-batch').textContent.includes('song2')")
    page.locator("#sep-run").click()
    page.wait_for_function("() => document.querySelector('#sep-files').innerText.replace(/\\n/g, '')"
                           ".includes('results.zip')", timeout=120_000)
    assert "batch/song2/" in page.locator("#sep-summary").inner_text()
    zips = sorted((studio[1] / "outputs").rglob("results.zip"), key=lambda p: p.stat().st_mtime)
    names = zipfile.ZipFile(zips[-1]).namelist()
    assert "target.wav" in names and "batch/mix/target.wav" in names and "batch/song2/residual.wav" in names
    open_tab(page, "Timbre")
    upload(page, "tim-input", audio_files["piano"])
    page.locator("#tim-batch input[type=file]").first.set_input_files([str(audio_files["piano"]),
                                                                       str(audio_files["bad"])])
    page.wait_for_function("() => document.querySelector('#tim-batch').textContent.includes('piano')")
    page.locator("#tim-run").click()
    page.wait_for_selector("#tim-batch-zip a", timeout=120_000)
    summary = page.locator("#tim-summary").inner_text()
    assert "batch/piano/" in summary and "⚠" in summary  # the bad file is reported, the others ran


def test_stem_player_solo_mute_and_remix(page, studio, audio_files, tmp_path):
    import numpy as np

    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])
    upload(page, "sep-query", audio_files["query"])
    page.locator("#sep-run").click()
    page.wait_for_selector("#sep-target a[download]", timeout=120_000)
    player = page.locator("#sep-stems")
    player.locator(".sp-play").click()
    page.wait_for_function("() => (document.querySelector('#sep-stems .stem-player').dataset.state || '')"
                           ".startsWith('playing 2 stems')", timeout=30_000)
    player.locator(".sp-stop").click()
    # residual muted: the remix is the target; target soloed at half level: half the target
    player.locator(".sp-row").nth(1).locator(".sp-mute").check()
    with page.expect_download() as dl:
        player.locator(".sp-download").click()
    remix = tmp_path / "remix.wav"
    dl.value.save_as(remix)
    target = _newest(studio[1] / "outputs", "target.wav", 0)
    y, sr = sf.read(remix, dtype="float32", always_2d=True)
    t, tsr = sf.read(target, dtype="float32", always_2d=True)
    assert sr == tsr and y.shape == t.shape
    scale = min(1.0, 0.999 / max(np.abs(t).max(), 1e-9))
    assert np.abs(y - t * scale).max() < 2e-4
    player.locator(".sp-row").nth(1).locator(".sp-mute").uncheck()
    player.locator(".sp-row").nth(0).locator(".sp-solo").check()
    player.locator(".sp-row").nth(0).locator(".sp-level").fill("0.5")
    with page.expect_download() as dl:
        player.locator(".sp-download").click()
    dl.value.save_as(remix)
    y, _ = sf.read(remix, dtype="float32", always_2d=True)
    assert np.abs(y - 0.5 * t).max() < 2e-4


def test_register_model_checks_without_a_server(tmp_path, monkeypatch):
    """studio.training.register_model: only an exported model below a runs root, a clean new name, never a
    replaced entry."""
    from engines import registry
    from studio import training
    from tests.studio.tiny_models import make_models_dir

    models = tmp_path / "models"
    make_models_dir(models)
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    monkeypatch.setenv("AUDIO_STUDIO_RUNS", str(runs))
    src = runs / "r1" / "query.safetensors"
    src.write_bytes((models / "query-tiny.safetensors").read_bytes())
    entry = training.register_model(str(src), "query", "mine-1", models_dir=models)
    assert entry["name"] == "mine-1" and (models / "mine-1.safetensors").read_bytes() == src.read_bytes()
    assert registry.resolve("mine-1", "query", models_dir=models) == models / "mine-1.safetensors"
    for bad, message in (("mine-1", "already has"), ("query-tiny", "already has"), ("../x", "a name of"),
                         ("", "a name of")):
        with pytest.raises(training.TrainInputError, match=message):
            training.register_model(str(src), "query", bad, models_dir=models)
    with pytest.raises(training.TrainInputError, match="outside"):
        training.register_model(str(models / "query-tiny.safetensors"), "query", "mine-2", models_dir=models)


def test_query_taken_from_the_mixture(page, studio, audio_files):
    t0 = time.time() - 1
    open_tab(page, "Separate")
    upload(page, "sep-mix", audio_files["mix"])  # no query upload: a span of the mixture is the query
    page.locator("#sep-qfrom input").fill("1.0")
    page.locator("#sep-qto input").fill("2.2")
    page.locator("#sep-run").click()
    page.wait_for_selector("#sep-mel .js-plotly-plot", timeout=120_000)
    ev = json.loads(_newest(studio[1] / "outputs", "event.json", t0).read_text())
    assert ev["params"]["n_queries"] == 1 and "Detected class:" in page.locator("#sep-summary").inner_text()
