"""Synthetic voices (espeak-ng, flite, festival): spoken sentences, babble, and sung lines that
follow a melody.

Engines (each voice draws one, :func:`random_voice`; see :data:`ENGINE_P`): espeak-ng for every
language; for English also flite (CMU voices ``kal16``, ``awb``, ``rms``, ``slt``) and festival
(``kal_diphone``, ``cmu_us_slt_arctic_hts``), for Italian also festival (``lp_diphone``). An engine
that is not installed falls back to espeak-ng (one log line per process), so a seed renders the same
items wherever the same programs are installed. flite and festival voices are varied in pitch (flite:
its f0 target), tempo (duration stretch) and formants (the output resampled by ``formant``, which
moves formants, pitch and tempo together, like a longer or shorter vocal tract).

Sung lines are made syllable by syllable: espeak-ng speaks each lyric syllable with a flattened
pitch contour (SSML ``<prosody range="x-low">``); its f0 is tracked with YIN, and a
pitch-synchronous overlap-add (TD-PSOLA) resynthesis moves it to the note's pitch (with a small
scoop into the note and a delayed vibrato) while the vowel is stretched to the note's length and
the consonants keep their natural speed.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from . import audio as A
from .deps import find_espeak
from .texts import SCAT, SENTENCES, syllables, vowel_of

log = logging.getLogger(__name__)

ESPEAK_SR = 22050

#: espeak-ng language voices per text language.
LANG_VOICES: dict[str, list[str]] = {
    "en": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan"],
    "de": ["de"],
    "it": ["it"],
    "fr": ["fr-fr", "fr-be"],
    "es": ["es", "es-419"],
    "pt": ["pt", "pt-br"],
    "nl": ["nl"],
    "sv": ["sv"],
    "la": ["la"],
}
MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "adam", "david", "edward", "john", "max",
                 "paul", "robert", "steph", "iven", "gustave", "pablo", "marco", "boris"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5", "anika", "linda", "belinda", "aunty", "shelby",
                   "alicia", "annie", "grandma"]
#: Rarely used variants (hoarse, whispered): still speech, adds variety.
ODD_VARIANTS = ["croak", "whisperf", "klatt", "klatt2", "klatt3", "grandpa"]


#: Voices of the other engines: engine -> language -> gender -> voice names (flite ``-voice``;
#: festival voice functions without the ``voice_`` prefix).
ENGINE_VOICES: dict[str, dict[str, dict[str, list[str]]]] = {
    "flite": {"en": {"male": ["kal16", "awb", "rms"], "female": ["slt"]}},
    "festival": {"en": {"male": ["kal_diphone"], "female": ["cmu_us_slt_arctic_hts"]},
                 "it": {"male": ["lp_diphone"]}},
}
#: Chance of each engine for a voice whose language and gender it has voices for (the rest, and
#: every other voice, is espeak-ng). English male: flite 0.25, festival 0.2, espeak-ng 0.55.
ENGINE_P = {"flite": 0.25, "festival": 0.2}
#: Range of the formant (resampling) factor of flite and festival voices.
FORMANT_RANGE = (0.94, 1.06)
#: Debian package and licence (read in /usr/share/doc/PKG/copyright) of each engine's voice
#: (festival itself: CSTR's X11-style free licence; the lexicons festlex-cmu / -poslex are free,
#: festlex-ifd GPL-2; festlex-oald, non-commercial, is never installed).
VOICE_PACKAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("espeak-ng", ""): ("espeak-ng", "GPL-3+"),
    ("flite", ""): ("flite", "BSD-style (CMU Flite)"),
    ("festival", "kal_diphone"): ("festvox-kallpc16k", "BSD-style (CMU, CSTR)"),
    ("festival", "cmu_us_slt_arctic_hts"): ("festvox-us-slt-hts", "BSD-3-Clause and BSD-style (CSTR EST, HTS)"),
    ("festival", "lp_diphone"): ("festvox-italp16k", "GPL-2+"),
}
ENGINE_PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: language voice + variant (espeak-ng), pitch (0-99), speed (words/min),
    and the engine that speaks (``engine_voice`` its voice for flite/festival, ``formant`` the
    resampling factor applied to their output)."""

    lang: str
    voice: str
    variant: str
    pitch: int = 50
    speed: int = 160
    gender: str = "male"
    engine: str = "espeak-ng"
    engine_voice: str = ""
    formant: float = 1.0

    @property
    def name(self) -> str:
        """The ``-v`` argument of espeak-ng."""
        return f"{self.voice}+{self.variant}" if self.variant else self.voice

    def as_dict(self) -> dict:
        """JSON-friendly description (for metadata)."""
        d = {"lang": self.lang, "espeak_voice": self.name, "pitch": self.pitch,
             "speed": self.speed, "gender": self.gender, "engine": self.engine}
        if self.engine != "espeak-ng":
            d.update({"engine_voice": self.engine_voice, "formant": round(self.formant, 4)})
        return d


