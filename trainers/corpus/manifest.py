"""Per-kind ``manifest.jsonl`` files: one JSON row per finished item, used for resuming.

Rows are appended (and flushed) as items finish, in completion order; at the end of a run the
file is rewritten sorted by item index, so a finished corpus has a deterministic manifest.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


def read_manifest(path: str | os.PathLike) -> dict[int, dict]:
    """Rows of a manifest by item index (later rows win; broken lines, e.g. a cut-off last line, are skipped)."""
    rows: dict[int, dict] = {}
    p = Path(path)
    if not p.is_file():
        return rows
    with p.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                rows[int(row["index"])] = row
            except (ValueError, KeyError, TypeError):
                log.warning("skipping a broken manifest line in %s", p)
    return rows


def row_line(row: dict) -> str:
    """The manifest line of a row (sorted keys, no trailing spaces)."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Append one row and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(row_line(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_sorted(path: str | os.PathLike, rows: dict[int, dict]) -> None:
    """Atomically rewrite the manifest with ``rows`` sorted by index."""
    from engines.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i in sorted(rows):
            f.write(row_line(rows[i]) + "\n")
