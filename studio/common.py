"""Shared tab plumbing: the error wrapper, input checks with limits, output files, progress.

Nothing here does tensor work: audio is read and written through :mod:`engines.audio.io` and the
engines' own APIs do the processing.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

logger = logging.getLogger(__name__)

def _gr():
    import gradio as gr

    return gr


def readable(err: BaseException) -> str:
    """A one-line message for ``err`` (never a traceback): :func:`engines.messages.user_message`."""
    from engines.messages import user_message

    return user_message(err)


def guard(fn: Callable) -> Callable:
    """Decorate a Gradio callback: any exception reaches the user as ``gr.Error(message)``.

    The full traceback goes to the server log only. ``functools.wraps`` keeps the signature, so
    Gradio still injects ``gr.Request`` / ``gr.Progress`` parameters.
    """
    gr = _gr()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - every error becomes a message
            logger.exception("studio callback %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(readable(err), print_exception=False) from None

    return wrapper


def session_of(request: Any) -> str:
    """The browser session's id (``'anon'`` for API calls without one)."""
    return getattr(request, "session_hash", None) or "anon"


def check_upload(path: str | os.PathLike | None, what: str, ctx, *, required: bool = True) -> Path | None:
    """Check an uploaded file exists and is within the size and duration limits.

    Raises ``gr.Error`` with a message naming ``what`` (e.g. "The mixture").
    """
    gr = _gr()
    if path is None or str(path) == "":
        if required:
            raise gr.Error(f"{what} is missing: upload or record it first.", print_exception=False)
        return None
    p = Path(path)
    if not p.is_file():
        raise gr.Error(f"{what} could not be found on the server; upload it again.", print_exception=False)
    size = p.stat().st_size
    if size == 0:
        raise gr.Error(f"{what} ({p.name}) is empty (0 bytes).", print_exception=False)
    if size > ctx.max_upload_bytes:
        raise gr.Error(f"{what} ({p.name}) is {size / 2**20:.1f} MB; the studio accepts files up to "
                       f"{ctx.max_upload_bytes / 2**20:.0f} MB.", print_exception=False)
    from engines.audio import io

    try:
        seconds = io.info(p)["seconds"]
    except Exception:  # noqa: BLE001 - not a header soundfile knows: load() decides below
        seconds = None
    if seconds is not None and seconds > ctx.max_seconds:
        raise gr.Error(f"{what} ({p.name}) is {seconds:.1f} s long; the studio accepts at most "
                       f"{ctx.max_seconds:g} s per file.", print_exception=False)
    return p


def load_audio(path, what: str, ctx, *, sr: int | None = None, mono: bool = False,
               required: bool = True) -> tuple[np.ndarray, int] | None:
    """Check limits, then load ``(C, T)`` float32 audio; errors name ``what``, not a temp path."""
    gr = _gr()
    p = check_upload(path, what, ctx, required=required)
    if p is None:
        return None
    from engines.audio import io
    from engines.audio.errors import AudioError

    try:
        return io.load(p, sr=sr, mono=mono, max_seconds=ctx.max_seconds)
    except AudioError as err:
        msg = str(err).replace(f"'{p}'", f"{what} ({p.name})").replace("The uploaded audio", what)
        raise gr.Error(msg, print_exception=False) from None