def engine_available(engine: str) -> bool:
    """Whether the program of ``engine`` is on PATH (espeak-ng is checked where it is used)."""
    return engine == "espeak-ng" or shutil.which(ENGINE_PROGRAMS[engine]) is not None


@functools.lru_cache(maxsize=None)
def _festival_has(voice: str) -> bool:
    return any(os.path.isdir(os.path.join(root, voice)) for root in
               ("/usr/share/festival/voices/english", "/usr/share/festival/voices/us",
                "/usr/share/festival/voices/italian"))


_FALLBACK_LOGGED: set[str] = set()


def source_of(voice: "Voice | dict"):
    """The manifest ``sources`` row of a synthetic voice (a :class:`Voice` or its ``as_dict``):
    path ``ENGINE:VOICE``, the package and licence of the voice, ``real: false``."""
    from ..data import Source

    d = voice.as_dict() if isinstance(voice, Voice) else dict(voice or {})
    engine = d.get("engine", "espeak-ng")
    ev = d.get("engine_voice", "") if engine != "espeak-ng" else d.get("espeak_voice", "")
    package, licence = VOICE_PACKAGES.get((engine, ev)) or VOICE_PACKAGES.get((engine, ""), (engine, "see docs/corpus.md"))
    return Source(f"{engine}:{ev}" if ev else engine, package, licence, False)


def random_voice(rng: np.random.Generator, lang: str | None = None, gender: str | None = None,
                 odd: float = 0.05) -> Voice:
    """Draw a speaker: language (English most often), variant, pitch and speed."""
    if lang is None:
        langs = ["en", "de", "it", "fr", "es", "pt", "nl", "sv"]
        w = np.array([0.45, 0.12, 0.1, 0.1, 0.1, 0.05, 0.04, 0.04])
        lang = langs[int(rng.choice(len(langs), p=w / w.sum()))]
    voices = LANG_VOICES.get(lang, [lang])
    voice = voices[int(rng.integers(len(voices)))]
    if gender is None:
        gender = "male" if rng.random() < 0.5 else "female"
    pool = MALE_VARIANTS if gender == "male" else FEMALE_VARIANTS
    if rng.random() < odd:
        pool = ODD_VARIANTS
    variant = pool[int(rng.integers(len(pool)))]
    pitch, speed = int(rng.integers(25, 76)), int(rng.integers(120, 200))
    # the engine: these draws are always made, so the stream does not depend on what is installed
    u, formant, pick = float(rng.random()), round(float(rng.uniform(*FORMANT_RANGE)), 3), int(rng.integers(1 << 30))
    engine, ev = "espeak-ng", ""
    if pool is not ODD_VARIANTS:
        lo = 0.0
        for eng, p in ENGINE_P.items():
            names = ENGINE_VOICES[eng].get(lang, {}).get(gender, [])
            if names and lo <= u < lo + p:
                engine, ev = eng, names[pick % len(names)]
            lo += p if names else 0.0
    if engine != "espeak-ng" and not (engine_available(engine) and (engine != "festival" or _festival_has(ev))):
        if f"{engine}:{ev}" not in _FALLBACK_LOGGED:
            _FALLBACK_LOGGED.add(f"{engine}:{ev}")
            log.info("%s voice %s is not installed; espeak-ng speaks instead (scripts/install_corpus_deps.sh)", engine, ev)
        engine, ev = "espeak-ng", ""
    if engine == "espeak-ng":
        return Voice(lang, voice, variant, pitch, speed, gender)
    return Voice(lang, voice, variant, pitch, speed, gender, engine, ev, formant)


