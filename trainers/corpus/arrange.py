"""Turn a parsed score excerpt into a randomised General-MIDI arrangement.

Used by the songs, fusion and query kinds: the melody (top line) is kept apart so that the caller
decides who performs it (a voice, an instrument, nobody); the other parts go to keys / strings /
organ / guitar / winds / brass programs, the lowest part to a bass program, and a drum pattern that
follows the meter is added on request. Single-line tunes (folk songs, fiddle tunes) get a
generated harmony (diatonic triads that fit the melody) and bass line.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from . import music as M
from .scores import excerpt, full_measure_indices, melody_part_index, skyline
from .synth import Track

log = logging.getLogger(__name__)

PITCH_NAMES = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B"]

ACCOMP_FAMILIES = ["piano", "keys", "strings", "string_pad", "organ", "guitar", "winds", "brass"]
LEAD_FAMILIES = ["strings", "winds", "brass", "keys", "guitar", "lead", "organ", "piano"]
LEGATO = {"piano": 0.95, "keys": 0.92, "strings": 0.98, "string_pad": 1.0, "organ": 0.98,
          "guitar": 0.9, "winds": 0.96, "brass": 0.95, "lead": 0.95, "bass": 0.9, "voice": 0.98,
          "pad": 1.0}


def family_of(program: int) -> str:
    """The family of a GM program (first match in :data:`music.FAMILIES`)."""
    for fam in ("piano", "organ", "guitar", "bass", "strings", "voice", "brass", "winds", "lead", "pad", "chromatic"):
        if program in M.FAMILIES[fam]:
            return fam
    return "other"


def pick_program(rng: np.random.Generator, families: list[str], presets: frozenset | None,
                 avoid: set[int] | frozenset = frozenset()) -> tuple[int, str]:
    """A random program from random ``families``, skipping ``avoid`` and programs the soundfont lacks."""
    for _ in range(30):
        fam = M.choose(rng, families)
        prog = M.choose(rng, M.FAMILIES[fam])
        if prog in avoid:
            continue
        if presets is not None and (0, prog) not in presets:
            continue
        return prog, fam
    return 0, "piano"


@dataclass
class Arrangement:
    """A rendered-to-be excerpt: tracks per stem plus everything the metadata needs."""

    source: str
    title: str
    pool: str
    meter: M.Meter
    bpm: float
    qpm: float
    transpose: int
    key: dict
    measures: list[list]            # quarter lengths, relative to the excerpt start
    length_s: float                 # whole measures, without reverb tail
    melody_q: list[list]            # transposed melody, quarter lengths
    stems: dict[str, list[Track]] = field(default_factory=dict)
    instruments: list[dict] = field(default_factory=list)
    drums: dict | None = None
    lead_families: list[str] = field(default_factory=lambda: list(LEAD_FAMILIES))

    @property
    def spq(self) -> float:
        """Seconds per quarter note."""
        return 60.0 / self.qpm

    def melody_seconds(self, t0: float = 0.0) -> list[tuple[float, float, int, str | None]]:
        """Melody as ``(start_s, dur_s, pitch, lyric)``."""
        return [(t0 + n[0] * self.spq, n[1] * self.spq, int(n[2]), n[3]) for n in self.melody_q]

    def all_tracks(self, stems: list[str] | None = None) -> list[Track]:
        """Tracks of the given stems (all by default)."""
        out: list[Track] = []
        for name, trs in self.stems.items():
            if stems is None or name in stems:
                out.extend(trs)
        return out

    def meta(self) -> dict:
        """Metadata shared by every kind."""
        return {
            "source": self.source, "title": self.title, "pool": self.pool,
            "time_signature": f"{self.meter.num}/{self.meter.den}", "beat_unit": self.meter.beat_unit,
            "tempo_bpm": self.bpm, "tempo_qpm": self.qpm, "transpose": self.transpose,
            "key": self.key, "instruments": self.instruments, "drums": self.drums,
        }


def transpose_key(key: dict, semitones: int) -> dict:
    """The key dictionary moved by ``semitones``."""
    pc = (int(key.get("tonic_pc", 0)) + semitones) % 12
    mode = key.get("mode", "major")
    return {"tonic": PITCH_NAMES[pc], "mode": mode, "tonic_pc": pc, "name": f"{PITCH_NAMES[pc]} {mode}"}


def arrange(piece: dict, rng: np.random.Generator, seconds: float, presets: frozenset | None,
            bpm_range: tuple[float, float] = (72, 132), drums_p: float = 0.75,
            avoid_programs: set[int] | frozenset = frozenset(), transpose_range: int = 4,
            accomp_families: list[str] | None = None, lead_families: list[str] | None = None,
            bass_p: float = 0.8, kits: list[int] | None = None) -> Arrangement:
    """Arrange an excerpt of at least ``seconds`` (whole measures) of ``piece``."""
    fulls = full_measure_indices(piece) or [0]
    limit = max(1, int(len(fulls) * 0.7))
    start = fulls[int(rng.integers(limit))]
    m0 = piece["measures"][start]
    meter = M.meter_of(m0[2], m0[3])
    bpm, qpm = M.draw_tempo(rng, meter, *bpm_range)
    exc = excerpt(piece, start, seconds * qpm / 60.0)
    T = int(rng.integers(-transpose_range, transpose_range + 1)) if transpose_range else 0
    key = transpose_key(piece["key"], T)
    measures = exc["measures"]
    parts = [p["notes"] for p in exc["parts"]]
    mi = melody_part_index({"parts": exc["parts"]}) if len(parts) > 1 else 0
    melody = skyline(parts[mi])
    mel_set = {(n[0], n[2]) for n in melody}
    rest_of_melody_part = [n for n in parts[mi] if (n[0], n[2]) not in mel_set]
    others = [p for i, p in enumerate(parts) if i != mi and p]
    if rest_of_melody_part:
        others.insert(0, rest_of_melody_part)

    accomp_families = accomp_families or ACCOMP_FAMILIES
    lead_families = lead_families or LEAD_FAMILIES
    arr = Arrangement(piece["source"], piece.get("title", ""), piece.get("pool", ""), meter, bpm, qpm, T,
                      key, measures, exc["length"] * 60.0 / qpm,
                      [[n[0], n[1], n[2] + T, n[3]] for n in melody])
    stems: dict[str, list[Track]] = {"other": [], "bass": [], "drums": []}
    used_channels = 0

    def add(stem: str, qnotes: list[list], program: int, fam: str, role: str, name: str) -> None:
        nonlocal used_channels
        if not qnotes or used_channels >= 14:
            return
        lo, hi = M.program_range(program)
        shift = M.fit_octave([n[2] + T for n in qnotes], lo, hi) + T
        notes = M.to_notes(qnotes, qpm, int(rng.integers(60, 105)), rng, shift,
                           LEGATO.get(fam, 0.95), measures=measures)
        tr = Track(program=program, notes=notes, volume=int(rng.integers(80, 115)),
                   pan=int(np.clip(64 + rng.normal(0, 22), 5, 122)), reverb=int(rng.integers(15, 75)),
                   chorus=int(rng.integers(0, 40)), name=name[:30])
        stems[stem].append(tr)
        used_channels += 1
        arr.instruments.append({"stem": stem, "role": role, "program": program, "family": fam,
                                "name": M.gm_name(program), "part": name, "transpose": shift})

    if not others:
        # single-line tune: generated harmony + bass
        spans = M.harmonize(melody, measures, piece["key"], rng)
        style = M.choose(rng, ["block", "arpeggio", "oompah", "strum"])
        prog, fam = pick_program(rng, accomp_families, presets, avoid_programs)
        if fam == "guitar" and style == "block":
            style = "strum"
        add("other", M.accompaniment_notes(spans, measures, style, rng), prog, fam, f"chords-{style}", "harmony")
        if rng.random() < 0.35:
            prog2, fam2 = pick_program(rng, ["string_pad", "organ", "pad"], presets, avoid_programs | {prog})
            add("other", M.accompaniment_notes(spans, measures, "block", rng), prog2, fam2, "pad", "pad")
        if rng.random() < bass_p:
            bprog, _ = pick_program(rng, ["bass"], presets, avoid_programs)
            add("bass", M.bass_notes(spans, measures, rng, walking=rng.random() < 0.3), bprog, "bass", "bass", "bass")
    else:
        medians = [float(np.median([n[2] for n in p])) for p in others]
        bass_idx = int(np.argmin(medians)) if (len(others) >= 2 or medians[0] < 55) else -1
        shared = rng.random() < 0.35
        shared_prog = pick_program(rng, accomp_families, presets, avoid_programs)
        for i, p in enumerate(others):
            if i == bass_idx and rng.random() < bass_p:
                bprog, _ = pick_program(rng, ["bass"], presets, avoid_programs)
                add("bass", p, bprog, "bass", "bass", "bass")
                continue
            prog, fam = shared_prog if shared else pick_program(rng, accomp_families, presets, avoid_programs)
            add("other", p, prog, fam, "inner" if i != bass_idx else "low", f"part{i + 1}")
    if rng.random() < drums_p:
        avail = kits or M.DRUM_KITS
        if presets is not None:
            avail = [k for k in avail if (128, k) in presets] or [0]
        dtr, dinfo = M.drum_track(measures, qpm, rng, available_kits=avail,
                                  volume=int(rng.integers(90, 120)))
        stems["drums"].append(dtr)
        arr.drums = dinfo
        arr.instruments.append({"stem": "drums", "role": "drums", "program": dinfo["kit"], "family": "drums",
                                "name": dinfo["kit_name"], "style": dinfo["style"]})
    arr.stems = stems
    arr.lead_families = list(lead_families)
    return arr


def melody_track(arr: Arrangement, rng: np.random.Generator, presets: frozenset | None,
                 qnotes: list[list] | None = None, program: int | None = None,
                 families: list[str] | None = None, avoid: set[int] | frozenset = frozenset(),
                 stem: str = "other", role: str = "melody") -> Track | None:
    """A track playing (part of) the melody on a lead instrument; registered in ``arr``."""
    qnotes = arr.melody_q if qnotes is None else qnotes
    if not qnotes:
        return None
    if program is None:
        program, fam = pick_program(rng, families or arr.lead_families, presets, avoid)
    else:
        fam = family_of(program)
    lo, hi = M.program_range(program)
    shift = M.fit_octave([n[2] for n in qnotes], lo, hi)
    notes = M.to_notes(qnotes, arr.qpm, int(rng.integers(70, 110)), rng, shift, LEGATO.get(fam, 0.95),
                       measures=arr.measures)
    tr = Track(program=program, notes=notes, volume=int(rng.integers(90, 120)),
               pan=int(np.clip(64 + rng.normal(0, 12), 20, 108)), reverb=int(rng.integers(20, 70)),
               chorus=int(rng.integers(0, 30)), name=role)
    arr.instruments.append({"stem": stem, "role": role, "program": program, "family": fam,
                            "name": M.gm_name(program), "transpose": arr.transpose + shift})
    return tr


def notes_json(tracks: list[Track]) -> list[list]:
    """Compact ``[onset, offset, pitch, velocity]`` list of the notes of ``tracks`` (seconds)."""
    out = []
    for tr in tracks:
        for n in tr.notes:
            out.append([round(n.start, 4), round(n.start + n.dur, 4), int(n.pitch), int(n.vel)])
    out.sort()
    return out


def window_notes(qnotes: list[list], start_q: float, end_q: float) -> list[list]:
    """Notes starting in ``[start_q, end_q)``, shifted to start at 0 and cut at ``end_q``."""
    out = []
    for n in qnotes:
        if start_q - 1e-6 <= n[0] < end_q - 1e-6:
            out.append([round(n[0] - start_q, 4), round(min(n[1], end_q - n[0]), 4), n[2], n[3]])
    return out