def save_audio(job_dir: Path, name: str, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> str:
    """Write ``(C, T)`` or ``(T,)`` audio to ``job_dir/name`` and return the path as a string."""
    from engines.audio import io

    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    path = Path(job_dir) / name
    io.save(path, a, int(sr), subtype=subtype)
    return str(path)


def player_value(audio: np.ndarray, sr: int) -> tuple[int, np.ndarray]:
    """A ``gr.Audio(type="numpy")`` value from ``(C, T)`` float audio."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a[0] if a.shape[0] == 1 else a.T
    return int(sr), np.clip(a, -1.0, 1.0)


def zip_files(paths: Iterable[str | os.PathLike], dest: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Zip ``paths`` (names relative to ``root`` when given) into ``dest``; returns ``dest``."""
    dest = Path(dest)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in paths:
            p = Path(p)
            z.write(p, p.relative_to(root) if root else p.name)
    return str(dest)


def progress_callback(progress: Any, start: float = 0.0, end: float = 1.0) -> Callable[[float, str], None]:
    """Adapt a ``gr.Progress`` to the engines' ``progress(fraction, message)`` convention."""

    def cb(fraction: float, message: str = "") -> None:
        try:
            progress(start + (end - start) * float(min(max(fraction, 0.0), 1.0)), desc=message or None)
        except Exception:  # noqa: BLE001 - progress display must never break the work
            pass

    return cb


def _registry_names(kind: str) -> list[tuple[str, str]]:
    from engines import registry

    try:
        return [(e["name"] + (" (default)" if e.get("default") else ""), e["name"]) for e in registry.entries(kind)]
    except Exception:  # noqa: BLE001 - an unreadable registry offers no names
        return []


def model_choices(kind: str, ctx, session: str | None = None) -> list[tuple[str, str]]:
    """Dropdown choices for a model picker: registry entries of ``kind`` + the checkpoints *this*
    session chose in the Train tab (``ctx.add_checkpoint``); ``session=None``: registry only."""
    out = _registry_names(kind)
    for path in ctx.checkpoints(session, kind) if session is not None else []:
        out.append((f"trained: {Path(path).parent.name}/{Path(path).name}", str(path)))
    return out


def default_model(kind: str, ctx, session: str | None = None) -> str | None:
    choices = model_choices(kind, ctx, session)
    for label, value in choices:
        if label.endswith("(default)"):
            return value
    return choices[0][1] if choices else None


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` as one short printable line for a message."""
    s = "".join(c if c.isprintable() else "?" for c in str(value))
    return s if len(s) <= limit else s[:limit - 3] + "..."


def unknown_model_message(value: Any) -> str:
    """The one message for any model value that is not offered (never says whether a path exists)."""
    return f"Unknown model '{_shown(value)}': choose one from the list."


def check_model(kind: str, value: Any, ctx, session: str | None) -> str | None:
    """The picker ``value`` if it is a registry name of ``kind`` or a checkpoint this session
    registered; ``None`` for an empty value (the engine's default). Anything else (any other server
    path, existing or not) raises ``gr.Error(unknown_model_message(value))``; no file is looked at."""
    if value is None or str(value) == "":
        return None
    v = str(value)
    if session is not None:
        ctx.touch(session)
    if any(v == name for _label, name in _registry_names(kind)) or ctx.owns_checkpoint(session, kind, v):
        return v
    raise _gr().Error(unknown_model_message(value), print_exception=False)


def model_picker(kind: str, ctx, **kwargs):
    """A model picker for ``kind``: registry names (and, after a page load, the session's own
    checkpoints); ``allow_custom_value=False``, so a typed server path is refused on the server."""
    kwargs.setdefault("choices", model_choices(kind, ctx))
    kwargs.setdefault("value", default_model(kind, ctx))
    gr = _gr()
    picker = gr.Dropdown(allow_custom_value=False, **kwargs)
    original = picker.preprocess

    def preprocess(payload):
        """Anything but an offered choice gets one neutral message (Gradio's own lists every choice)."""
        try:
            return original(payload)
        except gr.Error:
            raise gr.Error(unknown_model_message(payload), print_exception=False) from None

    # an instance attribute, not a subclass: a gr.Dropdown subclass makes Gradio write a .pyi stub
    # next to this file at import time (and fail where the source folder is read-only)
    picker.preprocess = preprocess
    ctx.model_pickers.setdefault(kind, []).append(picker)
    return picker


def upload_folder() -> Path:
    """Gradio's upload cache (``GRADIO_TEMP_DIR``), where every visitor's uploads land."""
    from gradio.utils import get_upload_folder

    return Path(os.path.realpath(get_upload_folder()))


def check_uploaded(path: Any, what: str) -> str | None:
    """``path`` if it lies inside Gradio's upload folder (a file a visitor uploaded), else ``gr.Error``.

    Gradio already refuses input files outside its upload folder; this is the studio's own check
    for values that name a server file (an uploaded checkpoint), so no other server path is used.
    """
    if path is None or str(path) == "":
        return None
    p = getattr(path, "path", None) or getattr(path, "name", None) or str(path)
    real = Path(os.path.realpath(p))
    root = upload_folder()
    if real != root and root in real.parents:
        return str(real)
    raise _gr().Error(f"{what} must be a file uploaded to this studio; upload it again.", print_exception=False)


# ---------------------------------------------------------------------------------------- output format
#: the output options every engine tab shows (engines.cli_common.OutputConfig: the CLI's --format/--subtype/
#: --bitrate) and the region of the main input (the CLI's --start/--end)
OUTPUT_OPTIONS = ("format", "subtype", "bitrate")


def output_panel(prefix: str, *, region: bool = True) -> list:
    """An "Output format and region" accordion: format, bit depth, MP3 bitrate (generated from
    :class:`engines.cli_common.OutputConfig`) and, with ``region``, start/end seconds of the main input.
    Returns the components in the order :func:`output_choice` reads them."""
    from engines.cli_common import OutputConfig
    from studio import widgets as W

    gr = _gr()
    with gr.Accordion("Output format and region", open=False, elem_id=f"{prefix}-output"):
        with gr.Row():
            fmt = W.widget(OutputConfig, "format", elem_id=f"{prefix}-format", info="--format: wav, flac or mp3")
            # the CLI also takes PCM_16/PCM_24/FLOAT; the page offers the short names only
            sub = gr.Dropdown(choices=["auto", "16", "24", "float"], value=OutputConfig().subtype, label="subtype",
                              info="--subtype: auto = the input's bit depth (float: wav only)",
                              elem_id=f"{prefix}-subtype")
            kbps = W.widget(OutputConfig, "bitrate", elem_id=f"{prefix}-bitrate", info="--bitrate: MP3 kbps")
            out = [fmt, sub, kbps]
            if region:
                out.append(gr.Number(value=0, label="start (s)", minimum=0, elem_id=f"{prefix}-start",
                                     info="--start: process from here (0: the beginning)"))
                out.append(gr.Number(value=0, label="end (s)", minimum=0, elem_id=f"{prefix}-end",
                                     info="--end: process up to here (0: the end); a quick preview"))
    return out


def output_choice(values, like=None):
    """``(OutputFormat, (start, end))`` from :func:`output_panel`'s values (``like``: the input to follow for
    rate, channels and bit depth). Bad values raise a readable ``ValueError``."""
    from engines.cli_common import OutputConfig
    from studio import widgets as W

    values = list(values) + [None] * (len(OUTPUT_OPTIONS) + 2 - len(values))
    cfg = W.to_config(OutputConfig, OUTPUT_OPTIONS, values[:len(OUTPUT_OPTIONS)])
    start, end = (None if v in (None, "") else float(v) for v in values[len(OUTPUT_OPTIONS):len(OUTPUT_OPTIONS) + 2])
    if end is not None and end <= 0:
        end = None  # 0 (or an emptied Number): the end
    if start is not None and start <= 0:
        start = None
    return cfg.output_format(like=like), (start, end)


def crop_region(loaded, region, what: str = "The input"):
    """``(audio, sr)`` cut to ``region = (start, end)`` seconds (``(None, None)``: unchanged)."""
    if loaded is None or region == (None, None):
        return loaded
    from engines.cli_common import crop

    audio, sr = loaded
    return crop(audio, sr, region[0], region[1], what), sr


def stem_file(written: dict, stem: str) -> str:
    """The path of ``stem``'s audio file (``target.wav``, ``target.mp3``, ...) among ``Result.save``'s files."""
    for name, path in written.items():
        if isinstance(name, str) and name.rsplit(".", 1)[0] == stem and name.rsplit(".", 1)[-1] in ("wav", "flac", "mp3"):
            return str(path)
    raise KeyError(stem)


# ------------------------------------------------------------------------------------------- estimate
class _Estimated(BaseException):
    """Carries the estimate line out of a tab's Run function (a BaseException, so ``guard`` lets it pass)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


_ESTIMATING = contextvars.ContextVar("audio_studio_estimating", default=False)


def run_engine(engine, job, cfg, progress=None, *, total_seconds: float | None = None):
    """``engine.run(job, cfg, progress=progress)``: what every engine tab calls to process. Inside
    :func:`estimator` it measures instead: short probes of this job on this machine
    (:func:`engines.cli_common.estimate`, at most a few seconds of audio), and nothing is written."""
    if _ESTIMATING.get():
        from engines.cli_common import describe, estimate

        raise _Estimated(describe(estimate(engine, job, cfg, total_seconds=total_seconds)))
    return engine.run(job, cfg, progress=progress)


def estimator(on_run: Callable) -> Callable:
    """The "Estimate" event of a tab: ``on_run`` (its inputs, checks and model loading) up to
    :func:`run_engine`, which returns the time and peak-memory estimate line instead of processing."""

    @functools.wraps(on_run)
    def on_estimate(*args, **kwargs):
        token = _ESTIMATING.set(True)
        try:
            on_run(*args, **kwargs)
        except _Estimated as done:
            return done.text
        finally:
            _ESTIMATING.reset(token)
        return "Nothing to estimate."

    return on_estimate


def estimate_controls(prefix: str):
    """``(button, markdown)``: "Estimate time and memory" and where its line appears."""
    gr = _gr()
    button = gr.Button("Estimate time and memory", size="sm", elem_id=f"{prefix}-estimate")
    text = gr.Markdown(elem_id=f"{prefix}-estimate-text")
    return button, text


# ---------------------------------------------------------------------------------------------- batch
def batch_panel(prefix: str, what: str):
    """A multi-file upload: more main inputs processed one after the other with the same settings."""
    gr = _gr()
    return gr.File(label=f"Batch: more {what} (each with the same settings; every result in one zip)",
                   file_count="multiple", file_types=["audio"], value=[], height=110, elem_id=f"{prefix}-batch")


def run_batch(files, ctx, out_dir: Path, process: Callable[[str, Path], dict], progress=None,
              first: dict | None = None) -> tuple[str | None, list[str]]:
    """Process each of ``files`` (``process(path, folder) -> {name: path}``, one folder per file under
    ``out_dir``) and zip every result (with ``first``: the tab's own job, in ``out_dir/<its name>``).
    Returns ``(zip path or None, one line per file)``; a bad file is reported and the others still run."""
    from engines.atomic import safe_name

    gr = _gr()
    paths = [p if isinstance(p, str) else getattr(p, "path", None) or getattr(p, "name", str(p)) for p in files or []]
    if not paths:
        return None, []
    if len(paths) > ctx.max_files:
        raise gr.Error(f"{len(paths)} files in one batch; the studio takes at most {ctx.max_files} at a time "
                       f"(the command line has no such limit).", print_exception=False)
    used: set[str] = set()
    written: list[str] = list(str(p) for p in (first or {}).values())
    lines = []
    for i, p in enumerate(paths):
        name = safe_name(Path(p).stem, "file")
        k, base = 1, name
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        if progress is not None:
            progress_callback(progress)(i / len(paths), f"batch {i + 1}/{len(paths)}: {Path(p).name}")
        try:
            out = process(p, Path(out_dir) / "batch" / name)
        except (gr.Error, ValueError) as err:
            lines.append(f"- ⚠ {Path(p).name}: {err}")
            continue
        written += [str(v) for v in out.values()]
        lines.append(f"- {Path(p).name}: {len(out)} files in `batch/{name}/`")
    root = Path(out_dir)
    zipped = zip_files([w for w in written if Path(w).is_file()], root / "results.zip",
                       root=_common_root([Path(w) for w in written], root))
    return zipped, lines


def _common_root(paths: list[Path], fallback: Path) -> Path:
    """The deepest folder holding every path (the zip's root)."""
    if not paths:
        return fallback
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return common
