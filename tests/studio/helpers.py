"""Small Playwright helpers for the studio's browser tests."""
from __future__ import annotations

from pathlib import Path


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()


def upload(page, elem_id: str, path: str | Path) -> None:
    """Upload ``path`` into the gr.Audio/gr.File with ``elem_id`` and wait until it is shown."""
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files(str(path))
    # the uploaded file replaces the drop zone with a player (or a file row)
    page.wait_for_function(
        "id => { const el = document.getElementById(id); return el && !el.querySelector('input[type=file]') "
        "|| (el && el.querySelector('audio, .file-preview, [data-testid=\"waveform-controls\"]')); }",
        arg=elem_id, timeout=30_000)


def error_toast(page, timeout: float = 60_000) -> str:
    """The text of the first error toast Gradio shows."""
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=timeout)
    return toast.inner_text()


def fill_settled(page, selector: str, value: str, tries: int = 20) -> None:
    """Fill the input at ``selector`` with ``value`` and make it stick: an event the page fired just before (the
    Train tab's trainer pick resets the form) may answer after the fill and overwrite it, so fill again until the
    value has held for half a second."""
    box = page.locator(selector).first
    for _ in range(tries):
        box.fill(value)
        page.wait_for_timeout(500)
        if box.input_value() == value:
            return
    raise AssertionError(f"{selector} did not keep {value!r} (it shows {box.input_value()!r})")
