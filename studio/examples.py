"""The engine tabs' examples (``gr.Examples``): short clips in ``assets/examples/`` that the project renders
itself with its corpus code (``launch.py corpus``) from licence-clean material only: scores bundled with music21
(public-domain works) played through the FluidR3 General MIDI soundfont (MIT) and the corpus code's own synthetic
sounds (MIT), with ``--no-real`` (no recorded sound) and only items whose every source carries one of those
licences (:data:`CLEAN`; no synthesised voice, whose engines are GPL).

Re-render them (a few seconds of corpus, then cut and written as 16-bit FLAC)::

    python launch.py corpus --out /tmp/excorp --kinds query songs fusion timbre --minutes 0.7 \\
        --kind-minutes query=4 --seed 19 --workers 1 --no-progress --no-real
    python -m studio.examples --corpus /tmp/excorp

``assets/examples/sources.json`` records, per clip, the corpus item, its seed and every source with its licence
(copied from the corpus manifest); ``assets/examples/README.md`` says the same for people.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "assets" / "examples"

#: licences an example's sources may carry (the corpus manifest's ``sources[].licence``)
CLEAN = ("MIT", "BSD-3-Clause")

#: clip -> (corpus kind, item id, file in the item, start s, seconds, rate)
CLIPS = {
    "separate/birds_mixture.flac": ("query", "q_00023", "mix.wav", 0.0, 10.0, 16000),
    "separate/birds_query.flac": ("query", "q_00023", "query.wav", 0.0, 3.0, 16000),
    "separate/birds_ground_truth.flac": ("query", "q_00023", "target.wav", 0.0, 10.0, 16000),
    "separate/choir_mixture.flac": ("query", "q_00013", "mix.wav", 0.0, 10.0, 16000),
    "separate/choir_query.flac": ("query", "q_00013", "query.wav", 0.0, 3.0, 16000),
    "separate/choir_ground_truth.flac": ("query", "q_00013", "target.wav", 0.0, 10.0, 16000),
    "vocals/song.flac": ("songs", "song_00001", "mixture.wav", 4.0, 12.0, 22050),
    "fuse/song_a.flac": ("fusion", "pair_00000", "a.wav", 0.0, 10.0, 22050),
    "fuse/song_b.flac": ("fusion", "pair_00000", "b.wav", 0.0, 10.0, 22050),
    "timbre/piano.flac": ("timbre", "solo_00003", "", 0.0, 7.5, 22050),
    "timbre/violin_style.flac": ("timbre", "pair_00001", "violin.wav", 0.0, 3.0, 22050),
}


def path(name: str) -> str:
    """The absolute path of example clip ``name`` (``"separate/mixture.flac"``)."""
    return str(EXAMPLES_DIR / name)


def available(*names: str) -> bool:
    return all((EXAMPLES_DIR / n).is_file() for n in names)


def rows(tab: str) -> list[list]:
    """``gr.Examples`` rows of ``tab`` (its input components' values, in the order the tab lists them);
    empty when the clips are not in the checkout."""
    table = {
        "separate": [["separate/birds_mixture.flac", "separate/birds_query.flac", "separate/birds_ground_truth.flac"],
                     ["separate/choir_mixture.flac", "separate/choir_query.flac", "separate/choir_ground_truth.flac"]],
        "vocals": [[["vocals/song.flac"]]],
        "fuse": [["fuse/song_a.flac", "fuse/song_b.flac"]],
        "timbre": [["timbre/piano.flac", None], ["timbre/piano.flac", "timbre/violin_style.flac"]],
    }
    out = []
    for row in table.get(tab, []):
        names = [n for v in row for n in (v if isinstance(v, list) else [v]) if n]
        if not available(*names):
            continue
        out.append([[path(n) for n in v] if isinstance(v, list) else (path(v) if v else None) for v in row])
    return out


def attach(tab: str, inputs: list, run_fn, run_inputs: list, outputs: list, label: str | None = None):
    """``gr.Examples`` for ``tab``: one click fills ``inputs`` and then runs ``run_fn(*run_inputs)`` into
    ``outputs`` (the tab's own Run event, with every option as it is on the page). Nothing without clips."""
    import gradio as gr

    examples = rows(tab)
    if not examples:
        return None
    ex = gr.Examples(examples, inputs=inputs, label=label or "Examples: click one to load it and run",
                     cache_examples=False, examples_per_page=4, elem_id=f"{tab}-examples")
    ex.load_input_event.then(run_fn, run_inputs, outputs, api_visibility="private")
    return ex


# -------------------------------------------------------------------------------------- rendering
def _manifest(corpus: Path, kind: str) -> dict[str, dict]:
    with open(corpus / kind / "manifest.jsonl") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def _clean(row: dict) -> bool:
    srcs = row.get("sources") or []
    return bool(srcs) and all(not s.get("real") and any(str(s.get("licence", "")).startswith(c) for c in CLEAN)
                              for s in srcs)


def render(corpus: str | Path, out: str | Path = EXAMPLES_DIR, seed: int | None = None) -> dict:
    """Cut :data:`CLIPS` from a rendered corpus into ``out`` (16-bit FLAC, mono) and write ``sources.json``.
    Refuses an item whose sources are not all licence-clean (:data:`CLEAN`, no recording)."""
    from engines.audio import io
    from engines.base import convert

    corpus, out = Path(corpus), Path(out)
    manifests: dict[str, dict] = {}
    record = {}
    for name, (kind, item, file, start, seconds, rate) in CLIPS.items():
        rows_ = manifests.setdefault(kind, _manifest(corpus, kind))
        row = rows_[item]
        if not _clean(row):
            raise ValueError(f"{kind}/{item} has a source that is not licence-clean: {row.get('sources')}")
        src = corpus / kind / row["path"] / file if file else corpus / kind / row["path"]
        audio, sr = io.load(src, mono=True)
        a = int(start * sr)
        clip = convert(audio[:, a:a + int(seconds * sr)], sr, rate, 1)
        dest = out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        io.save(dest, clip, rate, "PCM_16")
        record[name] = {"corpus_kind": kind, "item": item, "file": file or Path(row["path"]).name,
                        "start_s": start, "seconds": round(clip.shape[-1] / rate, 3), "sample_rate": rate,
                        "seed": seed, "sources": row.get("sources")}
    (out / "sources.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.examples", description="cut the studio's example clips "
                                "from a corpus rendered with --no-real (see this module's docstring)")
    p.add_argument("--corpus", required=True, help="a folder written by `launch.py corpus`")
    p.add_argument("--out", default=str(EXAMPLES_DIR))
    p.add_argument("--seed", type=int, default=19, help="the corpus seed (recorded in sources.json)")
    args = p.parse_args(argv)
    rec = render(args.corpus, args.out, args.seed)
    total = sum((Path(args.out) / n).stat().st_size for n in rec)
    print(f"wrote {len(rec)} clips ({total / 2**20:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
