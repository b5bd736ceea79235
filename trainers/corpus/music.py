"""Arranging score excerpts for General MIDI: instrument families, registers, tempo, generated
harmony for single-line tunes, and drum patterns that follow the meter.

Everything here works on the note lists of :mod:`trainers.corpus.scores` (quarter lengths) and
produces :class:`trainers.corpus.synth.Track` objects (seconds) for FluidSynth.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .synth import Note, Track

log = logging.getLogger(__name__)

#: GM programs (0-based) per instrument family.
FAMILIES: dict[str, list[int]] = {
    "piano": [0, 1, 2, 3, 4, 5],
    "keys": [0, 1, 4, 5, 6, 7, 11, 12],
    "chromatic": [8, 9, 10, 11, 12, 13, 14, 15],
    "organ": [16, 17, 18, 19, 20],
    "guitar": [24, 25, 26, 27, 28, 29, 30],
    "bass": [32, 33, 34, 35, 36, 37, 38, 39, 43],
    "strings": [40, 41, 42, 44, 45, 46, 48, 49, 50, 51],
    "string_pad": [48, 49, 50, 51, 89, 90],
    "voice": [52, 53, 54],
    "brass": [56, 57, 58, 59, 60, 61, 62, 63],
    "winds": [64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79],
    "lead": [80, 81, 82, 83, 84, 85, 86, 87],
    "pad": [88, 89, 90, 91, 92, 93, 94, 95],
}

GM_NAMES = [
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola",
    "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Voice", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute",
    "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum",
    "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise", "Seashore",
    "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
]

#: Comfortable MIDI range (lowest, highest) of a program; default (36, 96).
RANGES: dict[int, tuple[int, int]] = {
    40: (55, 100), 41: (48, 88), 42: (36, 76), 43: (28, 60), 44: (48, 90), 45: (40, 84), 46: (36, 96),
    48: (40, 88), 49: (40, 88), 50: (40, 88), 51: (40, 88), 52: (48, 79), 53: (48, 79), 54: (48, 84),
    56: (54, 84), 57: (40, 72), 58: (28, 58), 59: (54, 82), 60: (41, 77), 61: (40, 80),
    64: (56, 88), 65: (49, 81), 66: (44, 76), 67: (36, 69), 68: (58, 91), 69: (52, 81), 70: (34, 75),
    71: (50, 91), 72: (74, 102), 73: (60, 96), 74: (60, 96), 75: (60, 96), 76: (60, 90), 77: (55, 86),
    78: (71, 96), 79: (60, 84), 24: (40, 84), 25: (40, 84), 26: (40, 84), 27: (40, 84), 28: (40, 80),
    29: (40, 80), 30: (40, 80), 8: (60, 96), 9: (72, 105), 10: (60, 96), 11: (53, 89), 12: (45, 96),
    13: (65, 96), 14: (60, 77), 15: (48, 84), 112: (66, 96), 123: (60, 96), 124: (60, 84),
}
BASS_RANGE = (28, 55)

DRUM_KITS = [0, 0, 0, 8, 16, 24, 25, 32, 40]
KICK, SNARE, SIDE, CLAP, HH_CLOSED, HH_PEDAL, HH_OPEN, CRASH, RIDE, RIDE_BELL = 36, 38, 37, 39, 42, 44, 46, 49, 51, 53
TOMS = [41, 43, 45, 47, 48, 50]
TAMB, SHAKER, COWBELL = 54, 82, 56


def gm_name(program: int, drums: bool = False, kit: int = 0) -> str:
    """Readable name of a GM program (or drum kit)."""
    if drums:
        return {0: "Standard Kit", 8: "Room Kit", 16: "Power Kit", 24: "Electronic Kit", 25: "TR-808 Kit",
                32: "Jazz Kit", 40: "Brush Kit", 48: "Orchestra Kit"}.get(kit, f"Drum Kit {kit}")
    return GM_NAMES[program] if 0 <= program < 128 else f"Program {program}"


def choose(rng: np.random.Generator, seq: list):
    """Uniform choice from a list (returns the element, keeps Python types)."""
    return seq[int(rng.integers(len(seq)))]


# -- meter and tempo ------------------------------------------------------------------------

@dataclass(frozen=True)
class Meter:
    """Felt beat structure of a time signature."""

    num: int
    den: int
    beats: int          # felt beats per measure
    beat_q: float       # felt beat length in quarter lengths
    subdiv: int         # subdivisions per felt beat (2 simple, 3 compound)

    @property
    def measure_q(self) -> float:
        """Measure length in quarter lengths."""
        return self.num * 4.0 / self.den

    @property
    def beat_unit(self) -> str:
        """Name of the felt beat's note value."""
        return {4.0: "whole", 2.0: "half", 1.0: "quarter", 0.5: "eighth", 1.5: "dotted quarter",
                3.0: "dotted half", 0.75: "dotted eighth", 0.25: "sixteenth"}.get(self.beat_q, f"{self.beat_q} quarters")