def _run_tts(cmd: list[str], tmp: str, what: str) -> tuple[np.ndarray, int]:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if proc.returncode != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) < 64:
        raise RuntimeError(f"{what} failed: {proc.stderr.decode(errors='replace')[-300:]}")
    data, sr = sf.read(tmp, dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def _flite_f0(voice: "Voice") -> float:
    """flite's f0 target (Hz) for the voice's pitch 25-75: men 85-140 Hz, women 160-240 Hz."""
    return 85 + (voice.pitch - 25) * 1.1 if voice.gender == "male" else 160 + (voice.pitch - 25) * 1.6


def _engine_raw(texts: tuple[str, ...], voice: "Voice") -> list[np.ndarray]:
    """flite or festival speaking each of ``texts`` (one festival process for all of them), at
    ESPEAK_SR, the voice's formant factor applied."""
    stretch = round(160.0 / max(voice.speed, 60), 3)
    tmpdir = tempfile.mkdtemp(prefix=f"{voice.engine}-")
    outs: list[tuple[np.ndarray, int]] = []
    try:
        if voice.engine == "flite":
            for i, text in enumerate(texts):
                tmp = os.path.join(tmpdir, f"{i}.wav")
                outs.append(_run_tts([shutil.which("flite") or "flite", "-voice", voice.engine_voice,
                                      "--setf", f"int_f0_target_mean={_flite_f0(voice):.1f}",
                                      "--setf", f"duration_stretch={stretch}", "-t", text, "-o", tmp], tmp, "flite"))
        else:
            q = lambda t: t.replace("\\", " ").replace('"', " ")  # noqa: E731
            lines = [f"(voice_{voice.engine_voice})", f"(Parameter.set 'Duration_Stretch {stretch})"]
            lines += [f'(utt.save.wave (utt.synth (Utterance Text "{q(t)}")) "{os.path.join(tmpdir, f"{i}.wav")}" \'riff)'
                      for i, t in enumerate(texts)]
            script = os.path.join(tmpdir, "say.scm")
            with open(script, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            proc = subprocess.run([shutil.which("festival") or "festival", "-b", script], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=300)
            for i in range(len(texts)):
                tmp = os.path.join(tmpdir, f"{i}.wav")
                if not os.path.isfile(tmp):
                    raise RuntimeError(f"festival failed: {proc.stderr.decode(errors='replace')[-300:]}")
                data, sr = sf.read(tmp, dtype="float32", always_2d=True)
                outs.append((data.mean(axis=1), sr))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    # played `formant` times faster: every frequency (formants, pitch) scales by `formant`
    return [A.change_speed(A.resample(x, sr, ESPEAK_SR), voice.formant).astype(np.float32) for x, sr in outs]


_ENGINE_CACHE: dict[tuple, np.ndarray] = {}


def _engine_cached(texts: tuple[str, ...], voice: "Voice") -> list[np.ndarray]:
    """:func:`_engine_raw` with a per-process cache (texts already spoken are not synthesised again)."""
    todo = tuple(dict.fromkeys(t for t in texts if (t, voice) not in _ENGINE_CACHE))
    if todo:
        if len(_ENGINE_CACHE) > 8192:
            _ENGINE_CACHE.clear()
        for t, x in zip(todo, _engine_raw(todo, voice)):
            x.setflags(write=False)
            _ENGINE_CACHE[(t, voice)] = x
    return [_ENGINE_CACHE[(t, voice)] for t in texts]


def _espeak_raw(text: str, voice: str, pitch: int, speed: int, ssml: bool, amplitude: int = 100) -> np.ndarray:
    exe = find_espeak()
    fd, tmp = tempfile.mkstemp(suffix=".wav", prefix="espeak-")
    os.close(fd)
    try:
        cmd = [exe, "-v", voice, "-p", str(int(pitch)), "-s", str(int(speed)), "-a", str(amplitude),
               "-z", "-w", tmp]
        if ssml:
            cmd.append("-m")
        cmd.append(text)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {proc.stderr.decode(errors='replace')[-300:]}")
        data, sr = sf.read(tmp, dtype="float32", always_2d=True)
    finally:
        os.unlink(tmp)
    x = data.mean(axis=1)
    if sr != ESPEAK_SR:
        x = A.resample(x, sr, ESPEAK_SR)
    return x


@functools.lru_cache(maxsize=4096)
def _espeak_cached(text: str, voice: str, pitch: int, speed: int, ssml: bool) -> np.ndarray:
    x = _espeak_raw(text, voice, pitch, speed, ssml)
    x.setflags(write=False)
    return x


def speak(text: str, voice: Voice, sr: int = ESPEAK_SR) -> np.ndarray:
    """Speak ``text`` with ``voice``; return mono float32 at ``sr`` (silence trimmed)."""
    if voice.engine != "espeak-ng":
        x = _engine_cached((text,), voice)[0]
    else:
        x = _espeak_cached(text, voice.name, voice.pitch, voice.speed, False)
    x = A.trim_silence(np.array(x), -45.0, ESPEAK_SR)
    return A.resample(x, ESPEAK_SR, sr)


def sentences_for(lang: str, rng: np.random.Generator, n: int, extra: list[str] | None = None) -> list[str]:
    """``n`` different sentences in ``lang`` (English if the language has none)."""
    pool = list(SENTENCES.get(lang) or SENTENCES["en"])
    if extra:
        pool += extra
    idx = rng.permutation(len(pool))[:n]
    return [pool[i] for i in idx]


def speech_line(voice: Voice, rng: np.random.Generator, min_seconds: float, sr: int,
                max_seconds: float | None = None, extra: list[str] | None = None,
                exclude: set[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Sentences by ``voice`` joined with short pauses until at least ``min_seconds`` long."""
    pool = [s for s in sentences_for(voice.lang, rng, 200, extra) if not exclude or s not in exclude]
    chunks: list[np.ndarray] = []
    said: list[str] = []
    total = 0.0
    for text in pool:
        x = speak(text, voice, sr)
        if x.size == 0:
            continue
        chunks.append(x)
        said.append(text)
        total += x.size / sr
        if total >= min_seconds:
            break
        gap = np.zeros(int(rng.uniform(0.15, 0.5) * sr), dtype=np.float32)
        chunks.append(gap)
        total += gap.size / sr
    y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if max_seconds is not None:
        y = A.fade(y[: int(max_seconds * sr)], sr)
    return y.astype(np.float32), said


def babble(rng: np.random.Generator, seconds: float, sr: int, n_voices: int = 3) -> tuple[np.ndarray, list[dict]]:
    """Several espeak speakers (English, German, Italian, ...) talking at once."""
    n = int(seconds * sr)
    out = np.zeros(n, dtype=np.float32)
    who = []
    for k in range(n_voices):
        v = random_voice(rng, lang=["en", "de", "it", "fr", "es"][int(rng.integers(5))])
        x, _ = speech_line(v, rng, seconds + 1.0, sr)
        off = int(rng.integers(0, max(1, x.size - n))) if x.size > n else 0
        seg = A.fit_length(x[off:], n)
        r = A.rms(seg)
        if r > 0:
            out += seg * (A.db_to_gain(rng.uniform(-6, 0)) / r) * 0.1
        who.append(v.as_dict())
    return out, who


# ---------------------------------------------------------------------------------------------
# Singing


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _flat_syllable(syl: str, voice: Voice) -> np.ndarray:
    """espeak-ng speaking one syllable with a flattened contour (22050 Hz, trimmed); flite and
    festival voices speak it plainly (the pitch-synchronous resynthesis sets the pitch anyway)."""
    if voice.engine != "espeak-ng":
        return A.trim_silence(np.array(_engine_cached((syl,), voice)[0]), -40.0, ESPEAK_SR)
    ssml = f'<speak><prosody range="x-low">{_escape(syl)}</prosody></speak>'
    x = np.array(_espeak_cached(ssml, voice.name, voice.pitch, voice.speed, True))
    return A.trim_silence(x, -40.0, ESPEAK_SR)


@functools.lru_cache(maxsize=2048)
def _analyse(syl: str, voice: Voice) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Analysis of a sung espeak-ng syllable (see :func:`analyse_signal`)."""
    return analyse_signal(_flat_syllable(syl, voice))


def analyse_signal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Analysis of one syllable or word (22050 Hz): signal, pitch marks, periods, voiced-core start/end."""
    import librosa

    x = np.asarray(x, dtype=np.float32)
    sr = ESPEAK_SR
    if x.size < 1024:
        x = np.pad(x, (0, 1024 - x.size))
    hop = 128
    f0 = librosa.yin(x.astype(np.float64), fmin=65.0, fmax=600.0, sr=sr, frame_length=1024,
                     hop_length=hop, center=True)
    fr = librosa.feature.rms(y=x, frame_length=512, hop_length=hop, center=True)[0][: f0.size]
    f0 = f0[: fr.size]
    voiced = fr > 0.25 * fr.max()
    med = float(np.median(f0[voiced])) if voiced.any() else 150.0
    # reject octave errors / unvoiced frames
    good = voiced & (f0 > med / 1.6) & (f0 < med * 1.6)
    if good.any():
        idx = np.nonzero(good)[0]
        a, b = idx[0] * hop, min(x.size, (idx[-1] + 1) * hop)
    else:
        a, b = 0, x.size
    f0s = np.where(good, f0, med)
    # pitch marks, one period apart
    marks, periods = [], []
    t = 0.0
    while t < x.size:
        fi = f0s[min(f0s.size - 1, int(t / hop))]
        p = sr / float(fi)
        marks.append(int(t))
        periods.append(int(max(20, round(p))))
        t += p
    return x.astype(np.float32), np.array(marks), np.array(periods), int(a), int(b)


def sing_note(syl: str, voice: Voice, midi: float, dur: float, rng: np.random.Generator,
              vibrato_cents: float = 30.0, vibrato_hz: float = 5.5, scoop: bool = True) -> np.ndarray:
    """One sung note: syllable ``syl`` at MIDI pitch ``midi`` lasting ``dur`` seconds (22050 Hz)."""
    return sing_analysed(_analyse(syl, voice), midi, dur, rng, vibrato_cents, vibrato_hz, scoop)


def sing_analysed(analysis: tuple, midi: float, dur: float, rng: np.random.Generator,
                  vibrato_cents: float = 30.0, vibrato_hz: float = 5.5, scoop: bool = True) -> np.ndarray:
    """One sung note from an :func:`analyse_signal` analysis: pitch-synchronous overlap-add locks the
    voiced core to ``midi`` (with vibrato and a small scoop) and stretches it to ``dur`` s (22050 Hz)."""
    sr = ESPEAK_SR
    x, marks, periods, a, b = analysis
    n_out = max(int(dur * sr), 64)
    ls = x.size
    onset, coda = a, ls - b
    core_out = n_out - onset - coda
    # output sample -> input sample
    u = np.arange(n_out, dtype=np.float64)
    if core_out < 0.3 * n_out or b - a < 64:
        tin = u * (ls / n_out) if n_out > ls else u.copy()
        if n_out < ls:  # short note: keep natural speed, cut the coda
            tin = np.minimum(u, ls - 1)
    else:
        tin = np.where(u < onset, u,
                       np.where(u < onset + core_out, a + (u - onset) * ((b - a) / core_out),
                                b + (u - onset - core_out)))
    tin = np.clip(tin, 0, ls - 1)
    f_note = 440.0 * 2 ** ((midi - 69) / 12.0)
    tt = u / sr
    cents = vibrato_cents * np.sin(2 * np.pi * vibrato_hz * tt + rng.uniform(0, 2 * np.pi)) \
        * np.clip((tt - 0.15) / 0.2, 0.0, 1.0)
    if scoop:
        cents = cents - 40.0 * np.exp(-tt / 0.04)
    f_out = f_note * 2 ** (cents / 1200.0)
    maxp = int(periods.max()) + 2
    y = np.zeros(n_out + 2 * maxp + int(sr / f_out.min()) + 2, dtype=np.float64)
    pos = 0.0
    while pos < n_out:
        i = int(pos)
        j = int(np.searchsorted(marks, tin[i]))
        if j >= marks.size or (j > 0 and tin[i] - marks[j - 1] < marks[j] - tin[i]):
            j -= 1
        j = max(0, min(marks.size - 1, j))
        c, p = int(marks[j]), int(periods[j])
        lo, hi = c - p, c + p
        grain = np.zeros(2 * p)
        s0, s1 = max(0, lo), min(ls, hi)
        grain[s0 - lo: s1 - lo] = x[s0:s1]
        grain *= np.hanning(2 * p)
        start = i - p + maxp
        y[start: start + 2 * p] += grain
        pos += sr / f_out[i]
    y = y[maxp: maxp + n_out]
    src = A.rms(x[a:b]) if b > a else A.rms(x)
    r = A.rms(y)
    if r > 0:
        y *= src / r
    return A.fade(y.astype(np.float32), sr, 0.008, min(0.04, dur / 4))


def choose_lang(rng: np.random.Generator) -> str:
    """A language for songs without lyrics (English most often)."""
    langs = ["en", "de", "it", "fr", "es", "pt", "nl", "sv"]
    w = np.array([0.45, 0.15, 0.12, 0.1, 0.1, 0.04, 0.02, 0.02])
    return langs[int(rng.choice(len(langs), p=w / w.sum()))]


def lyric_syllables(notes: list[list], lang: str | None, rng: np.random.Generator,
                    fallback_lang: str | None = None) -> tuple[list[str], str]:
    """A syllable per note: the score's lyrics where present (``lang`` is their language; melisma
    notes hold the vowel), else syllables of sentences in ``fallback_lang`` (or ``lang``) or scat
    syllables. Returns (syllables, source)."""
    have = [n[3] for n in notes]
    if lang and sum(1 for h in have if h) >= max(2, len(notes) // 3):
        out: list[str] = []
        last = "a"
        for h in have:
            if h:
                syl = h.replace("'", "").split()[0] if h.split() else h
                out.append(syl)
                last = syl
            else:
                out.append(vowel_of(last))
        return out, "score-lyrics"
    if rng.random() < 0.3:
        return [SCAT[int(rng.integers(len(SCAT)))] for _ in notes], "scat"
    lang = fallback_lang or lang or "en"
    syls: list[str] = []
    for text in sentences_for(lang, rng, 50):
        syls.extend(syllables(text))
        if len(syls) >= len(notes):
            break
    while len(syls) < len(notes):
        syls.append(SCAT[int(rng.integers(len(SCAT)))])
    return syls[: len(notes)], "sentence-syllables"


def sing_line(notes: list[tuple[float, float, int, str]], voice: Voice, total: float, sr: int,
              rng: np.random.Generator, legato: float = 0.95) -> np.ndarray:
    """Sing ``notes`` ``(start_s, dur_s, midi, syllable)`` into a track of ``total`` seconds at ``sr``."""
    out = np.zeros(int(total * ESPEAK_SR) + ESPEAK_SR, dtype=np.float32)
    vib = float(rng.uniform(15, 45))
    vib_hz = float(rng.uniform(4.8, 6.2))
    if voice.engine == "festival":  # one festival process for the whole line's syllables
        _engine_cached(tuple(dict.fromkeys(syl or "a" for *_, syl in notes)), voice)
    for start, dur, midi, syl in notes:
        d = max(0.08, dur * legato)
        y = sing_note(syl or "a", voice, midi, d, rng, vib, vib_hz)
        s = int(start * ESPEAK_SR)
        e = min(out.size, s + y.size)
        if e > s:
            out[s:e] += y[: e - s]
    out = out[: int(total * ESPEAK_SR)]
    return A.resample(out, ESPEAK_SR, sr)


def sing_words(notes: list[tuple[float, float, int]], words: list[np.ndarray], total: float, sr: int,
               rng: np.random.Generator, legato: float = 0.95) -> np.ndarray:
    """Sing ``notes`` ``(start_s, dur_s, midi)`` with recorded ``words`` (22050 Hz, used in turn as the
    syllables: real voices pitch-locked to the melody) into a track of ``total`` seconds at ``sr``."""
    out = np.zeros(int(total * ESPEAK_SR) + ESPEAK_SR, dtype=np.float32)
    if not words:
        return A.resample(out[: int(total * ESPEAK_SR)], ESPEAK_SR, sr)
    analyses = [analyse_signal(w) for w in words]
    vib = float(rng.uniform(15, 45))
    vib_hz = float(rng.uniform(4.8, 6.2))
    for k, (start, dur, midi) in enumerate(notes):
        y = sing_analysed(analyses[k % len(analyses)], midi, max(0.08, dur * legato), rng, vib, vib_hz)
        s = int(start * ESPEAK_SR)
        e = min(out.size, s + y.size)
        if e > s:
            out[s:e] += y[: e - s]
    return A.resample(out[: int(total * ESPEAK_SR)], ESPEAK_SR, sr)
