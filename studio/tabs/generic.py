"""The tab of an engine that has no tab of its own: built from its ``Engine`` and ``Config`` alone.

One audio upload per ``Engine.INPUTS`` name, one widget per studio option of ``Config`` (by group, generated
by :mod:`studio.widgets`, so the defaults are the Config's), a preset picker when the Config has presets,
and a Run button; the result is written by ``Result.save`` into the session's job folder and shown as a
player of the first stem, the list of files and the result's JSON. This is what makes a fifth engine appear
in the studio by adding one folder under ``engines/`` (docs/DEVELOPING.md).
"""
from __future__ import annotations

import importlib

from studio import widgets as W
from studio.common import guard, load_audio, progress_callback, session_of


def build_engine_tab(ctx, package: str) -> None:
    """Build the generic tab of ``package`` (e.g. ``"engines.gain"``) inside the current ``gr.Tab``."""
    import gradio as gr

    from engines.options import specs

    mod = importlib.import_module(package)
    Engine, Config = mod.Engine, mod.Config
    short = package.rsplit(".", 1)[-1]
    doc = (Engine.__doc__ or "").strip().splitlines()
    if doc:
        gr.Markdown(doc[0])
    with gr.Row():
        uploads = [gr.Audio(label=name + (" (optional)" if name in Engine.OPTIONAL_INPUTS else ""), type="filepath",
                            sources=["upload"], elem_id=f"{short}-in-{name}") for name in Engine.INPUTS]
    names = [s.name for s in specs(Config) if s.studio]
    comps: dict = {}
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(next(s.group for s in specs(Config) if s.name == n), []).append(n)
    for group, members in groups.items():
        with gr.Accordion(group, open=len(groups) == 1):
            with gr.Row():
                comps.update(W.widgets(Config, members, **{m: {"elem_id": f"{short}-opt-{m}"} for m in members}))
    if Config.PRESETS:
        W.preset_picker(Config, comps, elem_id=f"{short}-preset")
    run = gr.Button("Run", variant="primary", elem_id=f"{short}-run")
    player = gr.Audio(label="Result", type="filepath", interactive=False, elem_id=f"{short}-out")
    files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id=f"{short}-files")
    info = gr.JSON(label="Details", elem_id=f"{short}-info")

    @guard
    def on_run(*values, request: gr.Request, progress=gr.Progress()):
        session = session_of(request)
        paths, opts = values[:len(uploads)], values[len(uploads):]
        inputs = {}
        for name, path in zip(Engine.INPUTS, paths):
            loaded = load_audio(path, f"The {name}", ctx, required=name not in Engine.OPTIONAL_INPUTS)
            inputs[name] = loaded
        config = W.to_config(Config, names, opts)
        engine = ctx.engines.get((short, None), lambda: Engine.load(None, device=ctx.device))
        result = engine.run(inputs, config, progress=progress_callback(progress, 0.0, 0.95))
        saved = result.save(ctx.job_dir(session, short))
        audio = [str(p) for n, p in saved.items() if n in set(result.file_names().values())]
        return (audio[0] if audio else None), [str(p) for p in saved.values()], result.to_json()

    run.click(on_run, [*uploads, *[comps[n] for n in names]], [player, files, info], api_name=short)


def make_module(package: str, title: str):
    """A tab module (``TITLE``, ``build(ctx)``) for ``package``, as studio/app.py expects of a tab."""
    import types

    m = types.ModuleType(f"studio.tabs.generic[{package}]")
    m.TITLE = title
    m.build = lambda ctx: build_engine_tab(ctx, package)
    return m
