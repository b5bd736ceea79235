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
    """What every tab shares: limits, the engine cache and output-folder management."""

    def __init__(self, root: str | os.PathLike | None = None, *, max_upload_mb: int = 200,
                 max_seconds: float = 15 * 60, concurrency: int = 2, keep_hours: float = 6.0):
        self.root = Path(root or os.environ.get("AUDIO_STUDIO_OUTPUTS", Path(tempfile.gettempdir()) / "audio-studio"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = max_upload_mb * 1024 * 1024
        self.max_seconds = max_seconds
        self.concurrency = concurrency
        self.keep_seconds = keep_hours * 3600
        self.engines = EngineCache()

    def job_dir(self, session_hash: str | None, kind: str) -> Path:
        """A fresh output folder for one job of one browser session; old folders are removed."""
        self.cleanup()
        session = "".join(c for c in (session_hash or "anon") if c.isalnum())[:32] or "anon"
        d = self.root / session / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def cleanup(self) -> None:
        """Delete session folders untouched for longer than ``keep_hours``."""
        cutoff = time.time() - self.keep_seconds
        for d in self.root.iterdir() if self.root.exists() else []:
            try:
                if d.is_dir() and d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                pass
