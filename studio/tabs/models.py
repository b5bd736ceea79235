"""Models tab: what each registered model is, how it was trained, its measured scores."""
from __future__ import annotations

import json

from engines import registry

TITLE = "Models"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def rows() -> list[list[str]]:
    out = []
    for e in registry.entries():
        scores = "; ".join(f"{k}: {_fmt(v)}" for k, v in (e.get("scores") or {}).items())
        path = registry._dir(None) / e.get("file", "")  # noqa: SLF001 - same folder the engines read
        size = ("ensemble of " + " + ".join(str(m.get("name")) for m in e["members"]) if e.get("members")
                else f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "missing")
        out.append([e["name"] + (" (default)" if e.get("default") else ""), e.get("kind", ""),
                    f"{e.get('sample_rate', '-')} Hz, {size}", e.get("description", ""), e.get("trained_on", ""),
                    scores or "not measured"])
    return out


def build(ctx) -> None:
    import gradio as gr

    from engines import device as devices

    gr.Markdown("Models registered in `assets/models` (also `python launch.py models`). "
                f"Engines run on **{devices.describe(ctx.device)}** (`AUDIO_STUDIO_DEVICE`: auto, cpu or cuda).",
                elem_id="models-device")
    table = gr.Dataframe(value=rows(), headers=["model", "kind", "rate, size", "what it is", "trained on", "measured scores"],
                         interactive=False, wrap=True, elem_id="models-table")
    with gr.Accordion("Raw registry entries", open=False):
        raw = gr.Code(value=json.dumps(registry.entries(), indent=2), language="json")
    refresh = gr.Button("Refresh")
    refresh.click(lambda: (rows(), json.dumps(registry.entries(), indent=2)), outputs=[table, raw], api_name="models")
