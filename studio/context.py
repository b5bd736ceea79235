"""Per-process studio state: the engine cache, per-session state and output folders (no module globals).

Everything a visitor chooses lives in *their* session: the checkpoints they picked in the Train tab
(``add_checkpoint``), the engines built from checkpoints they uploaded or trained (the engine cache's
per-session part) and their output folders (``<root>/<session>/``). A session ends when its browser
tab closes (``drop_session`` from ``app.unload``) or, for clients that never send ``unload``
(``gradio_client``, REST), when it has been idle for ``keep_hours`` (``cleanup``, run at every job and
by a background sweeper).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger(__name__)

#: registry engines kept loaded at once (``AUDIO_STUDIO_ENGINE_CACHE``)
DEFAULT_ENGINE_CACHE = 4
#: checkpoints a session may register per kind (the oldest is forgotten first)
MAX_CHECKPOINTS = 4


def outputs_root() -> Path:
    """The root of the per-session output folders: ``AUDIO_STUDIO_OUTPUTS``, else ``$TMPDIR/audio-studio``."""
    return Path(os.environ.get("AUDIO_STUDIO_OUTPUTS") or Path(tempfile.gettempdir()) / "audio-studio")


def session_key(session_hash: str | None) -> str:
    """A session id safe as a folder name: letters and digits only, at most 32 (``'anon'`` if none)."""
    return "".join(c for c in (session_hash or "") if c.isalnum())[:32] or "anon"


class EngineCache:
    """Engines/models built once per key and shared by the requests that need them (thread-safe).

    Two bounded LRU stores:

    * shared entries (registry models), at most ``max_items`` (``AUDIO_STUDIO_ENGINE_CACHE``, default 4);
    * per-session entries (``get(..., session=s)``: engines built from a checkpoint one session
      uploaded or trained), at most ``max_session_items`` over all sessions (default: ``max_items``),
      dropped with their session (:meth:`drop_session`).

    A factory runs at most once per key even under concurrent requests (a per-key lock; the global
    lock is never held while a slow factory runs). An evicted engine is simply built again when asked.
    """

    def __init__(self, max_items: int | None = None, max_session_items: int | None = None) -> None:
        if max_items is None:
            max_items = int(os.environ.get("AUDIO_STUDIO_ENGINE_CACHE", DEFAULT_ENGINE_CACHE))
        self.max_items = max(1, int(max_items))
        self.max_session_items = max(1, int(max_session_items if max_session_items is not None else self.max_items))
        self._shared: OrderedDict[Any, Any] = OrderedDict()
        self._sessions: OrderedDict[tuple[str, Any], Any] = OrderedDict()
        self._building: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()

    def _store(self, key: Any, session: str | None):
        if session is None:
            return self._shared, key, self.max_items
        return self._sessions, (session_key(session), key), self.max_session_items

    def get(self, key: Any, factory: Callable[[], Any], *, session: str | None = None) -> Any:
        """The engine for ``key`` (built by ``factory()`` on a miss); ``session`` makes it that session's own."""
        store, full, cap = self._store(key, session)
        with self._lock:
            if full in store:
                store.move_to_end(full)
                return store[full]
            build_lock = self._building.setdefault(("build", id(store), full), threading.Lock())
        with build_lock:
            with self._lock:
                if full in store:  # built by the request we waited for
                    store.move_to_end(full)
                    return store[full]
            try:
                value = factory()
            finally:
                with self._lock:
                    self._building.pop(("build", id(store), full), None)
            with self._lock:
                store[full] = value
                store.move_to_end(full)
                while len(store) > cap:
                    old, _ = store.popitem(last=False)
                    logger.info("engine cache: evicted %r", old)
            return value

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._shared

    def has(self, key: Any, session: str | None = None) -> bool:
        store, full, _ = self._store(key, session)
        with self._lock:
            return full in store

    def keys(self, session: str | None = None) -> list:
        """Shared keys (oldest first), or the keys of one session's entries."""
        with self._lock:
            if session is None:
                return list(self._shared)
            s = session_key(session)
            return [k for (sess, k) in self._sessions if sess == s]

    def sessions(self) -> set[str]:
        with self._lock:
            return {s for s, _ in self._sessions}

    def drop_session(self, session: str | None) -> int:
        """Forget every entry of ``session``; returns how many."""
        s = session_key(session)
        with self._lock:
            gone = [k for k in self._sessions if k[0] == s]
            for k in gone:
                del self._sessions[k]
        return len(gone)

    def clear(self) -> None:
        with self._lock:
            self._shared.clear()
            self._sessions.clear()


