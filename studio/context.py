"""Per-process studio state: the engine cache and per-session output folders (no module globals)."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable


class EngineCache:
    """Loads each engine/model once and hands the same object to every request (thread-safe)."""

    def __init__(self) -> None:
        self._items: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, factory: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            return self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class StudioContext:
    """What every tab shares: limits, the engine cache and output-folder management.

    Limits default to the environment: ``AUDIO_STUDIO_OUTPUTS`` (output root), ``AUDIO_STUDIO_MAX_UPLOAD_MB``
    (200), ``AUDIO_STUDIO_MAX_SECONDS`` (900 s per file), ``AUDIO_STUDIO_CONCURRENCY`` (2 jobs at a time
    per event), ``AUDIO_STUDIO_KEEP_HOURS`` (6 h before an untouched session folder is deleted).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_upload_mb: float | None = None,
                 max_seconds: float | None = None, concurrency: int | None = None, keep_hours: float | None = None):
        env = os.environ.get
        self.root = Path(root or env("AUDIO_STUDIO_OUTPUTS", Path(tempfile.gettempdir()) / "audio-studio"))
        self.root.mkdir(parents=True, exist_ok=True)
        max_upload_mb = max_upload_mb if max_upload_mb is not None else float(env("AUDIO_STUDIO_MAX_UPLOAD_MB", 200))
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_seconds = max_seconds if max_seconds is not None else float(env("AUDIO_STUDIO_MAX_SECONDS", 15 * 60))
        self.concurrency = concurrency if concurrency is not None else int(env("AUDIO_STUDIO_CONCURRENCY", 2))
        keep_hours = keep_hours if keep_hours is not None else float(env("AUDIO_STUDIO_KEEP_HOURS", 6.0))
        self.keep_seconds = keep_hours * 3600
        self.engines = EngineCache()
        #: kind -> exported checkpoints picked in the Train tab ("use in the engine tabs")
        self.custom_checkpoints: dict[str, list[str]] = {}
        #: kind -> model-picker dropdowns of the engine tabs (the Train tab updates them)
        self.model_pickers: dict[str, list[Any]] = {}

    def job_dir(self, session_hash: str | None, kind: str) -> Path:
        """A fresh output folder for one job of one browser session; old folders are removed."""
        self.cleanup()
        session = "".join(c for c in (session_hash or "anon") if c.isalnum())[:32] or "anon"
        d = self.root / session / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def drop_session(self, session_hash: str | None) -> None:
        """Delete one session's outputs (called when its browser tab closes)."""
        if not session_hash:
            return
        session = "".join(c for c in session_hash if c.isalnum())[:32]
        if session:
            shutil.rmtree(self.root / session, ignore_errors=True)

    def add_checkpoint(self, kind: str, path: str | os.PathLike) -> None:
        paths = self.custom_checkpoints.setdefault(kind, [])
        if str(path) not in paths:
            paths.append(str(path))

    def cleanup(self) -> None:
        """Delete session folders untouched for longer than ``keep_hours``."""
        cutoff = time.time() - self.keep_seconds
        for d in self.root.iterdir() if self.root.exists() else []:
            try:
                if d.is_dir() and d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                pass
