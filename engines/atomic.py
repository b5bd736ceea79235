"""Atomic, all-or-nothing file writes.

Two tools, used by every engine, trainer and the studio (there is no other temp-file-and-rename):

* :func:`atomic_path` - one file: write to a hidden temporary file beside the target, then
  ``os.replace``. Readers never see a half-written file.
* :class:`OutputStage` - the outputs of one run: every file is written into a hidden staging folder
  inside ``out_dir``; :meth:`OutputStage.publish` checks every final name against every input
  (resolved paths, symlinks and hard links included) before the first rename, then moves them in.
  A failed run publishes nothing, and no output ever replaces an input, whatever the names.

Temporary files and staging folders carry the writing process's id in their name
(``.<name>.astmp-<pid>-<random>``, ``.astage-<pid>-<random>``): the next write into the same folder
removes those whose process is gone (a SIGKILL leaves no permanent litter).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

TMP_TAG = ".astmp-"
STAGE_PREFIX = ".astage-"
_PID_RE = re.compile(r"(?:\.astmp-|^\.astage-)(\d+)-")
#: leftovers of a live process are still removed when older than this (a stuck or recycled pid)
STALE_SECONDS = 24 * 3600


def safe_name(text: str, fallback: str = "output", max_len: int = 80) -> str:
    """A file or folder name made from user text: letters, digits, ``-``, ``_`` and inner dots only;
    never empty, never hidden (no leading dot), never ``.``/``..``, at most ``max_len`` characters."""
    s = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in str(text).strip())
    s = s.lstrip(".").replace("..", "_")[:max_len].strip("_.")
    return s or fallback


class OutputError(ValueError):
    """The output folder cannot be used, or an output would replace an input."""


def _collision(dest: Path) -> Exception:
    from .audio.errors import OverwriteInputError  # (an AudioError; imported late: audio.io imports this module)

    return OverwriteInputError(f"Refusing to write '{dest}': it is one of the inputs. Choose another output "
                               f"folder (nothing was written).")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove temp files and staging folders left in ``folder`` by killed processes; returns them."""
    removed: list[Path] = []
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        if not e.name.startswith("."):
            continue
        m = _PID_RE.search(e.name)
        if not m:
            continue
        try:
            old = now - e.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
        except FileNotFoundError:
            continue
        if _pid_alive(int(m.group(1))) and not old:
            continue
        p = Path(e.path)
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    Readers never see a half-written file, and an interrupted write leaves the old file intact.
    Stale temporaries of killed processes in the same folder are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}{TMP_TAG}{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it takes the place of ``path`` (an old folder
    there is removed first), on error it is removed. Readers never see a half-built folder; a killed
    process's leftover is removed by the next write into the same parent (:func:`clean_stale`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_TAG}{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        swap_in(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def swap_in(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` in the place of ``path`` (removing an old ``path`` first)."""
    tmp, path = Path(tmp), Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.replace(tmp, path)
    return path


def _identity(path: str | os.PathLike) -> tuple[str, tuple[int, int] | None]:
    """(resolved path, (device, inode) when the file exists)."""
    real = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(real)
        return real, (st.st_dev, st.st_ino)
    except OSError:
        return real, None


class InputSet:
    """Files that must never be replaced, compared by resolved path and by (device, inode)."""

    def __init__(self, paths: Iterable[str | os.PathLike | None] = ()) -> None:
        self._paths: set[str] = set()
        self._inodes: set[tuple[int, int]] = set()
        self.add(*paths)

    def add(self, *paths: str | os.PathLike | None) -> None:
        for p in paths:
            if p is None or isinstance(p, (bytes, bytearray)) or not isinstance(p, (str, os.PathLike)) or str(p) == "":
                continue
            real, ino = _identity(p)
            self._paths.add(real)
            if ino is not None:
                self._inodes.add(ino)

    def __contains__(self, path: str | os.PathLike) -> bool:
        real, ino = _identity(path)
        return real in self._paths or (ino is not None and ino in self._inodes)


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders that would have to be created for ``folder`` to exist, deepest first."""
    missing, probe = [], folder.absolute()
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    return missing


def _check_folder(out_dir: str | os.PathLike) -> Path:
    """Refuse, without creating anything, an output folder that is empty, a file, under a file or not
    writable (:class:`OutputError`)."""
    out = Path(out_dir)
    if str(out_dir) == "":
        raise OutputError("No output folder given.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"The output folder '{out}' is a file, not a folder.")
    missing = _missing_dirs(out)
    probe = missing[-1].parent if missing else out
    if not probe.is_dir():
        raise OutputError(f"The output folder '{out}' cannot be created: '{probe}' is a file.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"The output folder '{out}' is not writable." if not missing else
                          f"The output folder '{out}' cannot be written ('{probe}' is not writable).")
    return out


#: resolved paths of every file this process loaded (engines.audio.io adds to it): outputs never replace them
_LOADED_INPUTS: set[str] = set()


def loaded_inputs() -> list[str]:
    """Resolved paths of every file this process has loaded (outputs must never replace them)."""
    return sorted(_LOADED_INPUTS)


def _input_set(inputs: "InputSet | Iterable[str | os.PathLike | None]") -> InputSet:
    """``inputs`` plus every file this process loaded (outputs never replace either)."""
    ins = inputs if isinstance(inputs, InputSet) else InputSet(inputs)
    ins.add(*loaded_inputs())
    return ins


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Check (before any work) that ``out_dir`` is, or can be made, a writable folder.

    Creates it when missing. Raises :class:`OutputError` with a readable message otherwise.
    """
    out = _check_folder(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"The output folder '{out}' cannot be created: {err.strerror or err}.") from None
    return out


def check_names(out_dir: str | os.PathLike, names: Iterable[str],
                inputs: "InputSet | Iterable[str | os.PathLike | None]" = ()) -> None:
    """Refuse, before any work and without creating anything, outputs ``out_dir/<name>`` that would be
    an input, or an ``out_dir`` that is a file. Every file this process loaded counts as an input."""
    out = _check_folder(out_dir)
    ins = _input_set(inputs)
    for n in names:
        dest = out / n
        if dest in ins:
            raise _collision(dest)


class OutputStage:
    """Stage the outputs of one run in a hidden folder inside ``out_dir``, then publish them together.

    Usage::

        stage = OutputStage(out_dir, inputs=[mix, query], names=["target.wav", "residual.wav"])
        ...  # the work (out_dir was checked before it started)
        with stage:
            save(stage.path("target.wav"), ...)
            stage.write_text("event.json", text)
        written = stage.published  # {name: final path}; nothing is published if the block raised

    ``names`` (optional) are checked against the inputs at once, so a collision is refused before
    the work; every name is checked again at publish time, before the first rename.
    """

    def __init__(self, out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 names: Iterable[str] = ()) -> None:
        self._created = _missing_dirs(Path(out_dir))  # removed again (when empty) if nothing is published
        self.out_dir = check_out_dir(out_dir)
        clean_stale(self.out_dir)
        self.inputs = _input_set(inputs)
        self._names: list[str] = []
        self._dir: Path | None = None
        self.published: dict[str, Path] = {}
        try:
            for n in names:
                self.check(n)
        except Exception:
            self.abort()  # a refused name leaves no folder behind either
            raise

    # ------------------------------------------------------------------ names
    def final(self, name: str) -> Path:
        """The published path of ``name`` (a relative path inside ``out_dir``; no ``..``)."""
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or name.startswith("."):
            raise OutputError(f"'{name}' is not a valid output name.")
        return self.out_dir / rel

    def check(self, name: str) -> Path:
        """Refuse ``name`` when its final path is an input; returns the final path."""
        dest = self.final(name)
        if dest in self.inputs:
            raise _collision(dest)
        if dest.exists() and dest.is_dir():
            raise OutputError(f"Cannot write '{dest}': a folder of that name is in the way.")
        return dest

    # ------------------------------------------------------------------ writing
    def _staging(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=self.out_dir))
        return self._dir

    def path(self, name: str) -> Path:
        """Where to write output ``name`` now (inside the staging folder)."""
        self.check(name)
        if name in self._names:
            raise OutputError(f"Output '{name}' was written twice in one run.")
        self._names.append(name)
        p = self._staging() / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text)
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def publish(self) -> dict[str, Path]:
        """Check every name again, then move every staged file to its final place."""
        finals = {n: self.check(n) for n in self._names}
        for n, dest in finals.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._staging() / n, dest)
            self.published[n] = dest
        self.discard()
        return dict(self.published)

    def discard(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def abort(self) -> None:
        """Discard the staged files and remove the folders this stage created (when still empty)."""
        self.discard()
        for d in self._created:
            try:
                d.rmdir()
            except OSError:
                break

    def __enter__(self) -> "OutputStage":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.publish()
        else:
            self.abort()