@dataclass
class SessionState:
    """What one session chose: checkpoints per kind (registered in the Train tab) and when it was last used."""

    last_used: float = field(default_factory=time.time)
    checkpoints: dict[str, list[str]] = field(default_factory=dict)


class StudioContext:
    """What every tab shares: limits, the engine cache, per-session state and output folders.

    Limits default to the environment: ``AUDIO_STUDIO_OUTPUTS`` (output root), ``AUDIO_STUDIO_MAX_UPLOAD_MB``
    (200), ``AUDIO_STUDIO_MAX_SECONDS`` (900 s per file), ``AUDIO_STUDIO_CONCURRENCY`` (2 jobs at a time
    per event), ``AUDIO_STUDIO_KEEP_HOURS`` (6 h: a session idle that long is forgotten and its folder
    deleted), ``AUDIO_STUDIO_ENGINE_CACHE`` (4 registry engines loaded at once), ``AUDIO_STUDIO_DEVICE``
    (``auto``: CUDA when available, else CPU; every engine tab loads its models there).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_upload_mb: float | None = None,
                 max_seconds: float | None = None, concurrency: int | None = None, keep_hours: float | None = None,
                 engine_cache: int | None = None):
        env = os.environ.get
        self.root = Path(root or outputs_root())
        self.root.mkdir(parents=True, exist_ok=True)
        max_upload_mb = max_upload_mb if max_upload_mb is not None else float(env("AUDIO_STUDIO_MAX_UPLOAD_MB", 200))
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        from engines.audio import limits  # the engines' one duration limit (AUDIO_STUDIO_MAX_SECONDS, 900 s)

        self.max_seconds = max_seconds if max_seconds is not None else limits.max_seconds()
        self.concurrency = concurrency if concurrency is not None else int(env("AUDIO_STUDIO_CONCURRENCY", 2))
        #: files one request may carry (the Vocals tab's batch): bounded work per request
        self.max_files = max(1, int(env("AUDIO_STUDIO_MAX_FILES", 16)))
        keep_hours = keep_hours if keep_hours is not None else float(env("AUDIO_STUDIO_KEEP_HOURS", 6.0))
        self.keep_seconds = keep_hours * 3600
        self.engines = EngineCache(engine_cache)
        from engines import device as devices

        #: where the engines run (``auto`` | ``cpu`` | ``cuda``), resolved once; shown in the Models tab
        self.device = str(devices.resolve(env("AUDIO_STUDIO_DEVICE", "auto")))
        #: kind -> model-picker dropdowns of the engine tabs (the Train tab updates them)
        self.model_pickers: dict[str, list[Any]] = {}
        self._sessions: dict[str, SessionState] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stop_sweeper = threading.Event()

    # ------------------------------------------------------------------ sessions
    def touch(self, session_hash: str | None) -> str:
        """Mark the session as used now; returns its key."""
        s = session_key(session_hash)
        with self._lock:
            self._sessions.setdefault(s, SessionState()).last_used = time.time()
        return s

    def add_checkpoint(self, session_hash: str | None, kind: str, path: str | os.PathLike) -> None:
        """Offer ``path`` in this session's ``kind`` model pickers (only this session's; at most
        :data:`MAX_CHECKPOINTS` per kind, the oldest forgotten first)."""
        s = session_key(session_hash)
        with self._lock:
            st = self._sessions.setdefault(s, SessionState())
            st.last_used = time.time()
            paths = st.checkpoints.setdefault(kind, [])
            if str(path) in paths:
                paths.remove(str(path))
            paths.append(str(path))
            del paths[:-MAX_CHECKPOINTS]

    def checkpoints(self, session_hash: str | None, kind: str) -> list[str]:
        """The checkpoints this session registered for ``kind`` (oldest first)."""
        if session_hash is None:
            return []
        with self._lock:
            st = self._sessions.get(session_key(session_hash))
            return list(st.checkpoints.get(kind, [])) if st else []

    def owns_checkpoint(self, session_hash: str | None, kind: str, path: str) -> bool:
        return str(path) in self.checkpoints(session_hash, kind)

    def sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------------ output folders
    def job_dir(self, session_hash: str | None, kind: str) -> Path:
        """A fresh output folder for one job of one session; idle sessions are swept first."""
        session = self.touch(session_hash)
        self.cleanup()
        d = self.root / session / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex}"
        d.mkdir(parents=True, exist_ok=True)
        os.utime(d.parent)  # the session folder's mtime is its last use
        return d

    def drop_session(self, session_hash: str | None) -> None:
        """Forget one session: its outputs, checkpoints and engines (its browser tab closed)."""
        if not session_hash:
            return
        s = session_key(session_hash)
        with self._lock:
            self._sessions.pop(s, None)
        self.engines.drop_session(s)
        shutil.rmtree(self.root / s, ignore_errors=True)

    def cleanup(self, now: float | None = None) -> list[str]:
        """Forget every session idle for longer than ``keep_hours`` (last job or last use, whichever is
        later): its folder, checkpoints and cached engines. Returns the sessions removed."""
        now = time.time() if now is None else now
        cutoff = now - self.keep_seconds
        with self._lock:
            last = {s: st.last_used for s, st in self._sessions.items()}
        folders: dict[str, Path] = {}
        try:
            for d in self.root.iterdir():
                if d.is_dir():
                    folders[d.name] = d
        except OSError:
            pass
        removed = []
        for s in set(last) | set(folders) | self.engines.sessions():
            used = last.get(s, 0.0)
            if s in folders:
                try:
                    used = max(used, folders[s].stat().st_mtime)
                except FileNotFoundError:
                    pass
            if used >= cutoff:
                continue
            with self._lock:
                st = self._sessions.get(s)
                if st is not None and st.last_used >= cutoff:  # used while we looked
                    continue
                self._sessions.pop(s, None)
            self.engines.drop_session(s)
            if s in folders:
                shutil.rmtree(folders[s], ignore_errors=True)
            removed.append(s)
        if removed:
            logger.info("swept %d idle session(s)", len(removed))
        return removed

    def start_sweeper(self, interval: float | None = None) -> threading.Thread:
        """Run :meth:`cleanup` every ``interval`` seconds (default: a tenth of ``keep_hours``, 10 s to
        10 min) in a daemon thread, so sessions that never send ``unload`` are swept without new jobs."""
        if self._sweeper is not None and self._sweeper.is_alive():
            return self._sweeper
        if interval is None:
            interval = min(600.0, max(10.0, self.keep_seconds / 10))
        self._stop_sweeper.clear()

        def loop():
            while not self._stop_sweeper.wait(interval):
                try:
                    self.cleanup()
                except Exception:  # noqa: BLE001 - the sweeper must keep running
                    logger.exception("session sweep failed")

        self._sweeper = threading.Thread(target=loop, name="studio-session-sweeper", daemon=True)
        self._sweeper.start()
        return self._sweeper

    def stop_sweeper(self) -> None:
        self._stop_sweeper.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
        self._sweeper = None
