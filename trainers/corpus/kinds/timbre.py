"""``timbre/``: piano -> violin material for the timbre-transfer trainer (24 kHz, -20 dBFS RMS).

* ``timbre/pairs/pair_NNNNN/piano.wav``, ``violin.wav``, ``melody.json``: one monophonic melody
  (fiddle tunes, folk songs, chorale soprano lines, quartet first-violin lines), moved by octaves
  into the violin range (G3-E7), rendered with GM program 0 and GM program 40 from the same note
  list (identical onsets); ``melody.json`` = ``{"notes": [{"onset", "offset", "pitch",
  "velocity"}], ...}`` (seconds, MIDI).
* ``timbre/piano/solo_NNNNN.wav`` and ``timbre/violin/solo_NNNNN.wav`` (+ a ``.json`` with the
  notes): unpaired solos of *other* melodies (every 4th item).

Velocity, tempo, articulation, reverb send and room size are randomised per item; ``--timbre-slow SHARE``
plays that share of the melodies at a felt beat of 24-48 bpm (notes held for seconds: a bowed sustain, a long
piano decay), the other items as without it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import audio as A
from .. import music as M
from ..scores import excerpt, full_measure_indices, melody_part_index, skyline
from ..synth import Note, Track, render
from ...data import TimbreRow
from .. import effects as E
from .. import provenance as P
from .base import Context, ItemFolder, Kind, item_rng, item_split, random_synth_settings, write_json

log = logging.getLogger(__name__)

TIMBRE_POOLS = {"fiddle": 0.35, "folk": 0.33, "chorale": 0.17, "quartet": 0.1, "madrigal": 0.05}
VIOLIN_RANGE = (55, 100)  # G3 .. E7
TARGET_DB = -20.0


#: felt-beat tempo ranges (bpm): the usual, and a slow melody's (``--timbre-slow``: notes held for seconds)
TEMPO = (60, 126)
SLOW_TEMPO = (24, 48)


def draw_melody(ctx: Context, rng: np.random.Generator, seconds: float,
                slow: bool = False) -> tuple[list[Note], dict]:
    """A monophonic melody of about ``seconds`` in the violin range, as notes in seconds (``slow``: at
    :data:`SLOW_TEMPO`; the same random draws either way)."""
    for _ in range(10):
        ref, piece = ctx.library.draw(rng, TIMBRE_POOLS)
        fulls = full_measure_indices(piece) or [0]
        start = fulls[int(rng.integers(max(1, int(len(fulls) * 0.7))))]
        m0 = piece["measures"][start]
        meter = M.meter_of(m0[2], m0[3])
        bpm, qpm = M.draw_tempo(rng, meter, *(SLOW_TEMPO if slow else TEMPO))
        exc = excerpt(piece, start, seconds * qpm / 60.0)
        parts = exc["parts"]
        mi = 0 if piece.get("pool") == "quartet" else melody_part_index({"parts": parts})
        line = skyline(parts[mi]["notes"])
        if len(line) < 4:
            continue
        pitches = [n[2] for n in line]
        shift = M.fit_octave(pitches, VIOLIN_RANGE[0], 93)
        if rng.random() < 0.4:  # a small key change for variety, staying in range
            k = int(rng.integers(-2, 3))
            if min(pitches) + shift + k >= VIOLIN_RANGE[0] and max(pitches) + shift + k <= VIOLIN_RANGE[1]:
                shift += k
        spq = 60.0 / qpm
        legato = float(rng.uniform(0.85, 0.99))
        base = int(rng.integers(55, 112))
        notes = []
        for n in line:
            t = n[0] * spq
            if t >= seconds:
                break
            d = min(n[1] * spq * legato, seconds - t)
            vel = int(np.clip(base + rng.integers(-10, 11), 25, 127))
            notes.append(Note(round(t, 4), round(max(0.05, d), 4), int(n[2] + shift), vel))
        info = {"source": ref.key, "pool": piece.get("pool"), "title": piece.get("title", ""),
                "tempo_qpm": qpm, "tempo_bpm": bpm, "time_signature": f"{meter.num}/{meter.den}",
                "transpose": shift, "legato": round(legato, 3), "key": piece.get("key"), **({"slow": True} if slow else {})}
        return notes, info
    raise RuntimeError("no usable melody found")


def melody_json(notes: list[Note]) -> list[dict]:
    """``[{"onset", "offset", "pitch", "velocity"}]`` of a note list."""
    return [{"onset": round(n.start, 4), "offset": round(n.start + n.dur, 4), "pitch": int(n.pitch),
             "velocity": int(n.vel)} for n in notes]


class Timbre(Kind):
    """Paired and unpaired piano/violin renders."""

    name = "timbre"
    sr = 24000
    bytes_per_second = 2 * 48000
    cost_per_second = 0.095

    def plan(self, seed: int, index: int) -> dict:
        rng = item_rng(seed, self.name, index, 0)
        seconds = round(float(rng.uniform(6.0, 14.0)), 3)
        if index % 4 == 3:
            return {"seconds": seconds, "type": "solo", "instrument": "piano" if (index // 4) % 2 == 0 else "violin"}
        return {"seconds": seconds, "type": "pair"}

    def rel_path(self, index: int, plan: dict) -> str:
        if plan["type"] == "pair":
            return f"pairs/pair_{index:05d}"
        return f"{plan['instrument']}/solo_{index:05d}.wav"

    def _render_one(self, ctx: Context, program: int, notes: list[Note], seconds: float, reverb: int,
                    settings) -> np.ndarray:
        tr = Track(program=program, notes=notes, reverb=reverb, chorus=0, volume=110, name="melody")
        y = render([tr], seconds, self.sr, _soundfont(ctx, program), settings)
        return A.normalize_rms(y, TARGET_DB, peak_limit=0.99)

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        rng = item_rng(ctx.seed, self.name, index, 1)
        slow = ctx.timbre_slow > 0 and item_rng(ctx.seed, self.name, index, 3).random() < ctx.timbre_slow
        notes, info = draw_melody(ctx, rng, plan["seconds"], slow)
        seconds = round(max(n.start + n.dur for n in notes) + 0.6, 3)
        reverb = int(rng.integers(0, 70))
        settings = random_synth_settings(rng)
        rel = self.rel_path(index, plan)
        meta = {"id": rel, "sr": self.sr, "seconds": seconds, "rms_dbfs": TARGET_DB, "reverb_send": reverb,
                "room_size": round(settings.room_size, 3), **info, "notes": melody_json(notes)}
        # the production chain: one chain (a room, a microphone, a codec) for both instruments of a
        # pair, so the pair stays the same performance in the same place; then back to TARGET_DB
        chain = E.draw_chain(item_rng(ctx.seed, self.name, index, 2), "instrument", self.sr, strength=ctx.effects)
        stems = ("piano", "violin") if plan["type"] == "pair" else (plan["instrument"],)
        effects = [{"stem": s, **e} for s in stems for e in chain]

        meta["effects"] = effects

        def produced(y):
            return A.normalize_rms(E.apply_chain(y, self.sr, chain), TARGET_DB, peak_limit=0.99) if chain else y

        if plan["type"] == "pair":
            piano = produced(self._render_one(ctx, PROGRAMS["piano"], notes, seconds, reverb, settings))
            violin = produced(self._render_one(ctx, PROGRAMS["violin"], notes, seconds, reverb, settings))
            with ItemFolder(ctx.root / self.name / rel) as tmp:
                A.write_pcm16(tmp / "piano.wav", piano, self.sr)
                A.write_pcm16(tmp / "violin.wav", violin, self.sr)
                fonts_of = {"soundfonts": {k: Path(_soundfont(ctx, p)).name for k, p in PROGRAMS.items()}} \
                    if ctx.piano_soundfont else {}
                write_json(tmp / "melody.json", {**meta, "programs": dict(PROGRAMS), **fonts_of})
        else:
            prog = PROGRAMS[plan["instrument"]]
            y = produced(self._render_one(ctx, prog, notes, seconds, reverb, settings))
            path = ctx.root / self.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path.with_suffix(".json"), {**meta, "program": prog})
            A.write_pcm16(path, y, self.sr)
        fonts = dict.fromkeys(_soundfont(ctx, PROGRAMS[s]) for s in stems)
        return TimbreRow(id=rel.split("/")[-1].removesuffix(".wav"), index=index, path=rel, sr=self.sr,
                         seconds=seconds, sources=[*(P.soundfont(f) for f in fonts), P.score(info["source"])],
                         effects=effects,
                         type=plan["type"], instrument=plan.get("instrument", "pair"), split=item_split(index),
                         info={"source": info["source"], "n_notes": len(notes),
                               "pitch_range": [min(n.pitch for n in notes), max(n.pitch for n in notes)]}).to_json()


#: the GM program of each instrument
PROGRAMS = {"piano": 0, "violin": 40}


def _soundfont(ctx: Context, program: int) -> str:
    """The soundfont a program is rendered with: ``ctx.piano_soundfont`` for the piano when set."""
    return ctx.piano_soundfont if program == PROGRAMS["piano"] and ctx.piano_soundfont else ctx.soundfont
