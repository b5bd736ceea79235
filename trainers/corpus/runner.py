"""Planning, estimating and rendering the items of each kind (resumable, parallel, with progress)."""
from __future__ import annotations

import logging
import multiprocessing as mp
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .kinds import KIND_CLASSES
from .kinds.base import Context, Kind
from ..data import DataError, parse_row
from .manifest import MANIFEST, append_row, read_manifest, rewrite_sorted

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """The items of one kind: their plans, total planned seconds and the estimates."""

    kind: Kind
    items: list[dict]
    seconds: float

    @property
    def disk_bytes(self) -> float:
        """Estimated bytes written."""
        return self.seconds * self.kind.bytes_per_second

    def time_s(self, workers: int) -> float:
        """Estimated wall seconds."""
        return self.seconds * self.kind.cost_per_second / max(1, min(workers, 2)) * (1.0 if workers <= 1 else 1.3)


def plan_kind(kind: Kind, seed: int, minutes: float) -> Plan:
    """Plan items until their planned durations add up to ``minutes`` (item i never depends on M)."""
    items, total, i = [], 0.0, 0
    target = minutes * 60.0
    while total < target - 1e-9:
        p = kind.plan(seed, i)
        items.append(p)
        total += p["seconds"]
        i += 1
    return Plan(kind, items, total)


def _work(args: tuple) -> tuple[int, dict | None, str | None, float]:
    kind_name, ctx, index, plan = args
    kind = KIND_CLASSES[kind_name]()
    t0 = time.time()
    try:
        row = kind.render(ctx, index, plan)
        parse_row(kind_name, row, f"{kind_name} item {index}")  # the typed data contract, before it is written
        return index, row, None, time.time() - t0
    except Exception:  # keep going: one broken score must not stop a long render
        return index, None, traceback.format_exc(limit=6), time.time() - t0


def _clean_tmp(kind_dir: Path) -> None:
    for p in list(kind_dir.rglob(".tmp-*")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _valid(kind: str, row: dict) -> bool:
    try:
        parse_row(kind, row)
        return True
    except DataError as err:
        log.warning("manifest row %s does not follow the data contract (%s): rendered again", row.get("index"), err)
        return False


def render_plan(plan: Plan, ctx: Context, workers: int = 1, progress: bool = True) -> dict:
    """Render the unfinished items of ``plan``; return statistics (done, skipped, failed, seconds)."""
    kind = plan.kind
    kind_dir = ctx.root / kind.name
    kind_dir.mkdir(parents=True, exist_ok=True)
    _clean_tmp(kind_dir)
    mpath = kind_dir / MANIFEST
    rows = {i: r for i, r in read_manifest(mpath).items() if _valid(kind.name, r)}  # older rows are re-rendered
    todo = [i for i in range(len(plan.items))
            if not (i in rows and kind.is_complete(kind_dir, rows[i]))]
    skipped = len(plan.items) - len(todo)
    stats = {"kind": kind.name, "items": len(plan.items), "skipped": skipped, "rendered": 0, "failed": 0,
             "audio_seconds": 0.0, "wall_seconds": 0.0}
    if not todo:
        rewrite_sorted(mpath, rows)
        return stats
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=kind.name, unit="item", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    t0 = time.time()
    jobs = [(kind.name, ctx, i, plan.items[i]) for i in todo]
    pool = None
    try:
        if workers <= 1:
            results = map(_work, jobs)
        else:
            pool = mp.get_context("fork").Pool(workers, maxtasksperchild=200)
            results = pool.imap_unordered(_work, jobs, chunksize=1)
        for index, row, err, _dt in results:
            if err is not None:
                stats["failed"] += 1
                log.error("%s item %d failed:\n%s", kind.name, index, err)
            else:
                append_row(mpath, row)
                rows[index] = row
                stats["rendered"] += 1
                stats["audio_seconds"] += plan.items[index]["seconds"]
            bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
    finally:
        if pool is not None:  # interrupted: stop the workers
            pool.terminate()
        bar.close()
        rewrite_sorted(mpath, rows)
    stats["wall_seconds"] = round(time.time() - t0, 2)
    stats["audio_seconds"] = round(stats["audio_seconds"], 2)
    return stats
