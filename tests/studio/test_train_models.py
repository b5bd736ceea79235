"""Train and Models tabs, and the app itself, in the browser: a real (tiny) training run started,
followed live (log, loss curve, status), its exported model used in the Separate tab; the Models
table; the tab list in /config."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest

from tests.studio.helpers import error_toast, fill_settled, open_tab


def test_config_lists_the_tabs(studio):
    with urllib.request.urlopen(studio[0] + "/config") as r:
        cfg = json.load(r)
    labels = [c["props"].get("label") for c in cfg["components"] if c.get("type") == "tabitem"]
    assert labels[-2:] == ["Train", "Models"]
    for module, title in (("engines.separation", "Separate"), ("engines.vocals", "Vocals"),
                          ("engines.fusion", "Fuse"), ("engines.timbre", "Timbre")):
        try:
            __import__(module)
        except ImportError:
            continue
        assert title in labels


def test_models_tab_lists_the_registry(page):
    open_tab(page, "Models")
    table = page.locator("#models-table").inner_text()
    assert "vocals-ens-tiny (default)" in table and "tiny random" in table and "ensemble of vocals-tiny + vocals-bs-tiny" in table


def test_trainer_pick_resets_the_form_in_the_page(page):
    """The pick sets the trainer's defaults in the browser (no round trip), so a value typed right after it holds;
    the server still updates the help texts."""
    open_tab(page, "Train")
    page.locator("#train-model input").first.click()
    page.get_by_role("option", name=re.compile(r"^vocals-bs: ")).click()
    page.locator("#train-max-steps input").fill("7")  # at once: no waiting for the pick's answer
    page.wait_for_timeout(1500)
    assert page.locator("#train-max-steps input").input_value() == "7"
    assert page.locator("#train-batch input").input_value() == "6"  # vocals-bs's --batch_size
    assert re.search(r"/vocals-bs-\d{8}-\d{6}$", page.locator("#train-out textarea, #train-out input").first.input_value())
    page.locator("#train-model input").first.click()
    page.get_by_role("option", name=re.compile(r"^query: ")).click()
    page.wait_for_function("() => document.querySelector('#train-batch input').value === '16'")  # query's
    assert page.locator("#train-max-steps input").input_value() == ""  # query has no step limit by default


def test_train_query_live_then_use_in_separate(page, studio):
    pytest.importorskip("trainers.query_embedder")
    out = studio[1] / "runs" / "browser-query"
    open_tab(page, "Train")
    page.locator("#train-model input").first.click()
    page.get_by_role("option", name="query: the built-in query embedder/classifier").click()
    fill_settled(page, "#train-max-steps input", "6")
    fill_settled(page, "#train-batch input", "4")
    fill_settled(page, "#train-extra textarea, #train-extra input",
        "--synthetic 16 --examples_per_epoch 24 --val_examples 4 --no_mlflow --log_every 1")
    fill_settled(page, "#train-out textarea, #train-out input", str(out))
    page.locator("#train-start").click()
    page.wait_for_function("() => document.querySelector('#train-command').innerText.includes('train query')")
    command = page.locator("#train-command").inner_text()
    assert "--max_steps 6" in command and f"--export {out}/query.safetensors" in command
    page.wait_for_function(
        "() => { const s = document.querySelector('#train-status textarea, #train-status input');"
        " return s && s.value.startsWith('done'); }", timeout=150_000)
    assert "Epoch" in page.locator("#train-log textarea").input_value()
    page.wait_for_selector("#train-curve .js-plotly-plot")
    assert (out / "query.safetensors").exists() and (out / "progress.jsonl").exists()
    page.wait_for_function("() => document.querySelector('#train-ckpts input').value.includes('query.safetensors')")
    page.locator("#train-use").click()
    page.wait_for_function("() => document.querySelector('#train-use-msg').innerText.includes('now selected')")
    open_tab(page, "Separate")
    page.locator("#tab-separate").get_by_text("Advanced").click()
    picker = page.locator("#tab-separate").get_by_label("Built-in model")
    assert "query.safetensors" in picker.input_value()


def test_train_stop_checkpoints(page, studio):
    pytest.importorskip("trainers.query_embedder")
    out = studio[1] / "runs" / "browser-stop"
    open_tab(page, "Train")
    page.locator("#train-model input").first.click()
    page.get_by_role("option", name="query: the built-in query embedder/classifier").click()
    fill_settled(page, "#train-max-steps input", "5000")
    fill_settled(page, "#train-batch input", "2")
    fill_settled(page, "#train-extra textarea, #train-extra input",
        "--synthetic 16 --examples_per_epoch 5000 --val_examples 2 --no_mlflow --log_every 1")
    fill_settled(page, "#train-out textarea, #train-out input", str(out))
    page.locator("#train-start").click()
    page.wait_for_function(
        "() => document.querySelector('#train-status textarea, #train-status input').value.startsWith('running: step')",
        timeout=120_000)
    page.locator("#train-stop").click()
    page.wait_for_function(
        "() => document.querySelector('#train-status textarea, #train-status input').value.startsWith('stopped')",
        timeout=60_000)
    assert (out / "checkpoint.pt").exists()
    last = (out / "progress.jsonl").read_text().strip().splitlines()[-1]
    assert json.loads(last)["event"] == "stopped"
    page.reload()  # the tab forgets its job; Watch follows the folder again
    open_tab(page, "Train")
    fill_settled(page, "#train-out textarea, #train-out input", str(out))
    page.locator("#train-watch").click()
    page.wait_for_function(
        "() => document.querySelector('#train-status textarea, #train-status input').value.includes('stopped at step')")
    assert "[stopped]" in page.locator("#train-log textarea").input_value()


def test_train_missing_dataset_message(page, studio):
    open_tab(page, "Train")
    page.locator("#train-data textarea, #train-data input").first.fill(str(studio[1] / "data" / "no-such-folder"))
    page.locator("#train-start").click()
    assert "does not exist" in error_toast(page)


def test_train_dataset_outside_the_data_roots_message(page):
    open_tab(page, "Train")
    page.locator("#train-data textarea, #train-data input").first.fill("/")
    page.locator("#train-start").click()
    assert "is outside the folders training may use" in error_toast(page)


def test_models_api(client):
    table, raw = client.predict(api_name="/models")
    names = [e["name"] for e in json.loads(raw)]
    assert "query-tiny" in names
    rows = table["data"] if isinstance(table, dict) else table
    assert any(r[0] == "query-tiny (default)" and r[5] == "not measured" for r in rows)


def test_models_registered_later_appear_on_page_load(page, models_dir):
    pytest.importorskip("engines.vocals.api")
    import shutil

    from engines.registry import entries, register

    e = next(x for x in entries("vocals", models_dir=models_dir) if x["name"] == "vocals-tiny")
    shutil.copy(models_dir / e["file"], models_dir / "vocals-later.safetensors")
    register({**e, "name": "vocals-later", "file": "vocals-later.safetensors", "default": False}, models_dir=models_dir)
    page.reload()
    open_tab(page, "Vocals")
    page.locator("#tab-vocals").get_by_label("Model").click()
    assert page.get_by_role("option", name="vocals-later").is_visible()
