"""Models tab: what each registered model is, how it was trained, its measured scores."""
from __future__ import annotations

import json

from engines import registry

TITLE = "Models"


def rows() -> list[list[str]]:
    out = []
    for e in registry.entries():
        scores = ", ".join(f"{k}: {v}" for k, v in (e.get("scores") or {}).items())
        out.append([e["name"] + (" (default)" if e.get("default") else ""), e.get("kind", ""),
                    e.get("description", ""), e.get("trained_on", ""), scores])
    return out


def build(ctx) -> None:
    import gradio as gr

    gr.Markdown("Models registered in `assets/models` (also `python launch.py models`).")
    table = gr.Dataframe(value=rows(), headers=["model", "kind", "what it is", "trained on", "measured scores"],
                         interactive=False, wrap=True, elem_id="models-table")
    with gr.Accordion("Raw registry entries", open=False):
        raw = gr.Code(value=json.dumps(registry.entries(), indent=2), language="json")
    refresh = gr.Button("Refresh")
    refresh.click(lambda: (rows(), json.dumps(registry.entries(), indent=2)), outputs=[table, raw], api_name="models")
