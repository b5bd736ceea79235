"""What every benchmark script shares: the two bench sets, their baselines, the scorer, the report.

The bench has two sets with one layout and one scorer (``../shared/bench/README.md``):

* ``rendered``: ``BENCH/data``, synthesised with the same soundfont the training corpus uses
  (flattering);
* ``real``: ``BENCH/data_real``, real recordings.

Every benchmark reports both, side by side, with the do-nothing (``mixture``) and ideal-mask
(``irm_mag``, ``irm_pow``) baselines of each set's ``baselines.json`` (for timbre, the
``baselines`` section: do-nothing piano, other violins, wrong melody). A figure that improves on
one set and falls on the other is a regression. Evaluation only: nothing here trains or tunes.

``BENCH`` is ``$AUDIO_STUDIO_BENCH`` or ``../shared/bench`` next to the repository.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_root() -> Path:
    env = os.environ.get("AUDIO_STUDIO_BENCH")
    if env:
        return Path(env)
    here = ROOT.parent / "shared" / "bench"
    return here if here.is_dir() or not Path("/work/shared/bench").is_dir() else Path("/work/shared/bench")


BENCH = _bench_root()
SETS = {"rendered": BENCH / "data", "real": BENCH / "data_real"}
# figures a task's baselines.json gives, and the baselines shown for each (label, key)
SEPARATION_BASELINES = (("do nothing (mixture)", "mixture"), ("ideal mask IRM-mag", "irm_mag"),
                        ("ideal mask IRM-pow", "irm_pow"))
BASELINE_METRICS = {"query": ("si_sdr", "si_sdri", "sdr"),
                    "vocals": ("si_sdr", "si_sdri", "sdr", "sdri", "acc_sdr"),
                    "timbre": ("mrstft", "logmel_l1", "chroma_cos")}
TIMBRE_DO_NOTHING, TIMBRE_IDEAL = "do_nothing_piano", "other_soundfont_violin"


def set_label(name: str, root: Path | None = None) -> str:
    """``shared/bench/data_real`` style label of a set (what the registry and the tables show)."""
    root = Path(root or SETS[name])
    return f"shared/bench/{root.name}"


def add_set_arguments(parser: argparse.ArgumentParser, limit: bool = True) -> None:
    """``--sets`` (default both) and, if ``limit``, ``--limit N`` (first N cases of each set)."""
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS),
                        help="bench sets to run (default: both, rendered and real)")
    if limit:
        parser.add_argument("--limit", type=int, default=None,
                            help="only the first N cases of each set (quick check; baselines restricted to them)")


def task_dir(set_name: str, task: str, data: str | os.PathLike | None = None) -> Path:
    """The ``<set>/<task>`` folder; ``data`` overrides it (the scripts' old ``--data``)."""
    return Path(data) if data else SETS[set_name] / task


def list_cases(data_dir: Path, marker: str, limit: int | None = None) -> list[Path]:
    """Case folders of ``data_dir`` holding ``marker`` (e.g. ``mix.wav``), sorted, first ``limit``."""
    cases = sorted(d for d in Path(data_dir).iterdir() if (d / marker).is_file())
    if not cases:
        raise SystemExit(f"no cases with {marker} in {data_dir}")
    return cases[:limit] if limit else cases


def load_baselines(set_dir: str | os.PathLike, task: str, cases: list[str] | None = None) -> dict:
    """Baseline means of ``task`` from ``baselines.json`` of a set (``set_dir`` = the set root or its
    task folder): ``{"n", "mean": {baseline: {metric: v}}, "mean_by_kind": {kind: {baseline: ...}}}``.

    With ``cases`` (case folder names), the means are recomputed from ``per_case`` over those cases
    only, so that a ``--limit`` run is compared with the baselines of the same cases.
    """
    d = Path(set_dir)
    path = d / "baselines.json" if (d / "baselines.json").is_file() else d / task / "baselines.json"
    if not path.is_file():
        return {}
    b = json.loads(path.read_text())
    per = b.get("per_case", {})
    if cases is None or sorted(cases) == sorted(per):
        return {"n": b.get("n", len(per)), "mean": b.get("mean", {}), "mean_by_kind": b.get("mean_by_kind", {}),
                "descriptions": b.get("baselines", {})}
    rows = [per[c] for c in cases if c in per]

    def means(rs):
        out: dict = {}
        for name in sorted({k for r in rs for k, v in r.items() if isinstance(v, dict)}):
            ms = sorted({m for r in rs for m in r.get(name, {})})
            out[name] = {m: float(sum(r[name][m] for r in rs if m in r.get(name, {}))
                                  / max(1, sum(m in r.get(name, {}) for r in rs))) for m in ms}
        return out

    by_kind = {}
    for kind in sorted({r.get("kind") for r in rows if r.get("kind")}):
        rs = [r for r in rows if r.get("kind") == kind]
        by_kind[kind] = {**means(rs), "n": len(rs)}
    return {"n": len(rows), "mean": means(rows), "mean_by_kind": by_kind, "descriptions": b.get("baselines", {}),
            "restricted_to": list(cases)}


def scorer():
    """The bench scorer ``score.py`` as a module (its metric functions: ``si_sdr``, ``mrstft``, ...)."""
    spec = importlib.util.spec_from_file_location("bench_score", BENCH / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def score(task: str, data_dir: str | os.PathLike, pred_dir: str | os.PathLike, *, allow_missing: bool = False,
          table: bool = False) -> dict:
    """Run ``score.py <task>`` on ``pred_dir`` (its CLI, as a user would); returns the mean JSON line.

    ``table`` prints the scorer's per-case table. The summary is also written to ``pred_dir/scores.json``.
    """
    out = Path(pred_dir) / "scores.json"
    cmd = [sys.executable, str(BENCH / "score.py"), task, "--data", str(data_dir), "--pred", str(pred_dir),
           "--json", str(out)] + (["--allow-missing"] if allow_missing else []) + ([] if table else ["--quiet"])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"score.py {task} failed on {pred_dir}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    if table:
        print("\n".join(r.stdout.splitlines()[:-1]), flush=True)
    return json.loads(out.read_text())


def device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu`` (what the engines run on)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_rss_mb() -> float:
    """Peak resident memory (MB) of this process image: ``VmHWM`` where ``/proc`` has it.

    Not ``getrusage().ru_maxrss``: Linux carries the larger of the old and new image's peaks across ``exec``, so a
    child started by a big benchmark process (``subprocess`` uses vfork) reports its parent's peak (a 10-minute
    vocals run read 3.0 GB that way, 1.6-1.8 GB measured alone).
    """
    try:
        with open("/proc/self/status") as f:
            return round(int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1]) / 1024, 1)
    except (OSError, StopIteration, ValueError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------------------------------- report
def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"  # 4 significant digits: dB, rtf ~0.005, share ~0.9997


_SI_SDRI = re.compile(r"^(?:(?P<cfg>.+?) )?si_sdri(?: \[(?P<kind>[\w-]+)\])?$")


def baseline_rows(task: str, baselines: dict[str, dict]) -> list[tuple[str, dict[str, float | None]]]:
    """Rows ``(label, {set: value})`` of the baselines of every set (``—`` where a set lacks one)."""
    sets = list(baselines)
    rows: list[tuple[str, dict]] = []
    if task in ("query", "vocals"):
        for label, key in SEPARATION_BASELINES:
            for m in BASELINE_METRICS[task]:
                vals = {s: baselines[s].get("mean", {}).get(key, {}).get(m) for s in sets}
                if key == "mixture" and m in ("si_sdri", "sdri"):
                    continue  # 0 by definition
                if any(v is not None for v in vals.values()):
                    rows.append((f"{label}: {m}", vals))
        kinds = sorted({k for s in sets for k in baselines[s].get("mean_by_kind", {})})
        for kind in kinds:
            for label, key, m in (("do nothing (mixture)", "mixture", "si_sdr"), ("IRM-mag", "irm_mag", "si_sdri")):
                vals = {s: baselines[s].get("mean_by_kind", {}).get(kind, {}).get(key, {}).get(m) for s in sets}
                rows.append((f"{label}: {m} [{kind}]", vals))
    elif task == "timbre":
        names = []
        for s in sets:
            names += [n for n in baselines[s].get("mean", {}) if n not in names]
        for n in names:
            for m in BASELINE_METRICS[task]:
                rows.append((f"{n.replace('_', ' ')}: {m}", {s: baselines[s].get("mean", {}).get(n, {}).get(m)
                                                              for s in sets}))
    return rows


def share_rows(task: str, metrics: dict[str, dict], baselines: dict[str, dict]) -> list[tuple[str, dict]]:
    """The share of the ideal reached, per set.

    query / vocals: every ``[cfg ]si_sdri[ [kind]]`` figure divided by the IRM-mag SI-SDRi of the same
    set (and kind). timbre: every ``[cfg ]mrstft`` / ``logmel_l1`` figure as the share of the gap from
    the do-nothing piano to the other-soundfont violin that it closes (1 = as close as another violin).
    """
    sets = list(metrics)
    names = []
    for s in sets:
        names += [n for n in metrics[s] if n not in names]
    rows = []
    for n in names:
        vals: dict[str, float | None] = {}
        if task in ("query", "vocals"):
            m = _SI_SDRI.match(n)
            if not m:
                continue
            for s in sets:
                b = baselines.get(s, {})
                src = b.get("mean_by_kind", {}).get(m["kind"], {}) if m["kind"] else b.get("mean", {})
                ideal, v = src.get("irm_mag", {}).get("si_sdri"), metrics[s].get(n)
                vals[s] = v / ideal if v is not None and ideal else None
            rows.append((f"{n} / IRM-mag si_sdri", vals))
        elif task == "timbre":
            key = n.split(" ")[-1]
            if key not in ("mrstft", "logmel_l1") or n.startswith("recon"):
                continue
            for s in sets:
                mean = baselines.get(s, {}).get("mean", {})
                dn, ideal = mean.get(TIMBRE_DO_NOTHING, {}).get(key), mean.get(TIMBRE_IDEAL, {}).get(key)
                v = metrics[s].get(n)
                vals[s] = (dn - v) / (dn - ideal) if None not in (v, dn, ideal) and dn != ideal else None
            rows.append((f"{n}: share of the gap do-nothing -> other-soundfont violin closed", vals))
    return rows


def side_by_side(task: str, metrics: dict[str, dict], baselines: dict[str, dict] | None = None, *,
                 title: str | None = None, notes: dict[str, str] | None = None, echo: bool = True) -> str:
    """A Markdown table: one row per figure, one column per set, then the baselines of each set and
    the share of the ideal reached. ``metrics`` is ``{set: {figure: value}}``; ``baselines`` is
    ``{set: load_baselines(...)}`` (default: the whole sets' ``baselines.json``). Printed if ``echo``.
    """
    sets = list(metrics)
    if baselines is None:
        baselines = {s: load_baselines(SETS[s], task) for s in sets if s in SETS}
    names: list[str] = []
    for s in sets:
        names += [n for n in metrics[s] if n not in names]
    head = "| figure | " + " | ".join(sets) + " |"
    lines = [f"### {title or task} (device: {device()})", "", head, "|---|" + "---|" * len(sets)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(_fmt(metrics[s].get(n)) for s in sets) + " |")
    extra = share_rows(task, metrics, baselines) + baseline_rows(task, {s: baselines.get(s, {}) for s in sets})
    for label, vals in extra:
        lines.append(f"| *{label}* | " + " | ".join(_fmt(vals.get(s)) for s in sets) + " |")
    for s, note in (notes or {}).items():
        lines.append(f"\n{s}: {note}")
    text = "\n".join(lines) + "\n"
    if echo:
        print(text, flush=True)
    return text


def results_json(task: str, per_set: dict[str, dict], table: str, **meta) -> dict:
    """The run's results keyed by set (``{"rendered": {...}, "real": {...}}``) plus ``task``,
    ``device``, ``sets`` and the printed ``table``."""
    return {"task": task, "device": device(), "sets": list(per_set), **meta, **per_set, "table": table}


def write_json(path: str | os.PathLike, obj: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
    return path


def registry_set_scores(scores: dict, set_name: str, figures: dict) -> dict:
    """``scores`` with ``scores["bench"][set_name] = figures`` (other sets kept). An older string
    ``scores["bench"]`` (the rendered set's label) moves into ``figures["set"]`` of ``rendered``."""
    out = dict(scores)
    bench = out.get("bench")
    bench = dict(bench) if isinstance(bench, dict) else ({"rendered": {"set": bench}} if isinstance(bench, str) else {})
    bench[set_name] = figures
    out["bench"] = bench
    return out


def selected_sets(args, task: str) -> dict[str, Path]:
    """``{set name: task folder}`` for a script's ``--sets`` (and its old ``--data DIR``, which runs
    that one folder instead, named after the set it lies in, else after its parent folder)."""
    data = getattr(args, "data", None)
    if data:
        d = Path(data)
        parent = d.resolve().parent
        name = next((n for n, r in SETS.items() if r.resolve() == parent), parent.name or "custom")
        return {name: d}
    return {s: SETS[s] / task for s in args.sets}