def meter_of(num: int, den: int) -> Meter:
    """Felt-beat structure: compound meters (6/8, 9/8, 12/8, 6/4 ...) beat in dotted values."""
    unit = 4.0 / den
    if num % 3 == 0 and num > 3 and den >= 4:
        return Meter(num, den, num // 3, unit * 3, 3)
    if num == 3 and den == 8:
        return Meter(num, den, 1, unit * 3, 3)
    if num in (1, 2, 3, 4, 5, 7):
        return Meter(num, den, num, unit, 2)
    return Meter(num, den, num, unit, 2)


def draw_tempo(rng: np.random.Generator, meter: Meter, lo: float = 72, hi: float = 132) -> tuple[float, float]:
    """Draw a felt-beat tempo (bpm) in ``[lo, hi]`` and return ``(bpm, qpm)``."""
    bpm = float(rng.uniform(lo, hi))
    if meter.beats == 1:  # one beat per bar (3/8): slower felt pulse
        bpm *= 0.6
    if meter.beat_q >= 2.0:  # half-note beats (2/2, 4/2): keep the quarter from crawling
        bpm *= 0.75
    qpm = bpm * meter.beat_q
    return round(bpm, 2), round(qpm, 2)


# -- pitch helpers --------------------------------------------------------------------------

def fit_octave(pitches: list[int], lo: int, hi: int) -> int:
    """Octave shift (semitones, a multiple of 12) that puts the most of ``pitches`` in [lo, hi]."""
    if not pitches:
        return 0
    p = np.array(pitches)
    best, best_score = 0, -1e9
    center = (lo + hi) / 2
    for k in range(-5, 6):
        q = p + 12 * k
        inside = np.mean((q >= lo) & (q <= hi))
        # all-inside wins; then the smallest move; the centre only breaks remaining ties
        score = inside * 100 - abs(k) * 3 - abs(float(np.median(q)) - center) * 0.05
        if score > best_score:
            best, best_score = 12 * k, score
    return best


def program_range(program: int) -> tuple[int, int]:
    """Comfortable range of a GM program."""
    if program in FAMILIES["bass"] and program != 43:
        return BASS_RANGE
    return RANGES.get(program, (36, 96))


def to_notes(qnotes: list[list], qpm: float, base_vel: int, rng: np.random.Generator,
             transpose: int = 0, legato: float = 0.98, vel_jitter: int = 8,
             measures: list[list] | None = None, t0: float = 0.0) -> list[Note]:
    """Quarter-length note lists ``[start, dur, pitch, ...]`` -> :class:`Note` in seconds.

    Notes on downbeats get a small accent; velocities are humanised by ``vel_jitter``.
    """
    spq = 60.0 / qpm
    downs = set(round(m[0], 3) for m in measures) if measures else set()
    out = []
    for n in qnotes:
        vel = base_vel + int(rng.integers(-vel_jitter, vel_jitter + 1))
        if round(n[0], 3) in downs:
            vel += 6
        out.append(Note(t0 + n[0] * spq, max(0.03, n[1] * spq * legato), int(n[2]) + transpose,
                        int(np.clip(vel, 20, 127))))
    return out


# -- generated harmony for single-line tunes --------------------------------------------------

MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11]
MINOR_SCALE = [0, 2, 3, 5, 7, 8, 10]


def _triads(tonic_pc: int, mode: str) -> list[tuple[str, int, list[int]]]:
    """Diatonic triads usable for accompaniment: (roman, root pc, chord pcs)."""
    if mode == "minor":
        spec = [("i", 0, [0, 3, 7]), ("iv", 5, [0, 3, 7]), ("V", 7, [0, 4, 7]), ("VI", 8, [0, 4, 7]),
                ("III", 3, [0, 4, 7]), ("VII", 10, [0, 4, 7]), ("v", 7, [0, 3, 7])]
    else:
        spec = [("I", 0, [0, 4, 7]), ("IV", 5, [0, 4, 7]), ("V", 7, [0, 4, 7]), ("vi", 9, [0, 3, 7]),
                ("ii", 2, [0, 3, 7]), ("iii", 4, [0, 3, 7])]
    return [(r, (tonic_pc + root) % 12, [(tonic_pc + root + i) % 12 for i in iv]) for r, root, iv in spec]


