"""Sound sources of the 14 classes, able to give several *different* excerpts of one source.

A source is one speaker, one instrument playing one tune, one drum kit and groove, one family of
recorded effects, ... ``excerpt(k, seconds)`` returns excerpt number ``k``: different ``k`` give
different content of the same source (another sentence of the same voice, other bars of the same
tune on the same instrument, another file of the same kind). The clips kind uses excerpt 0; the
query kind uses excerpts 0..n-1 as target events and excerpt n as the query.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

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

def make_source(cls: str, sr: int, rng: np.random.Generator, ctx) -> Source:
    """Draw a source of class ``cls`` (``ctx``: the render context, for scores and the soundfont)."""
    presets = ctx.presets

    def prog_from(progs: list[int]) -> int:
        ok = [p for p in progs if (0, p) in presets] or progs
        return M.choose(rng, ok)

    if cls == "speech":
        if rng.random() < 0.25 and S.speech_files():
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
        if rng.random() < 0.4 and S.class_files("bells"):
            return FileSound(cls, sr, rng)
        return GMEffect(cls, sr, rng, prog_from(CLASS_PROGRAMS["bells"]), "bells")
    if cls == "alarms":
        r = rng.random()
        if r < 0.45 and S.class_files("alarms"):
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
        if r < 0.85:
            name = M.choose(rng, list(NOISE_PROGRAMS))
            src = GMEffect(cls, sr, rng, prog_from([NOISE_PROGRAMS[name]]), "ambience")
            src.info["ambience"] = name
            return src
        return FileSound(cls, sr, rng)
    raise ValueError(f"unknown class {cls!r}")
