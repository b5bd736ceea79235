"""Fixtures for the studio tests: the real app on a loopback port, a headless Debian chromium
driven by Playwright, a gradio_client, and short generated audio.

The server is started once per test session (``python launch.py`` with GRADIO_SERVER_PORT) with
small limits (AUDIO_STUDIO_MAX_SECONDS=20, AUDIO_STUDIO_MAX_UPLOAD_MB=2) so the limit messages can be tested with short files.
Screenshots go to ``test-artifacts/studio/`` (gitignored).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "studio"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
MAX_SECONDS = 20
MAX_UPLOAD_MB = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the studio exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the studio did not answer on {url} within {timeout:.0f} s")


def start_studio(tmp: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, str, Path]:
    """Start ``launch.py`` on a free loopback port; returns (process, base url, log path)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "AUDIO_STUDIO_OUTPUTS": str(tmp / "outputs"),
           "AUDIO_STUDIO_RUNS": str(tmp / "runs"), "AUDIO_STUDIO_MAX_SECONDS": str(MAX_SECONDS),
           "AUDIO_STUDIO_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
           "GRADIO_TEMP_DIR": str(tmp / "gradio"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "MLFLOW_ALLOW_FILE_STORE": "true", **(extra_env or {})}
    log = tmp / "studio.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py")], cwd=str(ROOT), env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    (tmp / "studio.pid").write_text(str(proc.pid))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/config", proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"studio did not start; log:\n{log.read_text()[-3000:]}")
    return proc, url, log


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def studio_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studio")


@pytest.fixture(scope="session")
def models_dir(studio_tmp) -> Path:
    """A private registry with tiny random models of every engine in the checkout."""
    from tests.studio.tiny_models import make_models_dir

    d = studio_tmp / "models"
    make_models_dir(d)
    return d


@pytest.fixture(scope="session")
def studio(studio_tmp, models_dir):
    """``(base_url, tmp_folder)`` of a running studio (tiny models, 20 s duration limit)."""
    proc, url, log = start_studio(studio_tmp, {"AUDIO_STUDIO_MODELS": str(models_dir)})
    yield url, studio_tmp
    stop_process(proc)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, ARTIFACTS / "studio.log")


@pytest.fixture(scope="session")
def public_studio(tmp_path_factory, models_dir):
    """``(base_url, tmp_folder)`` of a studio deployed as a public Space would be (``SPACE_ID`` set):
    training and server paths are off; the security tests attack it through the queue."""
    tmp = tmp_path_factory.mktemp("public")
    (tmp / "data").mkdir()
    proc, url, log = start_studio(tmp, {"AUDIO_STUDIO_MODELS": str(models_dir), "SPACE_ID": "audio-studio/test",
                                        "AUDIO_STUDIO_DATA": str(tmp / "data")})
    yield url, tmp
    stop_process(proc)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, ARTIFACTS / "public_studio.log")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, studio, request):
    """A fresh page on the studio; a full-page screenshot is saved when the test ends."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(studio[0])
    pg.wait_for_selector("button[role=tab]", timeout=60_000)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    except Exception:  # noqa: BLE001 - a screenshot must not fail the test
        pass
    ctx.close()


@pytest.fixture(scope="session")
def client(studio):
    from gradio_client import Client

    return Client(studio[0], verbose=False)


# ------------------------------------------------------------------ generated audio
def tone(freq: float, seconds: float, sr: int, amp: float = 0.3, start: float = 0.0, total: float | None = None) -> np.ndarray:
    n = int(round((total or seconds) * sr))
    y = np.zeros(n, np.float32)
    i0 = int(start * sr)
    t = np.arange(int(seconds * sr)) / sr
    seg = amp * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) ** 0.1
    y[i0:i0 + len(seg)] = seg[: n - i0]
    return y


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    """Short generated files: a 3 s mixture (noise + a 880 Hz tone in 1.0-2.2 s), a 1 s query of that
    tone, the ground truth, a stereo song, a too-long file and a non-audio file."""
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    sr = 16000
    gt = tone(880, 1.2, sr, 0.3, start=1.0, total=3.0) + tone(1320, 1.2, sr, 0.1, start=1.0, total=3.0)
    noise = (0.05 * rng.standard_normal(3 * sr)).astype(np.float32)
    bass = tone(110, 3.0, sr, 0.2)
    mix = gt + noise + bass
    query = tone(880, 1.0, sr, 0.3) + tone(1320, 1.0, sr, 0.1)
    files = {"mix": d / "mix.wav", "query": d / "query.wav", "gt": d / "gt.wav"}
    sf.write(files["mix"], mix, sr)
    sf.write(files["query"], query, sr)
    sf.write(files["gt"], gt, sr)
    sr2 = 22050
    t = np.arange(int(2.5 * sr2)) / sr2
    voice = 0.25 * np.sin(2 * np.pi * 330 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (np.sin(2 * np.pi * 1.2 * t) > 0)
    acc = 0.15 * np.sin(2 * np.pi * 110 * t) + 0.05 * rng.standard_normal(len(t))
    files["song"] = d / "song.wav"
    sf.write(files["song"], np.stack([voice + acc, 0.9 * voice + acc], 1).astype(np.float32), sr2)
    files["song2"] = d / "song2.wav"
    sf.write(files["song2"], (0.5 * (voice + acc)).astype(np.float32), sr2)
    sr3 = 24000
    t3 = np.arange(2 * sr3) / sr3
    files["piano"] = d / "piano.wav"
    sf.write(files["piano"], (0.3 * np.sin(2 * np.pi * 262 * t3) * np.exp(-3 * (t3 % 0.5))).astype(np.float32), sr3)
    files["long"] = d / "long.wav"
    sf.write(files["long"], (0.1 * rng.standard_normal((MAX_SECONDS + 2) * 8000)).astype(np.float32), 8000)
    files["big"] = d / "big.wav"  # 2.6 MB: over the upload limit, under the duration limit
    sf.write(files["big"], (0.1 * rng.standard_normal(16000 * 10 * 4)).astype(np.float32).reshape(-1, 4), 16000,
             subtype="FLOAT")
    files["bad"] = d / "notes.wav"
    files["bad"].write_text("this is not audio\n" * 20)
    return files