def harmonize(melody: list[list], measures: list[list], key: dict, rng: np.random.Generator) -> list[tuple[float, float, int, list[int]]]:
    """Pick one diatonic triad per half measure (or measure) that fits the melody.

    Returns ``(start_q, dur_q, root_pc, chord_pcs)`` spans.
    """
    triads = _triads(int(key.get("tonic_pc", 0)), key.get("mode", "major"))
    bias = np.array([1.0, 0.6, 0.8, 0.3, 0.25, 0.15, 0.1][: len(triads)])
    spans = []
    for m in measures:
        met = meter_of(m[2], m[3])
        split = 2 if met.beats >= 4 and m[1] >= met.measure_q - 1e-6 else 1
        step = m[1] / split
        for k in range(split):
            s0, s1 = m[0] + k * step, m[0] + (k + 1) * step
            w = np.zeros(12)
            for n in melody:
                a, b = max(s0, n[0]), min(s1, n[0] + n[1])
                if b > a:
                    w[n[2] % 12] += (b - a) * (1.5 if abs(n[0] - s0) < 1e-6 else 1.0)
            scores = []
            for (r, root, pcs), bb in zip(triads, bias):
                fit = sum(w[pc] for pc in pcs) - 0.6 * (w.sum() - sum(w[pc] for pc in pcs))
                scores.append(fit + bb * max(0.5, w.sum() * 0.3) + rng.uniform(0, 0.05))
            if spans and abs(s0 - m[0]) > 1e-6 and rng.random() < 0.5:
                spans.append((s0, step, spans[-1][2], spans[-1][3]))  # often keep the chord mid-bar
                continue
            best = int(np.argmax(scores))
            spans.append((s0, step, triads[best][1], triads[best][2]))
    return spans


def _voicing(pcs: list[int], lo: int, hi: int) -> list[int]:
    """Close-position chord pitches of the pitch classes within [lo, hi]."""
    out = []
    for pc in pcs:
        p = lo + ((pc - lo) % 12)
        if p > hi:
            p -= 12
        out.append(p)
    return sorted(out)


def accompaniment_notes(spans, measures: list[list], style: str, rng: np.random.Generator,
                        lo: int = 52, hi: int = 72) -> list[list]:
    """Chord accompaniment (quarter-length note lists) in ``style``: block, arpeggio, oompah, strum."""
    out: list[list] = []
    for s0, dur, root, pcs in spans:
        chord = _voicing(pcs, lo, hi)
        m = next((mm for mm in measures if mm[0] <= s0 + 1e-6 < mm[0] + mm[1]), measures[-1])
        met = meter_of(m[2], m[3])
        if style == "block":
            for p in chord:
                out.append([s0, dur, p, None])
        elif style == "arpeggio":
            step = met.beat_q / met.subdiv
            pat = chord + chord[1:-1][::-1] if len(chord) > 2 else chord
            t, i = s0, 0
            while t < s0 + dur - 1e-6:
                out.append([round(t, 4), step, pat[i % len(pat)], None])
                t += step
                i += 1
        elif style == "oompah":
            t, i = s0, 0
            while t < s0 + dur - 1e-6:
                if i % met.beats == 0 or (met.beats >= 4 and i % 2 == 0 and i > 0 and rng.random() < 0.3):
                    out.append([round(t, 4), met.beat_q * 0.9, chord[0] - 12, None])
                else:
                    for p in chord:
                        out.append([round(t, 4), met.beat_q * 0.6, p, None])
                t += met.beat_q
                i += 1
        else:  # strum: chord on every beat, slightly spread
            t = s0
            while t < s0 + dur - 1e-6:
                for k, p in enumerate(chord):
                    out.append([round(t + 0.02 * k, 4), met.beat_q * 0.9, p, None])
                t += met.beat_q
    return out


def bass_notes(spans, measures: list[list], rng: np.random.Generator, walking: bool = False) -> list[list]:
    """A bass line: chord roots on the downbeat (fifths or walking steps on other beats)."""
    out: list[list] = []
    for s0, dur, root, pcs in spans:
        p_root = 36 + ((root - 36) % 12)
        if p_root > 47:
            p_root -= 12
        m = next((mm for mm in measures if mm[0] <= s0 + 1e-6 < mm[0] + mm[1]), measures[-1])
        met = meter_of(m[2], m[3])
        t, i = s0, 0
        while t < s0 + dur - 1e-6:
            if i == 0:
                p = p_root
            elif walking:
                p = p_root + choose(rng, [2, 4, 5, 7, -1, -3])
            else:
                p = p_root + (7 if i % 2 == 1 else 0) - (12 if p_root + 7 > 50 and i % 2 == 1 else 0)
            out.append([round(t, 4), met.beat_q * 0.85, p, None])
            t += met.beat_q
            i += 1
    return out


# -- drums ----------------------------------------------------------------------------------

DRUM_STYLES = ["rock", "rock", "pop", "shuffle", "folk", "march", "halftime", "disco"]


