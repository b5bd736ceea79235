"""``fusion/``: pairs of multi-instrument excerpts with clear drum beats (24 kHz).

``fusion/pairs/pair_NNNNN/a.wav``, ``b.wav`` (15-30 s each, from two different scores, each starting
on a downbeat) and ``meta.json`` = ``{"a": {...}, "b": {...}}`` with ``tempo_bpm`` (felt beat),
``beat_unit``, ``tempo_qpm``, ``time_signature``, ``key`` (music21 key analysis, Aarden-Essen profiles, of
the excerpt's notes), ``instruments``, ``beats`` and ``downbeats`` (seconds) and the score source.
"""
from __future__ import annotations

import logging

import numpy as np

from .. import audio as A
from ...data import FusionRow
from .. import effects as E
from .. import provenance as P
from ..arrange import arrange, melody_track, notes_json
from ..music import beat_times
from ..scores import analyze_key
from ..synth import render
from .base import Context, ItemFolder, Kind, item_rng, random_synth_settings, write_json

log = logging.getLogger(__name__)

FUSION_POOLS = {"chorale": 0.2, "quartet": 0.2, "fiddle": 0.2, "folk": 0.15, "keys": 0.13, "madrigal": 0.12}


def render_excerpt(ctx: Context, rng: np.random.Generator, seconds: float, sr: int,
                   exclude: set[str] = frozenset()) -> tuple[np.ndarray, dict]:
    """One multi-instrument excerpt with drums, exactly ``seconds`` long, starting on a downbeat."""
    for _ in range(8):
        ref, piece = ctx.library.draw(rng, FUSION_POOLS)
        if ref.key not in exclude:
            break
    arr = arrange(piece, rng, seconds, ctx.presets, bpm_range=(80, 140), drums_p=1.0)
    lead = melody_track(arr, rng, ctx.presets)
    tracks = arr.all_tracks() + ([lead] if lead is not None else [])
    y = render(tracks, seconds, sr, ctx.soundfont, random_synth_settings(rng))
    y = A.normalize_rms(y, float(rng.uniform(-22, -16)), peak_limit=0.95)
    spq = arr.spq
    key_notes = [(n.start / spq, n.dur / spq, n.pitch) for tr in tracks if not tr.drums for n in tr.notes
                 if n.start < seconds]
    beats, downs = beat_times(arr.measures, arr.qpm)
    meta = arr.meta()
    meta.update({"key": analyze_key(key_notes), "key_of_score": meta["key"], "seconds": seconds,
                 "beats": [b for b in beats if b < seconds], "downbeats": [d for d in downs if d < seconds],
                 "notes": notes_json([t for t in tracks])})
    return y, meta


class Fusion(Kind):
    """A/B pairs for the song-fusion cascade."""

    name = "fusion"
    sr = 24000
    bytes_per_second = 48000
    cost_per_second = 0.055

    def plan(self, seed: int, index: int) -> dict:
        rng = item_rng(seed, self.name, index, 0)
        a = round(float(rng.uniform(15.0, 30.0)), 3)
        b = round(float(rng.uniform(15.0, 30.0)), 3)
        return {"seconds": a + b, "a": a, "b": b}

    def rel_path(self, index: int, plan: dict) -> str:
        return f"pairs/pair_{index:05d}"

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        rng = item_rng(ctx.seed, self.name, index, 1)
        ya, ma = render_excerpt(ctx, rng, plan["a"], self.sr)
        yb, mb = render_excerpt(ctx, rng, plan["b"], self.sr, exclude={ma["source"]})
        # the production chain: each song its own (two recordings from two places), level kept
        dry = {"a": ya, "b": yb}
        wet, effects = E.process_stems(dry, {"a": "other", "b": "other"}, self.sr,
                                       item_rng(ctx.seed, self.name, index, 2), strength=ctx.effects)
        for side in {e["stem"] for e in effects}:
            y = (wet[side] * (A.rms(dry[side]) / max(A.rms(wet[side]), 1e-9))).astype(np.float32)
            wet[side] = y if A.peak(y) <= 0.99 else (y * (0.99 / A.peak(y))).astype(np.float32)
        ya, yb = wet["a"], wet["b"]
        rel = self.rel_path(index, plan)
        with ItemFolder(ctx.root / self.name / rel) as tmp:
            A.write_pcm16(tmp / "a.wav", ya, self.sr)
            A.write_pcm16(tmp / "b.wav", yb, self.sr)
            write_json(tmp / "meta.json", {"id": rel, "sr": self.sr, "a": ma, "b": mb, "effects": effects})
        return FusionRow(id=rel.split("/")[-1], index=index, path=rel, sr=self.sr,
                         seconds=round(plan["a"] + plan["b"], 3),
                         sources=[P.soundfont(ctx.soundfont), P.score(ma["source"]), P.score(mb["source"])], effects=effects,
                         a={k: ma[k] for k in ("source", "tempo_bpm", "tempo_qpm", "time_signature", "seconds")}
                         | {"key": ma["key"]["name"]},
                         b={k: mb[k] for k in ("source", "tempo_bpm", "tempo_qpm", "time_signature", "seconds")}
                         | {"key": mb["key"]["name"]}).to_json()

    def is_complete(self, kind_dir, row) -> bool:
        d = kind_dir / row["path"]
        return all((d / f).is_file() for f in ("a.wav", "b.wav", "meta.json"))
