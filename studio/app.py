"""Build and launch the Audio Studio Gradio app.

Tabs are contributed by modules in :data:`TABS`; a tab whose engine is not in this checkout is
not shown (no placeholder tabs). Each tab module exposes ``TITLE`` and ``build(ctx: StudioContext)``.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os

from .context import StudioContext

logger = logging.getLogger(__name__)

#: tab module -> engine module it needs (the tab is shown only when both exist)
TABS: list[tuple[str, str]] = [
    ("studio.tabs.separate", "engines.separation"),
    ("studio.tabs.vocals", "engines.vocals"),
    ("studio.tabs.fuse", "engines.fusion"),
    ("studio.tabs.timbre", "engines.timbre"),
    ("studio.tabs.train", "trainers.solver"),
    ("studio.tabs.models", "engines.registry"),
]


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available_tabs() -> list[str]:
    """Tab module names: the studio's own tabs, then (as ``generic:<package>:<title>``) every engine folder that
    declares a command but has no tab here (engines/discovery.py, docs/DEVELOPING.md)."""
    tabs = [tab for tab, engine in TABS if _exists(tab) and _exists(engine)]
    from engines.discovery import engines

    own = {engine for _tab, engine in TABS}
    tabs[-2:-2] = [f"generic:{f.package}:{f.title}" for f in engines() if f.package not in own]
    return tabs


def _tab_module(name: str):
    if name.startswith("generic:"):
        from .tabs.generic import make_module

        _, package, title = name.split(":", 2)
        return make_module(package, title)
    return importlib.import_module(name)


def build_app(ctx: StudioContext | None = None):
    """The Gradio Blocks app with one tab per available engine."""
    import gradio as gr

    ctx = ctx or StudioContext()
    # Gradio's copies of the outputs (and the uploads) in GRADIO_TEMP_DIR are deleted after keep_hours too
    keep = max(60, int(ctx.keep_seconds))
    with gr.Blocks(title="Audio Studio", delete_cache=(min(3600, keep), keep)) as app:
        gr.Markdown("# Audio Studio\nNeural tools for music and sound: separate, isolate vocals, fuse, "
                    "transfer timbre, and train the models on your own audio. "
                    f"Files up to {ctx.max_upload_bytes / 2**20:.0f} MB and {ctx.max_seconds:g} s each; "
                    "your outputs are offered only to your session (at unguessable links) and deleted when it ends "
                    f"or after {ctx.keep_seconds / 3600:g} h without use.")
        with gr.Tabs():
            for name in available_tabs():
                try:
                    module = _tab_module(name)
                except Exception:  # noqa: BLE001 - a broken tab must not take the studio down
                    logger.exception("tab %s could not be imported; it is not shown", name)
                    continue
                short = name.rsplit(".", 1)[-1].split(":")[0]
                with gr.Tab(module.TITLE, id=short, elem_id=f"tab-{short}"):
                    try:
                        module.build(ctx)
                    except Exception as err:  # noqa: BLE001 - one engine's problem must not hide the others
                        logger.exception("tab %s failed to build", name)
                        gr.Markdown(f"**This tab could not be built:** {type(err).__name__}: {err}")

        pickers = [(kind, p) for kind, ps in ctx.model_pickers.items() for p in ps]
        if pickers:
            from .common import default_model, model_choices

            def _refresh_models(request):
                """On page load: models registered since the studio started, and the loading session's
                own checkpoints (nobody else's), appear in the pickers."""
                session = getattr(request, "session_hash", None)
                return [gr.update(choices=model_choices(kind, ctx, session), value=default_model(kind, ctx, session))
                        for kind, _ in pickers]

            _refresh_models.__annotations__ = {"request": gr.Request}

            app.load(_refresh_models, outputs=[p for _, p in pickers], api_visibility="private")

        def _end_session(request):
            ctx.drop_session(getattr(request, "session_hash", None))

        _end_session.__annotations__ = {"request": gr.Request}  # a real type, not a postponed string

        app.unload(_end_session)
    _readable_refusals(app)
    app.queue(default_concurrency_limit=ctx.concurrency, max_size=64)
    ctx.start_sweeper()  # sessions that never send unload (API clients) are swept by idle time
    return app


def _readable_refusals(app) -> None:
    """Gradio refuses a file value it did not receive (a server path sent through the API) or a malformed
    value before our callbacks run, and answers with an empty error; say what is wrong instead (the same
    words whether or not such a file exists)."""
    import gradio as gr
    import pydantic
    from gradio.exceptions import InvalidPathError

    original = app.preprocess_data

    async def preprocess_data(*args, **kwargs):
        try:
            return await original(*args, **kwargs)
        except (InvalidPathError, pydantic.ValidationError):
            raise gr.Error("A file in this request was not uploaded to this studio (or is not a file value): "
                           "upload it again.", print_exception=False) from None

    app.preprocess_data = preprocess_data


def served_paths(ctx: StudioContext) -> list[str]:
    """``allowed_paths`` for ``launch()``: none when the outputs root is under the system temp folder
    or the working directory (Gradio then copies each returned file into its own cache and serves
    only that copy, under a secret-seeded hash); otherwise Gradio cannot return files from the root
    unless it is allowed, which also serves the whole root by path (a warning says so)."""
    import tempfile

    from gradio.utils import is_in_or_equal

    from gradio.utils import get_upload_folder

    root = os.path.realpath(ctx.root)
    if is_in_or_equal(root, os.path.realpath(get_upload_folder())):
        logger.warning("AUDIO_STUDIO_OUTPUTS (%s) is inside Gradio's upload folder: its files are then served by "
                       "path and accepted as uploads; choose a folder outside GRADIO_TEMP_DIR", root)
    if any(is_in_or_equal(root, os.path.realpath(p)) for p in (tempfile.gettempdir(), os.getcwd())):
        return []
    logger.warning("AUDIO_STUDIO_OUTPUTS (%s) is outside the temp folder and the working directory: it is "
                   "added to Gradio's allowed_paths, so its files can be fetched by anyone who knows a path", root)
    return [root]


def launch(host: str | None = None, port: int | None = None, share: bool = False) -> int:
    """Open the studio; host/port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", 7860))
    ctx = StudioContext()
    from .policy import Policy

    ctx.policy = Policy.decide(host, share)  # before the tabs are built: the Train tab reads it
    logger.info("training: %s (%s)", "on" if ctx.policy.training else "off", ctx.policy.reason)
    app = build_app(ctx)
    app.launch(server_name=host, server_port=port, share=share, max_file_size=ctx.max_upload_bytes,
               allowed_paths=served_paths(ctx))
    return 0