def drum_notes(measures: list[list], rng: np.random.Generator, style: str | None = None,
               fills: bool = True, intensity: float = 1.0) -> tuple[list[list], str]:
    """A drum pattern (GM channel 10 note lists in quarter lengths) that follows each measure's meter.

    Kick on the downbeat (and the middle of even meters), snare/clap on the back beats, hi-hat or
    ride on the subdivisions, a crash at phrase starts and a fill on the last bar of 4/8-bar phrases.
    """
    style = style or choose(rng, DRUM_STYLES)
    hat = choose(rng, [HH_CLOSED, HH_CLOSED, HH_CLOSED, RIDE, HH_PEDAL]) if style != "disco" else HH_CLOSED
    back = choose(rng, [SNARE, SNARE, SNARE, CLAP, SIDE]) if style != "march" else SNARE
    phrase = choose(rng, [4, 8])
    out: list[list] = []

    def hit(t: float, p: int, v: int) -> None:
        out.append([round(t, 4), 0.1, p, int(np.clip(v * intensity + rng.integers(-6, 7), 15, 127))])

    for mi, m in enumerate(measures):
        off, length = m[0], m[1]
        met = meter_of(m[2], m[3])
        sub = met.beat_q / met.subdiv
        last_of_phrase = fills and (mi % phrase == phrase - 1) and mi > 0
        for b in range(met.beats):
            tb = off + b * met.beat_q
            if tb >= off + length - 1e-6:
                break
            if last_of_phrase and b >= met.beats - max(1, met.beats // 2):
                # fill: snare and toms on the subdivisions of the last beat(s)
                for s in range(met.subdiv * (2 if style in ("rock", "pop") else 1)):
                    t = tb + s * sub / (2 if style in ("rock", "pop") else 1)
                    hit(t, choose(rng, [SNARE, SNARE] + TOMS), 95)
                continue
            # kick
            if b == 0 or (met.beats >= 4 and b == met.beats // 2 and style not in ("halftime",)):
                hit(tb, KICK, 105 if b == 0 else 95)
            elif style in ("disco", "march") or (style == "folk" and met.beats == 3 and False):
                hit(tb, KICK, 90)
            if style == "pop" and met.beats >= 4 and b == met.beats - 1 and rng.random() < 0.5:
                hit(tb + met.beat_q / 2, KICK, 85)
            # back beat
            if met.beats == 1:
                pass
            elif met.beats == 3:
                if b > 0 and style != "folk":
                    hit(tb, back, 80)
            elif met.beats == 2:
                if b == 1:
                    hit(tb, back, 95)
            elif style == "halftime":
                if b == met.beats // 2:
                    hit(tb, back, 100)
            elif b % 2 == 1:
                hit(tb, back, 98)
            # cymbals on subdivisions
            for s in range(met.subdiv):
                t = tb + s * sub
                if style == "disco" and s == 1:
                    hit(t, HH_OPEN, 75)
                elif style == "shuffle" and met.subdiv == 2 and s == 1:
                    hit(tb + met.beat_q * 2 / 3, hat, 60)
                else:
                    hit(t, hat, 78 if s == 0 else 58)
            if style == "folk" and rng.random() < 0.3:
                hit(tb, TAMB, 60)
        if mi % phrase == 0:
            hit(off, CRASH, 100 if mi > 0 else 90)
    return out, style


def drum_track(measures: list[list], qpm: float, rng: np.random.Generator, kit: int | None = None,
               style: str | None = None, t0: float = 0.0, volume: int = 100, available_kits: list[int] | None = None) -> tuple[Track, dict]:
    """A drum :class:`Track` for ``measures`` at ``qpm`` and a description for metadata."""
    kits = available_kits or DRUM_KITS
    kit = choose(rng, kits) if kit is None else kit
    qn, style = drum_notes(measures, rng, style)
    spq = 60.0 / qpm
    notes = [Note(t0 + n[0] * spq, 0.15, n[2], n[3]) for n in qn]
    tr = Track(program=kit, notes=notes, drums=True, volume=volume, pan=64,
               reverb=int(rng.integers(10, 50)), name="drums")
    return tr, {"kit": kit, "kit_name": gm_name(0, True, kit), "style": style}


def beat_times(measures: list[list], qpm: float, t0: float = 0.0) -> tuple[list[float], list[float]]:
    """Felt-beat and downbeat times (seconds) of ``measures`` at ``qpm``."""
    spq = 60.0 / qpm
    beats, downs = [], []
    for m in measures:
        met = meter_of(m[2], m[3])
        downs.append(round(t0 + m[0] * spq, 4))
        b = 0
        while b * met.beat_q < m[1] - 1e-6:
            beats.append(round(t0 + (m[0] + b * met.beat_q) * spq, 4))
            b += 1
    return beats, downs
