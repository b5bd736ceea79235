"""``fusion/``: pairs of multi-instrument excerpts with clear drum beats (24 kHz).

``fusion/pairs/pair_NNNNN/a.wav``, ``b.wav`` (15-30 s each, from two different scores, each starting
on a downbeat) and ``meta.json`` = ``{"a": {...}, "b": {...}}`` with ``tempo_bpm`` (felt beat),
``beat_unit``, ``tempo_qpm``, ``time_signature``, ``key`` (music21 key analysis, Aarden-Essen profiles, of
the excerpt's notes), ``instruments``, ``beats`` and ``downbeats`` (seconds) and the score source.

With probability ``REAL_BED_P`` x ``ctx.real`` per side, a song is instead an excerpt of a real
music bed (an installed soundtrack of the item's split, :func:`trainers.corpus.sources.real_music_bed`).
Its side of ``meta.json`` then says ``"real": true, "estimated": true``: tempo and beats come from
``librosa.beat.beat_track``, the downbeats from the beat phase (3 or 4 beats a bar) with the strongest
low-band (< 250 Hz) onsets, the key from the fusion engine's chroma key estimator
(:func:`engines.fusion.align.estimate_key`); the excerpt is cut to start on its first estimated downbeat.
The row's ``sources`` list the files read with their package and licence (``real: true``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import audio as A
from ...data import FusionRow
from .. import effects as E
from .. import provenance as P
from ..arrange import arrange, melody_track, notes_json
from ..music import beat_times
from ..scores import analyze_key
from ..sources import real_music_bed, want_real
from ..synth import render
from .base import Context, ItemFolder, Kind, item_rng, item_split, random_synth_settings, write_json

log = logging.getLogger(__name__)

FUSION_POOLS = {"chorale": 0.2, "quartet": 0.2, "fiddle": 0.2, "folk": 0.15, "keys": 0.13, "madrigal": 0.12}
#: chance (times ``ctx.real``) that one song of a pair is an excerpt of a real music bed, drawn per side
REAL_BED_P = 0.25
#: extra seconds read past a real excerpt, so it can start on its first estimated downbeat
LEAD_S = 2.5


def estimate_rhythm(y: np.ndarray, sr: int) -> dict:
    """Estimated ``tempo_bpm``, ``beats``, ``downbeats`` (s) and ``beats_per_bar`` of a recording.

    Beats and tempo from ``librosa.beat.beat_track``; the bar phase (3 or 4 beats, 3 only when
    clearly stronger) is the one whose beats carry the strongest low-band (< 250 Hz) onsets.
    """
    import librosa

    y = np.ascontiguousarray(y, dtype=np.float32)
    hop = 512
    tempo, frames = librosa.beat.beat_track(y=y, sr=sr, hop_length=hop, units="frames")
    tempo = float(np.atleast_1d(tempo)[0])
    frames = np.asarray(frames, dtype=int)
    beats = librosa.frames_to_time(frames, sr=sr, hop_length=hop)
    low = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_mels=16, fmax=250.0)
    strength = low[np.clip(frames, 0, len(low) - 1)] if len(low) else np.zeros(len(frames))

    def phase_score(bpb: int) -> tuple[int, float]:
        sc = [float(strength[p::bpb].mean()) for p in range(min(bpb, len(frames)))] or [0.0]
        return int(np.argmax(sc)), max(sc) / (float(strength.mean()) + 1e-9) if len(strength) else 0.0

    (p3, s3), (p4, s4) = phase_score(3), phase_score(4)
    bpb, phase = (3, p3) if s3 > 1.1 * s4 else (4, p4)
    return {"tempo_bpm": round(tempo, 3), "beats": [round(float(t), 4) for t in beats],
            "downbeats": [round(float(t), 4) for t in beats[phase::bpb]], "beats_per_bar": bpb}


def real_excerpt(ctx: Context, rng: np.random.Generator, bed, k: int, seconds: float,
                 sr: int) -> tuple[np.ndarray, dict] | None:
    """Excerpt ``k`` of a real music bed, exactly ``seconds`` long from its first estimated downbeat
    (within the first ``LEAD_S`` s), at the level of a rendered excerpt, with estimated meta; None
    when the bed gave no audible audio (the caller renders that side instead)."""
    from engines.fusion.align import estimate_key

    n = int(round(seconds * sr))
    bed.last = ("", 0.0)
    y = bed.excerpt(k, seconds + LEAD_S, ctx)
    if not bed.last[0] or A.rms_db(y) < -50:
        return None
    r = estimate_rhythm(y, sr)
    start = next((d for d in r["downbeats"] if d < LEAD_S), 0.0)
    a = int(round(start * sr))
    y = A.fade(A.fit_length(y[a:a + n], n), sr, 0.01, 0.1)
    y = A.normalize_rms(y, float(rng.uniform(-22, -16)), peak_limit=0.95)
    shift = lambda ts: [round(t - start, 4) for t in ts if 0.0 <= t - start < seconds]  # noqa: E731
    key = estimate_key(y, sr)
    path, offset = bed.last  # this excerpt's file (a bed may serve both sides)
    info = {"type": "real-music", "real_source": bed.reg.id, "split": bed.reg.split,
            "files": [path] if path else [], "offset_s": offset}
    meta = {"real": True, "estimated": True, "estimator": "librosa.beat.beat_track + engines.fusion.align.estimate_key",
            "source": f"real:{bed.reg.id}:{Path(path).name}",
            "tempo_bpm": r["tempo_bpm"], "beat_unit": "beat", "tempo_qpm": r["tempo_bpm"],
            "time_signature": f"{r['beats_per_bar']}/4", "key": key.to_dict(), "seconds": seconds,
            "beats": shift(r["beats"]), "downbeats": shift(r["downbeats"]), "start_s_in_excerpt": round(start, 4),
            "real_bed": info}
    return y, meta


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
        split = item_split(index)
        # real beds on their own stream (stream 3): two draws always made, whatever is installed
        rr = item_rng(ctx.seed, self.name, index, 3)
        beds = [real_music_bed(self.sr, rr, split) if want_real(rr, REAL_BED_P, ctx) else None for _ in "ab"]
        sides, sources = {}, []
        for side, bed in zip("ab", beds):
            got = None
            if bed is not None:  # a second side from the same soundtrack takes its next track
                k = int(side == "b" and beds[0] is not None and beds[0].reg.id == bed.reg.id)
                got = real_excerpt(ctx, rr, bed if not k else beds[0], k, plan[side], self.sr)
            if got is not None:
                sides[side] = got
            else:
                done = {m["source"] for _, m in sides.values()}
                sides[side] = render_excerpt(ctx, rng, plan[side], self.sr, exclude=done)
        (ya, ma), (yb, mb) = sides["a"], sides["b"]
        if not (ma.get("real") and mb.get("real")):
            sources.append(P.soundfont(ctx.soundfont))
        for m in (ma, mb):
            sources += P.of_info(m["real_bed"], ctx.soundfont) if m.get("real") else [P.score(m["source"])]
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
                         sources=sources, effects=effects, split=split,
                         a=self._side(ma), b=self._side(mb)).to_json()

    @staticmethod
    def _side(m: dict) -> dict:
        """The manifest's summary of one song (``real``/``estimated`` only on real beds)."""
        out = {k: m[k] for k in ("source", "tempo_bpm", "tempo_qpm", "time_signature", "seconds")} | {"key": m["key"]["name"]}
        return out | ({"real": True, "estimated": True} if m.get("real") else {})

    def is_complete(self, kind_dir, row) -> bool:
        d = kind_dir / row["path"]
        return all((d / f).is_file() for f in ("a.wav", "b.wav", "meta.json"))
