"""Sound sources of the 14 classes, able to give several *different* excerpts of one source.

A source is one speaker, one instrument playing one tune, one drum kit and groove, one family of
recorded effects, ... ``excerpt(k, seconds)`` returns excerpt number ``k``: different ``k`` give
different content of the same source (another sentence of the same voice, other bars of the same
tune on the same instrument, another file of the same kind). The clips kind uses excerpt 0; the
query kind uses excerpts 0..n-1 as target events and excerpt n as the query.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio as A
from . import music as M
from . import sounds as S
from . import voices as V
from .arrange import family_of, window_notes
from .scores import excerpt, full_measure_indices, melody_part_index, skyline
from .synth import Note, SynthSettings, Track, render

log = logging.getLogger(__name__)

#: GM programs of the instrument classes.
CLASS_PROGRAMS: dict[str, list[int]] = {
    "piano": [0, 1, 2, 3, 4, 5],
    "strings": [40, 41, 42, 44, 45, 46, 48, 49, 50, 51, 110],
    "winds": [64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 77, 78, 79],
    "brass": [56, 57, 58, 59, 60, 61, 62, 63],
    "guitar": [24, 25, 26, 27, 28, 29, 30, 105],
    "bass": [32, 33, 34, 35, 36, 37, 38, 39, 43],
    "organ": [16, 17, 18, 19, 20],
    "bells": [14, 9, 8, 10, 112],
    "singing": [52, 53, 54],
}
#: Programs that must not appear in a background when the target is of a class.
CLASS_AVOID: dict[str, set[int]] = {c: set(p) for c, p in CLASS_PROGRAMS.items()}
CLASS_AVOID["strings"] |= {110}
CLASS_AVOID["piano"] |= {6, 7}
CLASS_AVOID["singing"] |= {85, 91}
CLASS_AVOID["bells"] |= {11, 12, 13}
CLASS_AVOID["alarms"] = {124, 80, 81}
CLASS_AVOID["birds"] = {123}
CLASS_AVOID["noise"] = {96, 122, 125, 126}

NOISE_PROGRAMS = {"seashore": 122, "rain": 96, "applause": 126, "helicopter": 125}


@dataclass
class Source:
    """Base class. ``sr``: output rate; ``info``: metadata of the source."""

    cls: str
    sr: int
    info: dict = field(default_factory=dict)

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:  # pragma: no cover - interface
        """Excerpt number ``k`` of about ``seconds`` (mono float32 at ``sr``)."""
        raise NotImplementedError

    def relation(self) -> str:
        """How excerpts of this source differ (written to query metadata)."""
        return self.info.get("relation", "another excerpt of the same source")


# -- speech -----------------------------------------------------------------------------------

class EspeakSpeech(Source):
    """One espeak-ng speaker; excerpt k = sentence k (and the next ones if too short)."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, voice: V.Voice | None = None,
                 extra: list[str] | None = None):
        self.voice = voice or V.random_voice(rng)
        self.sentences = V.sentences_for(self.voice.lang, rng, 200, extra)
        super().__init__(cls, sr, {"type": "espeak-speech", "voice": self.voice.as_dict(),
                                   "relation": "same voice, another sentence"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        n = len(self.sentences)
        chunks, total, i = [], 0.0, 0
        while total < seconds * 0.8 and i < 4:
            x = V.speak(self.sentences[(k * 2 + i) % n], self.voice, self.sr)
            chunks.append(x)
            chunks.append(np.zeros(int(0.25 * self.sr), np.float32))
            total += (x.size / self.sr) + 0.25
            i += 1
        y = np.concatenate(chunks)[: int(seconds * self.sr)]
        return A.fade(A.trim_silence(y, -45, self.sr), self.sr)


class RecordedSpeech(Source):
    """The alsa-utils speaker; excerpt k = phrase file k (speed fixed per source)."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator):
        self.files = S.speech_files()
        if not self.files:
            raise FileNotFoundError("alsa-utils voice recordings missing (Debian package alsa-utils)")
        self.order = rng.permutation(len(self.files))
        self.speed = float(rng.uniform(0.92, 1.08))
        super().__init__(cls, sr, {"type": "recorded-speech", "speaker": "alsa-utils", "speed": round(self.speed, 3),
                                   "relation": "same speaker, another phrase"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        chunks, total, i = [], 0.0, 0
        while total < seconds * 0.7 and i < 3:
            f = self.files[self.order[(k * 2 + i) % len(self.files)]]
            x = A.change_speed(S.load_sound(f, self.sr), self.speed)
            chunks += [x, np.zeros(int(0.2 * self.sr), np.float32)]
            total += x.size / self.sr + 0.2
            i += 1
        return A.fade(A.trim_silence(np.concatenate(chunks)[: int(seconds * self.sr)], -45, self.sr), self.sr)


# -- melodic sources (instrument, sung, GM voice) ----------------------------------------------

MELODY_POOLS = {"fiddle": 0.35, "folk": 0.3, "chorale": 0.2, "quartet": 0.1, "madrigal": 0.05}
WINDOW_S = 4.6  # seconds reserved per excerpt along the tune


class MelodicSource(Source):
    """One tune performed by one program (or an espeak singer); excerpt k = the tune's k-th window."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, ctx, program: int | None = None,
                 singer: V.Voice | None = None, texture: str = "melody", n_windows: int = 5):
        lib = ctx.library
        pools = {"chorale": 0.5, "madrigal": 0.2, "folk": 0.3} if singer is not None else MELODY_POOLS
        ref, piece = lib.draw(rng, pools)
        start = M.choose(rng, full_measure_indices(piece) or [0])
        m0 = piece["measures"][start]
        meter = M.meter_of(m0[2], m0[3])
        bpm, qpm = M.draw_tempo(rng, meter, 70, 135)
        exc = excerpt(piece, start, n_windows * WINDOW_S * qpm / 60.0)
        parts = [p["notes"] for p in exc["parts"]]
        mi = melody_part_index({"parts": exc["parts"]}) if len(parts) > 1 else 0
        melody = skyline(parts[mi])
        if texture == "bass":
            if len(parts) > 1:
                low = int(np.argmin([np.median([n[2] for n in p]) if p else 999 for p in parts]))
                qnotes = skyline(parts[low]) if low != mi else M.bass_notes(
                    M.harmonize(melody, exc["measures"], piece["key"], rng), exc["measures"], rng)
            else:
                qnotes = M.bass_notes(M.harmonize(melody, exc["measures"], piece["key"], rng), exc["measures"], rng,
                                      walking=rng.random() < 0.4)
        elif texture == "poly":
            if len(parts) > 1:
                qnotes = [n for p in parts for n in p]
            else:
                spans = M.harmonize(melody, exc["measures"], piece["key"], rng)
                style = M.choose(rng, ["block", "arpeggio", "oompah", "strum"])
                qnotes = melody + M.accompaniment_notes(spans, exc["measures"], style, rng)
        else:
            qnotes = melody
        self.qpm = qpm
        self.qnotes = sorted(qnotes, key=lambda n: (n[0], -n[2]))
        self.length_q = exc["length"]
        self.program = program
        self.singer = singer
        self.lang = piece.get("lyric_lang")
        self.base_vel = int(rng.integers(60, 110))
        self.reverb = int(rng.integers(5, 70))
        self.settings = SynthSettings(room_size=float(rng.uniform(0.1, 0.8)))
        self.seed = int(rng.integers(2**31))
        if program is not None:
            lo, hi = M.program_range(program)
            if texture == "bass":
                lo, hi = M.BASS_RANGE if program != 43 else (28, 60)
            self.shift = M.fit_octave([n[2] for n in self.qnotes], lo, hi) + int(rng.integers(-2, 3))
        else:
            gender_center = 55 if singer and singer.gender == "male" else 67
            self.shift = M.fit_octave([n[2] for n in self.qnotes], gender_center - 10, gender_center + 10)
        perf = ({"program": program, "name": M.gm_name(program), "family": family_of(program)}
                if program is not None else {"espeak_singer": singer.as_dict() if singer else None})
        super().__init__(cls, sr, {"type": "sung-espeak" if singer else "gm-instrument", **perf,
                                   "score": ref.key, "tempo_qpm": qpm, "texture": texture,
                                   "relation": "same performer, other notes of the same tune"})

    def _window(self, k: int, seconds: float) -> list[list]:
        total_windows = max(1, int(self.length_q / (WINDOW_S * self.qpm / 60.0)))
        wq = seconds * self.qpm / 60.0
        for attempt in range(total_windows):
            kk = (k + attempt) % total_windows
            s = kk * WINDOW_S * self.qpm / 60.0
            notes = window_notes(self.qnotes, s, s + wq)
            if len(notes) >= 2:
                first = notes[0][0]
                return [[n[0] - first, n[1], n[2], n[3]] for n in notes if n[0] - first < wq - 0.05]
        return window_notes(self.qnotes, 0.0, wq)

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        qnotes = self._window(k, seconds)
        rng = np.random.default_rng([self.seed, k])
        spq = 60.0 / self.qpm
        if self.singer is not None:
            syls, _ = V.lyric_syllables(qnotes, self.lang, rng)
            notes = [(n[0] * spq, n[1] * spq, n[2] + self.shift, syl) for n, syl in zip(qnotes, syls)]
            y = V.sing_line(notes, self.singer, seconds, self.sr, rng)
        else:
            fam = family_of(self.program)
            notes = M.to_notes(qnotes, self.qpm, self.base_vel, rng, self.shift,
                               0.9 if fam in ("guitar", "bass", "piano") else 0.97)
            tr = Track(self.program, notes, reverb=self.reverb, name=self.cls)
            y = render([tr], seconds, self.sr, ctx.soundfont, self.settings)
        return A.fade(y, self.sr, 0.002, 0.05)


class DrumSource(Source):
    """One kit and groove; excerpt k = bars k*n.. of the pattern (other fills, crashes)."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, ctx):
        kits = [k for k in M.DRUM_KITS if (128, k) in ctx.presets] or [0]
        self.kit = M.choose(rng, kits)
        num, den = M.choose(rng, [(4, 4), (4, 4), (4, 4), (3, 4), (6, 8), (2, 4), (12, 8)])
        self.meter = M.meter_of(num, den)
        self.bpm, self.qpm = M.draw_tempo(rng, self.meter, 70, 150)
        n_meas = int(40 * self.qpm / 60.0 / self.meter.measure_q) + 2
        self.measures = [[i * self.meter.measure_q, self.meter.measure_q, num, den] for i in range(n_meas)]
        qn, self.style = M.drum_notes(self.measures, rng)
        self.qnotes = [[n[0], n[1], n[2], n[3]] for n in qn]
        self.settings = SynthSettings(room_size=float(rng.uniform(0.1, 0.8)))
        super().__init__(cls, sr, {"type": "gm-drums", "kit": self.kit, "kit_name": M.gm_name(0, True, self.kit),
                                   "style": self.style, "time_signature": f"{num}/{den}", "tempo_bpm": self.bpm,
                                   "relation": "same kit and groove, other bars"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        spq = 60.0 / self.qpm
        mq = self.meter.measure_q
        bars_per_window = max(1, int(np.ceil(WINDOW_S / (mq * spq))))
        s = (k * bars_per_window) * mq
        notes = window_notes(self.qnotes, s, s + seconds / spq)
        tr = Track(self.kit, [Note(n[0] * spq, 0.15, n[2], n[3]) for n in notes], drums=True,
                   reverb=30, name="drums")
        return A.fade(render([tr], seconds, self.sr, ctx.soundfont, self.settings), self.sr, 0.001, 0.05)


# -- GM effects and synthetic sounds ---------------------------------------------------------

class GMEffect(Source):
    """Effect patterns on one GM program: bells motifs, phone rings, alarm beeps, birds, ambience."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, program: int, pattern: str):
        self.program = program
        self.pattern = pattern
        self.base_pitch = int(rng.integers(*{"bells": (60, 84), "ring": (62, 80), "beep": (72, 96),
                                              "siren": (64, 84), "bird": (64, 96), "ambience": (48, 72)}[pattern]))
        self.tempo = float(rng.uniform(0.7, 1.4))
        self.seed = int(rng.integers(2**31))
        self.settings = SynthSettings(room_size=float(rng.uniform(0.1, 0.8)))
        super().__init__(cls, sr, {"type": "gm-effect", "program": program, "name": M.gm_name(program),
                                   "pattern": pattern, "relation": "same sound, another pattern"})

    def _notes(self, rng: np.random.Generator, seconds: float) -> list[Note]:
        p0, tempo, out = self.base_pitch, self.tempo, []
        t = float(rng.uniform(0.0, 0.1))
        if self.pattern == "bells":
            scale = M.choose(rng, [[0, 2, 4, 7, 9], [0, 4, 7, 12], [0, 2, 4, 5, 7], [0, 3, 5, 7, 10]])
            while t < seconds - 0.4:
                d = float(rng.choice([0.25, 0.35, 0.5, 0.7])) / tempo
                out.append(Note(t, d, p0 + int(rng.choice(scale)) + 12 * int(rng.integers(-1, 1)), int(rng.integers(70, 115))))
                t += d
        elif self.pattern == "ring":
            while t < seconds - 0.3:
                d = float(rng.uniform(0.8, 1.6))
                out.append(Note(t, d, p0, 100))
                t += d + float(rng.uniform(0.4, 1.2))
        elif self.pattern == "beep":
            beep = float(rng.uniform(0.07, 0.25)) / tempo
            group = int(rng.integers(1, 5))
            while t < seconds - beep:
                for _ in range(group):
                    out.append(Note(t, beep, p0, 110))
                    t += beep * 2
                t += beep * int(rng.integers(2, 6))
        elif self.pattern == "siren":
            half = float(rng.uniform(0.25, 0.6)) / tempo
            i = 0
            while t < seconds:
                out.append(Note(t, half * 0.98, p0 + (5 if i % 2 else 0), 110))
                t += half
                i += 1
        elif self.pattern == "bird":
            while t < seconds - 0.1:
                for _ in range(int(rng.integers(2, 7))):
                    d = float(rng.uniform(0.04, 0.18))
                    out.append(Note(t, d, p0 + int(rng.integers(-5, 6)), int(rng.integers(70, 120))))
                    t += d * float(rng.uniform(1.0, 1.6))
                t += float(rng.uniform(0.2, 1.0))
        else:  # ambience: long held notes
            while t < seconds:
                d = float(rng.uniform(1.5, 4.0))
                out.append(Note(t, d, p0 + int(rng.integers(-3, 4)), int(rng.integers(80, 120))))
                t += d * 0.9
        return [n for n in out if n.start < seconds]

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        tr = Track(self.program, self._notes(rng, seconds), reverb=int(rng.integers(5, 60)), name=self.cls)
        return A.fade(render([tr], seconds, self.sr, ctx.soundfont, self.settings), self.sr, 0.002, 0.05)


class SynthBirds(Source):
    """Synthetic bird song: frequency-swept chirps with harmonics, in phrases."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator):
        self.f_lo = float(rng.uniform(1800, 3500))
        self.f_hi = float(min(sr * 0.45, self.f_lo * rng.uniform(1.3, 2.2)))
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, {"type": "synthetic-birds", "f_lo": round(self.f_lo), "f_hi": round(self.f_hi),
                                   "relation": "same bird, another phrase"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        sr, n = self.sr, int(seconds * self.sr)
        y = np.zeros(n, np.float32)
        t = float(rng.uniform(0, 0.2))
        while t < seconds - 0.1:
            for _ in range(int(rng.integers(2, 8))):
                d = float(rng.uniform(0.03, 0.15))
                m = int(d * sr)
                tt = np.arange(m) / sr
                f0, f1 = (self.f_lo, self.f_hi) if rng.random() < 0.6 else (self.f_hi, self.f_lo)
                f = f0 + (f1 - f0) * (tt / d) ** float(rng.uniform(0.5, 2))
                ph = 2 * np.pi * np.cumsum(f) / sr
                env = np.sin(np.pi * tt / d) ** 2
                sig = np.sin(ph) + 0.2 * np.sin(2 * ph) * (2 * f.max() < sr / 2)
                s = int(t * sr)
                e = min(n, s + m)
                if e > s:
                    y[s:e] += (sig * env)[: e - s].astype(np.float32) * float(rng.uniform(0.3, 1.0))
                t += d * float(rng.uniform(1.1, 1.8))
            t += float(rng.uniform(0.2, 0.9))
        return y


class FileSound(Source):
    """Recorded effect files of a class; excerpt k = file k (repeated or windowed to fit)."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, files: list | None = None):
        self.files = files or S.class_files(cls)
        if not self.files:
            raise FileNotFoundError(f"no recorded sounds for class {cls} (Debian sound-theme-freedesktop)")
        self.order = rng.permutation(len(self.files))
        self.speed = float(rng.uniform(0.85, 1.15))
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, {"type": "recorded-effect", "files": [f.name for f in self.files][:20],
                                   "speed": round(self.speed, 3),
                                   "relation": "same kind of sound, another file or excerpt"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        f = self.files[self.order[k % len(self.files)]]
        x = A.change_speed(S.load_sound(f, self.sr), self.speed)
        n = int(seconds * self.sr)
        if x.size >= n:
            off = int(rng.integers(0, x.size - n + 1))
            y = x[off: off + n]
        else:
            parts, total = [], 0
            while total < n * 0.6:
                gap = np.zeros(int(rng.uniform(0.05, 0.5) * self.sr), np.float32)
                parts += [x, gap]
                total += x.size + gap.size
                if x.size < 0.05 * self.sr:
                    break
            y = np.concatenate(parts)[:n]
        return A.fade(y, self.sr, 0.002, 0.03)


class NoiseSound(Source):
    """Coloured noise (white/pink/brown) with an optional slow 'wind' modulation."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator):
        self.exponent = float(M.choose(rng, [0.0, 1.0, 1.0, 2.0, 1.5]))
        self.wind = bool(rng.random() < 0.4)
        self.seed = int(rng.integers(2**31))
        name = {0.0: "white", 1.0: "pink", 2.0: "brown", 1.5: "red"}[self.exponent]
        super().__init__(cls, sr, {"type": "noise", "color": name, "wind": self.wind,
                                   "relation": "same noise, another stretch"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        n = int(seconds * self.sr)
        y = A.colored_noise(rng, n, self.exponent)
        if self.wind:
            ctrl = A.colored_noise(rng, max(8, int(seconds * 4)), 2.0)
            env = np.interp(np.linspace(0, ctrl.size - 1, n), np.arange(ctrl.size), ctrl)
            y = y * (0.6 + 0.4 * np.tanh(env)).astype(np.float32)
        return A.fade(y * 0.1, self.sr, 0.02, 0.05)


# -- factory ------------------------------------------------------------------------------------

def make_source(cls: str, sr: int, rng: np.random.Generator, ctx, split: str = "train",
                avoid_speakers: set[str] | frozenset = frozenset()) -> Source:
    """Draw a source of class ``cls`` (``ctx``: the render context, for scores, the soundfont and
    ``ctx.real``). For the classes of :data:`REAL_P` a real recording of ``split`` is used with
    probability ``REAL_P[cls] * ctx.real`` where one is installed (else the renders below);
    ``avoid_speakers``: real speaker ids not to draw."""
    presets = ctx.presets

    def prog_from(progs: list[int]) -> int:
        ok = [p for p in progs if (0, p) in presets] or progs
        return M.choose(rng, ok)

    if cls in REAL_P and want_real(rng, REAL_P[cls], ctx):
        if cls == "speech":
            real = real_speech(cls, sr, rng, split, avoid_speakers)
        elif cls == "drums":
            real = real_drums(cls, sr, rng, split)
        else:
            real = real_effect(cls, sr, rng, split, REAL_LABEL[cls])
        if real is not None:
            return real
    if cls == "speech":
        if rng.random() < 0.25 and ctx_real(ctx) > 0 and S.speech_files():
            return RecordedSpeech(cls, sr, rng)
        return EspeakSpeech(cls, sr, rng)
    if cls == "singing":
        if rng.random() < 0.6:
            return MelodicSource(cls, sr, rng, ctx, singer=V.random_voice(rng, lang=None, odd=0.0))
        return MelodicSource(cls, sr, rng, ctx, program=prog_from([52, 52, 53, 53, 54]))
    if cls in ("piano", "strings", "winds", "brass", "guitar", "organ"):
        texture = "poly" if cls in ("piano", "guitar", "organ") and rng.random() < 0.5 else "melody"
        if cls == "strings" and rng.random() < 0.2:
            texture = "poly"
        return MelodicSource(cls, sr, rng, ctx, program=prog_from(CLASS_PROGRAMS[cls]), texture=texture)
    if cls == "bass":
        return MelodicSource(cls, sr, rng, ctx, program=prog_from(CLASS_PROGRAMS["bass"]), texture="bass")
    if cls == "drums":
        return DrumSource(cls, sr, rng, ctx)
    if cls == "bells":
        if rng.random() < 0.4 and ctx_real(ctx) > 0 and S.class_files("bells"):
            return FileSound(cls, sr, rng)
        return GMEffect(cls, sr, rng, prog_from(CLASS_PROGRAMS["bells"]), "bells")
    if cls == "alarms":
        r = rng.random()
        if r < 0.45 and ctx_real(ctx) > 0 and S.class_files("alarms"):
            return FileSound(cls, sr, rng)
        if r < 0.65:
            return GMEffect(cls, sr, rng, prog_from([124]), "ring")
        return GMEffect(cls, sr, rng, prog_from([80, 81, 80, 83]), M.choose(rng, ["beep", "beep", "siren"]))
    if cls == "birds":
        if rng.random() < 0.7:
            return GMEffect(cls, sr, rng, prog_from([123]), "bird")
        return SynthBirds(cls, sr, rng)
    if cls == "noise":
        r = rng.random()
        if r < 0.45:
            return NoiseSound(cls, sr, rng)
        if r < 0.85 or ctx_real(ctx) <= 0 or not S.class_files("noise"):
            name = M.choose(rng, list(NOISE_PROGRAMS))
            src = GMEffect(cls, sr, rng, prog_from([NOISE_PROGRAMS[name]]), "ambience")
            src.info["ambience"] = name
            return src
        return FileSound(cls, sr, rng)
    raise ValueError(f"unknown class {cls!r}")


# -- real recordings (trainers/corpus/real_sources.py) -----------------------------------------
#
# A real source reads files of the registry only through :func:`real_files` (which never lists an
# evaluation-only path) and :func:`read_real` (which refuses one). Each keeps in ``info`` what
# provenance needs: ``real_source`` (the registry id; package and licence come from the registry)
# and ``files`` (every file it has read so far, in order of use).

#: Sonic Pi loops that are drum or percussion loops (the others are drones, synth riffs, printers).
DRUM_LOOPS = ("loop_amen", "loop_amen_full", "loop_breakbeat", "loop_compus", "loop_industrial",
              "loop_perc1", "loop_perc2", "loop_safari", "loop_tabla")
#: files at most this long are decoded whole and cached; longer ones are read by window
_WHOLE_S = 30.0
_LOGGED: set[tuple[str, str]] = set()


def _root_key() -> str:
    from . import real_sources as R
    return str(R.SYSTEM_ROOT)


@functools.lru_cache(maxsize=512)
def _files_cached(root: str, source_id: str) -> tuple[Path, ...]:
    from . import real_sources as R
    return tuple(R.files(source_id))


def real_files(source) -> list[Path]:
    """Files of a registered source under the current ``real_sources.SYSTEM_ROOT`` (sorted, cached)."""
    return list(_files_cached(_root_key(), source.id if hasattr(source, "id") else str(source)))


def clear_real_cache() -> None:
    """Forget the cached file lists, durations and decoded files (tests change the installed tree)."""
    _files_cached.cache_clear()
    _speakers_cached.cache_clear()
    _duration.cache_clear()
    _decode_whole.cache_clear()
    _LOGGED.clear()


def real_pool(kind: str, split: str, label: str | None = None) -> list:
    """Installed registry sources of ``kind`` (and effect ``label``) in ``split``, by id."""
    from . import real_sources as R
    return [s for s in R.SOURCES if s.kind == kind and s.split == split
            and (label is None or s.label == label) and real_files(s)]


def log_fallback_once(what: str, split: str) -> None:
    """Say once per process that no real ``what`` of ``split`` is installed (renders are used)."""
    if (what, split) not in _LOGGED:
        _LOGGED.add((what, split))
        log.info("no real %s recordings of the %s split installed: using renders", what, split)


def ctx_real(ctx) -> float:
    """``ctx.real`` (1, the default, when the context has none): 0 turns off every recording, the registered
    ones and the Debian sound-theme / alsa-utils files alike."""
    return float(getattr(ctx, "real", 1.0))


def want_real(rng: np.random.Generator, p: float, ctx) -> bool:
    """One draw of ``rng`` (always made, so the stream does not depend on what is installed):
    whether to use a real recording, with probability ``p * ctx.real``."""
    u = float(rng.random())
    return u < p * ctx_real(ctx)


@functools.lru_cache(maxsize=4096)
def _duration(path: str, container: str) -> float:
    from . import real_sources as R
    try:
        return float(R.duration(path, container))
    except (OSError, ValueError, RuntimeError):
        return 0.0


class _DecodeCache:
    """Decoded short files, least recently used dropped past ``budget`` bytes (per process)."""

    def __init__(self, budget: int = 200 * 2**20):
        from collections import OrderedDict
        self.budget, self.items, self.size = budget, OrderedDict(), 0

    def __call__(self, path: str, sr: int) -> np.ndarray:
        from . import real_sources as R
        key = (path, int(sr))
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        x = R.read(path, int(sr))
        x.setflags(write=False)
        self.items[key] = x
        self.size += x.nbytes
        while self.size > self.budget and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.size -= old.nbytes
        return x

    def cache_clear(self) -> None:
        self.items.clear()
        self.size = 0


_decode_whole = _DecodeCache()


def read_real(path: str | Path, sr: int, offset_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """A registered file (or ``seconds`` of it from ``offset_s``) as mono float32 at ``sr``.

    Refuses evaluation-only paths. Short files are decoded whole (cached); long ones are read by
    window with libsndfile (seeking), or decoded whole where it cannot seek.
    """
    from . import real_sources as R
    R.assert_not_evaluation_only(path)
    p = str(path)
    dur = _duration(p, "audio")
    if seconds is None or dur <= _WHOLE_S:
        x = _decode_whole(p, int(sr))
        if seconds is None:
            return np.array(x)
        a = int(offset_s * sr)
        return np.array(x[a: a + int(seconds * sr)])
    import soundfile as sf
    try:
        with sf.SoundFile(p) as f:
            f.seek(int(offset_s * f.samplerate))
            data = f.read(int(seconds * f.samplerate) + 1, dtype="float32", always_2d=True)
            return A.resample(data.mean(axis=1), int(f.samplerate), int(sr))[: int(seconds * sr)]
    except (RuntimeError, sf.LibsndfileError):
        x = R.read(p, int(sr))
        a = int(offset_s * sr)
        return x[a: a + int(seconds * sr)]


class RecordingSource(Source):
    """Base of the sources made of registered real recordings (``info['files']`` grows as read)."""

    def __init__(self, cls: str, sr: int, reg, info: dict):
        self.reg = reg
        super().__init__(cls, sr, {"real_source": reg.id, "split": reg.split, "files": [], **info})

    def _use(self, path: Path) -> None:
        s = str(path)
        if s not in self.info["files"]:
            self.info["files"].append(s)

    def _read(self, path: Path, offset_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
        self._use(path)
        return read_real(path, self.sr, offset_s, seconds)


@functools.lru_cache(maxsize=64)
def _speakers_cached(root: str, split: str) -> tuple:
    from . import real_sources as R
    out: dict[str, tuple] = {}
    for s in R.SOURCES:
        if s.kind != "speech" or s.split != split:
            continue
        for f in _files_cached(root, s.id):
            spk = R.speaker_of(s, f) or s.id
            reg, fs = out.get(spk, (s, ()))
            out[spk] = (reg, fs + (f,))
    return tuple((spk, reg, fs) for spk, (reg, fs) in sorted(out.items()))


def real_speakers(split: str) -> list[tuple[str, object, tuple[Path, ...]]]:
    """``(speaker id, RealSource, files)`` of every installed real speaker of ``split``, by id."""
    return list(_speakers_cached(_root_key(), split))


class RealSpeech(RecordingSource):
    """One real speaker (all the files of that speaker id); excerpt k = the next files of the
    speaker (in an order drawn per source) joined with 0.2-0.4 s gaps until long enough, each
    trimmed of silence. Excerpts are made in the order they are asked for and never share a file
    until the speaker's files are used up."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, speaker: tuple):
        spk, reg, fs = speaker
        self.speaker = spk
        self.paths = list(fs)
        self.order = [int(i) for i in rng.permutation(len(self.paths))]
        self.seed = int(rng.integers(2**31))
        self._starts: dict[int, tuple[int, int]] = {}
        self._cursor = 0
        super().__init__(cls, sr, reg, {"type": "real-speech", "speaker": spk, "lang": reg.lang,
                                        "relation": "same speaker, another recording"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        sr, n = self.sr, int(seconds * self.sr)
        start = self._starts[k][0] if k in self._starts else self._cursor
        chunks, total, i = [], 0, 0
        while total < n and i < len(self.paths) * 2:
            path = self.paths[self.order[(start + i) % len(self.paths)]]
            i += 1
            x = A.trim_silence(self._read(path), -45, sr)
            if x.size == 0:
                continue
            if chunks:
                gap = np.zeros(int(rng.uniform(0.2, 0.4) * sr), np.float32)
                chunks.append(gap)
                total += gap.size
            chunks.append(x.astype(np.float32))
            total += x.size
        if k not in self._starts:
            self._starts[k] = (start, i)
            self._cursor = start + i
        y = np.concatenate(chunks)[:n] if chunks else np.zeros(0, np.float32)
        return A.fade(y, sr)


    def words(self, n_max: int = 24, max_seconds: float = 0.6) -> list[np.ndarray]:
        """Up to ``n_max`` short recordings of this speaker at 22050 Hz, each trimmed of silence and cut to
        ``max_seconds`` (a word or the start of a phrase): the syllables of real sung lines."""
        from .voices import ESPEAK_SR

        out = []
        for j in range(min(len(self.paths), 3 * n_max)):
            x = A.trim_silence(self._read(self.paths[self.order[j]]), -40, self.sr)
            if x.size < 0.08 * self.sr:
                continue
            x = A.resample(np.asarray(x[: int(max_seconds * self.sr)], np.float32), self.sr, ESPEAK_SR)
            out.append(A.fade(x, ESPEAK_SR, 0.005, 0.03))
            if len(out) >= n_max:
                break
        return out


class RealEffectFiles(RecordingSource):
    """Recorded effects of one registry source (alarms, bells, ambience): excerpt k = file k of an
    order drawn per source, windowed when long, repeated with short gaps when short."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, reg):
        self.paths = real_files(reg)
        self.order = [int(i) for i in rng.permutation(len(self.paths))]
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, reg, {"type": "real-effect", "label": reg.label,
                                        "relation": "same kind of sound, another file"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        path = self.paths[self.order[k % len(self.paths)]]
        n = int(seconds * self.sr)
        dur = _duration(str(path), "audio")
        if dur > seconds + 0.05:
            y = self._read(path, float(rng.uniform(0.0, dur - seconds)), seconds)
        else:
            x = A.trim_silence(self._read(path), -55, self.sr)
            parts, total = [], 0
            while x.size and total < n * 0.6:
                gap = np.zeros(int(rng.uniform(0.05, 0.5) * self.sr), np.float32)
                parts += [x, gap]
                total += x.size + gap.size
                if x.size < 0.05 * self.sr:
                    break
            y = np.concatenate(parts)[:n] if parts else np.zeros(0, np.float32)
        return A.fade(np.asarray(y, np.float32), self.sr, 0.002, 0.03)


class RealDrumLoops(RecordingSource):
    """Real drum/percussion loops (Sonic Pi); excerpt k = loop k of an order drawn per source,
    tiled to length from a random point, at one speed per source."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, reg):
        self.paths = [p for p in real_files(reg) if p.stem in DRUM_LOOPS]
        if not self.paths:
            raise FileNotFoundError(f"{reg.id}: no drum loops installed")
        self.order = [int(i) for i in rng.permutation(len(self.paths))]
        self.speed = float(rng.uniform(0.92, 1.08))
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, reg, {"type": "real-drum-loop", "speed": round(self.speed, 3),
                                        "relation": "same loop set, another loop"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        x = A.change_speed(self._read(self.paths[self.order[k % len(self.paths)]]), self.speed)
        n = int(seconds * self.sr)
        if x.size == 0:
            return np.zeros(n, np.float32)
        off = int(rng.integers(0, x.size))
        y = np.tile(x, n // x.size + 2)[off: off + n]
        return A.fade(y.astype(np.float32), self.sr, 0.002, 0.05)


#: kit-piece names of hydrogen kits (file name without its layer number, lower case) -> GM pitch
_KIT_PIECES = (
    (r"^(bd|kick|bassdrum)", 36), (r"^(sn|sd|snare|jsnare|rsnare)", 38), (r"^(rim|stick|rs$|sr$)", 37),
    (r"^clap", 39), (r"^(hh_p|hihatfoot|pedalhihat|hhpedal)", 44), (r"^(ho$|hihatopen|openhat|hhopen)", 46),
    (r"^(hh|hihatclosed|closehihat|hhclosed)", 42), (r"^(rd|ride|rc)", 51), (r"^(crash|cra_|cc$|china|splash)", 49),
    (r"^(tom|tm|t\d|t$|ft|floortom)", 45),
)
#: GM drum pitches -> the kit piece they are played on (with fall-backs)
_GM_TO_PIECE = {35: (36,), 36: (36,), 38: (38,), 40: (38,), 37: (37, 38), 39: (39, 38), 42: (42,), 44: (44, 42),
                46: (46, 42), 49: (49, 51), 52: (49, 51), 55: (49, 51), 57: (49, 51), 51: (51, 42), 53: (51, 42),
                59: (51, 42), 41: (45,), 43: (45,), 45: (45,), 47: (45,), 48: (45,), 50: (45,)}


def kit_pieces(reg) -> dict[int, list[Path]]:
    """Files of a hydrogen kit by kit piece (GM pitch), layers sorted by name."""
    import re
    out: dict[int, dict[str, list[Path]]] = {}
    for p in real_files(reg):
        name = re.sub(r"[-_ ]*\d+$", "", p.stem).lower()
        for pat, pitch in _KIT_PIECES:
            if re.search(pat, name):
                out.setdefault(pitch, {}).setdefault(name, []).append(p)
                break
    # one instrument per piece (the first name, e.g. "hh" before "hh2"; a crash before a china or
    # splash); its velocity layers
    def first(pitch: int, names) -> str:
        return sorted(names, key=lambda n: (pitch == 49 and not n.startswith(("crash", "cra", "cc")), n))[0]
    return {pitch: sorted(groups[first(pitch, groups)]) for pitch, groups in out.items()}


def drum_kits(split: str) -> list:
    """Installed hydrogen kits of ``split`` with at least a kick, a snare and a hi-hat or ride."""
    return [s for s in real_pool("drums", split) if s.id.startswith("hydrogen-")
            and {36, 38} <= set(kit_pieces(s)) and ({42, 51} & set(kit_pieces(s)))]


class RealDrumKit(RecordingSource):
    """One real drum kit (hydrogen samples) playing a generated groove (the GM drum patterns of
    :func:`trainers.corpus.music.drum_notes`); excerpt k = bars k*n.. of the pattern."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, reg):
        self.pieces = kit_pieces(reg)
        num, den = M.choose(rng, [(4, 4), (4, 4), (4, 4), (3, 4), (6, 8), (2, 4), (12, 8)])
        self.meter = M.meter_of(num, den)
        self.bpm, self.qpm = M.draw_tempo(rng, self.meter, 70, 150)
        n_meas = int(40 * self.qpm / 60.0 / self.meter.measure_q) + 2
        measures = [[i * self.meter.measure_q, self.meter.measure_q, num, den] for i in range(n_meas)]
        qn, self.style = M.drum_notes(measures, rng)
        self.qnotes = [[n[0], n[1], n[2], n[3]] for n in qn]
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, reg, {"type": "real-drum-kit", "kit": reg.instrument, "style": self.style,
                                        "time_signature": f"{num}/{den}", "tempo_bpm": self.bpm,
                                        "relation": "same kit and groove, other bars"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        spq = 60.0 / self.qpm
        mq = self.meter.measure_q
        bars = max(1, int(np.ceil(WINDOW_S / (mq * spq))))
        s = k * bars * mq
        n = int(seconds * self.sr)
        y = np.zeros(n + self.sr, np.float32)
        for on, _, pitch, vel in window_notes(self.qnotes, s, s + seconds / spq):
            piece = next((p for p in _GM_TO_PIECE.get(int(pitch), ()) if p in self.pieces), None)
            if piece is None:
                continue
            layers = self.pieces[piece]
            # louder notes on later layers (assumed: layers numbered soft to loud), with a random neighbour
            li = min(len(layers) - 1, max(0, int(vel / 128 * len(layers)) + int(rng.integers(-1, 2))))
            x = self._read(layers[li])[: int(1.5 * self.sr)]
            a = int(on * spq * self.sr + rng.normal(0, 0.004) * self.sr)
            a = min(max(a, 0), n)
            e = min(y.size, a + x.size)
            y[a:e] += x[: e - a] * (vel / 127.0)
        return A.fade(y[:n], self.sr, 0.001, 0.05)


class RealMusicBed(RecordingSource):
    """Real music (game soundtracks, assumed instrumental) of one registry source; excerpt k = a
    stretch of file k of an order drawn per source, from a random point past the intro."""

    def __init__(self, cls: str, sr: int, rng: np.random.Generator, reg):
        self.paths = real_files(reg)
        self.order = [int(i) for i in rng.permutation(len(self.paths))]
        self.seed = int(rng.integers(2**31))
        super().__init__(cls, sr, reg, {"type": "real-music", "relation": "same soundtrack, another track"})

    def excerpt(self, k: int, seconds: float, ctx) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        for j in range(len(self.paths)):
            path = self.paths[self.order[(k + j) % len(self.paths)]]
            dur = _duration(str(path), "audio")
            if dur <= 1.0:
                continue
            lo = min(10.0, max(0.0, dur - seconds) * 0.2)
            off = float(rng.uniform(lo, max(lo, dur - seconds)))
            y = self._read(path, off, seconds)
            self.info.setdefault("offsets_s", []).append(round(off, 3))
            self.last = (str(path), round(off, 3))  # the file and offset of the latest excerpt
            if y.size and A.rms_db(y) > -50:
                return A.fade(A.fit_length(np.asarray(y, np.float32), int(seconds * self.sr)), self.sr, 0.05, 0.1)
        return np.zeros(int(seconds * self.sr), np.float32)


def real_music_bed(sr: int, rng: np.random.Generator, split: str) -> RealMusicBed | None:
    """A music bed of one installed real soundtrack source of ``split`` (None when none is)."""
    pool = real_pool("music", split)
    if not pool:
        log_fallback_once("music", split)
        return None
    return RealMusicBed("music", sr, rng, pool[int(rng.integers(len(pool)))])


def real_speech(cls: str, sr: int, rng: np.random.Generator, split: str,
                avoid: set[str] | frozenset = frozenset()) -> RealSpeech | None:
    """A real speaker of ``split`` other than those in ``avoid`` (None when none is installed)."""
    spk = [s for s in real_speakers(split) if s[0] not in avoid]
    if not spk:
        log_fallback_once("speech", split)
        return None
    return RealSpeech(cls, sr, rng, spk[int(rng.integers(len(spk)))])


def real_effect(cls: str, sr: int, rng: np.random.Generator, split: str, label: str) -> RealEffectFiles | None:
    """Recorded effects labelled ``label`` of ``split`` (None when none is installed)."""
    pool = real_pool("effect", split, label)
    if not pool:
        log_fallback_once(f"{label} effect", split)
        return None
    return RealEffectFiles(cls, sr, rng, pool[int(rng.integers(len(pool)))])


def real_drums(cls: str, sr: int, rng: np.random.Generator, split: str) -> Source | None:
    """Real drums of ``split``: a Sonic Pi drum loop set or a hydrogen kit playing a groove."""
    loops = [s for s in real_pool("drums", split) if s.id == "sonic-pi-loops"
             and any(p.stem in DRUM_LOOPS for p in real_files(s))]
    options = [("loops", s) for s in loops] + [("kit", s) for s in drum_kits(split)]
    if not options:
        log_fallback_once("drums", split)
        return None
    how, reg = options[int(rng.integers(len(options)))]
    return RealDrumLoops(cls, sr, rng, reg) if how == "loops" else RealDrumKit(cls, sr, rng, reg)


#: probability of a real recording (times ``ctx.real``) per class where one may be installed
REAL_P = {"speech": 0.5, "alarms": 0.5, "bells": 0.5, "noise": 0.5, "drums": 0.4}
#: effect label of the real recordings of a class
REAL_LABEL = {"alarms": "alarms", "bells": "bells", "noise": "ambience"}
