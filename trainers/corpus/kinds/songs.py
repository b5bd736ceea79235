"""``songs/``: MUSDB18-HQ-style songs for the vocal-isolation trainer (44.1 kHz).

``songs/song_NNNNN/`` holds ``mixture.wav``, ``vocals.wav``, ``accompaniment.wav`` and the finer
stems ``drums.wav``, ``bass.wav``, ``other.wav`` (16-bit PCM). The stems are quantised first and
every sum is an integer sum, so after reading: ``mixture == vocals + accompaniment`` and
``accompaniment == drums + bass + other`` exactly. ``meta.json`` has the score source, tempo, key,
instruments, vocal sections and note lists.

Vocals come in two sections (40-70 % of the bars): espeak-ng sung lyrics, GM choir aahs / voice
oohs / synth voice on the melody, or spoken lines; an instrument may play the melody in the gaps
(it belongs to the accompaniment). The vocal-to-accompaniment ratio over vocal-active samples is
drawn from U(-3, +4) dB.

Real recordings (``ctx.real``, :mod:`trainers.corpus.real_sources`): a spoken section is a real
speaker with p 0.5 (one speaker per song), a sung section is sung with p 0.4 by that speaker's
recorded words, pitch-locked to the melody and stretched to the notes (as the bench's sung vocals
are made from espeak-ng syllables; :func:`trainers.corpus.voices.sing_words`), and with p 0.25 the accompaniment is a real music bed
(a soundtrack excerpt) in the ``other`` stem with ``drums``/``bass`` silent (``meta.json``
``"accompaniment": "real-bed"``), so both sums stay exact. Items with ``index % 10 == 9`` are dev
items and use only dev sources (:func:`trainers.corpus.kinds.base.item_split`).
"""
from __future__ import annotations

import logging

import numpy as np

from .. import audio as A
from .. import effects as E
from .. import voices as V
from ...data import SongRow
from .. import provenance as P
from ..arrange import arrange, melody_track, notes_json
from ..music import fit_octave
from ..synth import Track, render
from ..sources import real_music_bed, real_speech, want_real
from .base import Context, ItemFolder, Kind, item_rng, item_split, random_synth_settings, write_json

log = logging.getLogger(__name__)

SONG_POOLS = {"chorale": 0.28, "folk": 0.22, "fiddle": 0.14, "quartet": 0.1, "madrigal": 0.14, "keys": 0.12}
VOCAL_KINDS = {"sung": 0.45, "choir_aahs": 0.14, "voice_oohs": 0.12, "synth_voice": 0.05, "spoken": 0.24}
VOCAL_PROGRAMS = {"choir_aahs": 52, "voice_oohs": 53, "synth_voice": 54}
STEMS = ["vocals", "drums", "bass", "other"]
#: probability (times ``ctx.real``) that a spoken section is a real speaker / the accompaniment a real bed
REAL_SPOKEN_P = 0.5
#: probability (times ``ctx.real``) that a sung section is sung by a real speaker's recorded words
REAL_SUNG_P = 0.4
REAL_BED_P = 0.25


def _sections(n_meas: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Two vocal sections ``[first, last)`` in measures covering ~40-70 % of ``n_meas``."""
    n_voc = int(round(rng.uniform(0.4, 0.7) * n_meas))
    n_voc = min(max(2, n_voc), n_meas - 1)
    n1 = int(rng.integers(1, n_voc)) if n_voc > 1 else 1
    n2 = n_voc - n1
    free = n_meas - n_voc
    g0 = int(rng.integers(0, free + 1))
    g1 = int(rng.integers(0, free - g0 + 1)) if n2 > 0 else 0
    if n2 > 0 and g1 == 0 and free - g0 > 0:
        g1 = 1
    s1 = (g0, g0 + n1)
    out = [s1]
    if n2 > 0:
        out.append((s1[1] + g1, s1[1] + g1 + n2))
    return [s for s in out if s[1] <= n_meas and s[1] > s[0]]


class Songs(Kind):
    """Songs with vocals for the vocal-isolation trainer."""

    name = "songs"
    sr = 44100
    bytes_per_second = 6 * 88200
    cost_per_second = 0.14

    def plan(self, seed: int, index: int) -> dict:
        rng = item_rng(seed, self.name, index, 0)
        return {"seconds": round(float(rng.uniform(20.0, 35.0)), 3)}

    def rel_path(self, index: int, plan: dict) -> str:
        return f"song_{index:05d}"

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        rng = item_rng(ctx.seed, self.name, index, 1)
        sr = self.sr
        ref, piece = ctx.library.draw(rng, SONG_POOLS)
        arr = arrange(piece, rng, plan["seconds"], ctx.presets, bpm_range=(66, 132), drums_p=0.75)
        total = arr.length_s + 1.0
        n = int(round(total * sr))
        settings = random_synth_settings(rng)
        meas = arr.measures
        secs = _sections(len(meas), rng)
        spq = arr.spq

        def span_s(sec: tuple[int, int]) -> tuple[float, float]:
            a = meas[sec[0]][0] * spq
            last = meas[sec[1] - 1]
            return a, (last[0] + last[1]) * spq

        # vocal register and singer (one singer per song)
        mel_pitches = [n_[2] for n_ in arr.melody_q] or [67]
        female = (np.median(mel_pitches) >= 62) == (rng.random() < 0.8)
        lang = piece.get("lyric_lang") or V.choose_lang(rng)
        singer = V.random_voice(rng, lang=lang, gender="female" if female else "male", odd=0.0)
        center = 67 if female else 55
        vshift = fit_octave(mel_pitches, center - 10, center + 10)

        vocals = np.zeros(n, np.float32)
        vocal_tracks: list[Track] = []
        voc_mask = np.zeros(n, bool)
        sections_meta = []
        gap_melody: list[list] = []
        in_vocal = np.zeros(len(arr.melody_q), bool)
        split = item_split(index)
        real_sources: list = []
        real_speaker = None  # one real speaker per song, drawn at its first real spoken section
        real_vocal_s = 0.0
        for k_sec, sec in enumerate(secs):
            a, b = span_s(sec)
            qa, qb = meas[sec[0]][0], meas[sec[1] - 1][0] + meas[sec[1] - 1][1]
            idx = [i for i, n_ in enumerate(arr.melody_q) if qa - 1e-6 <= n_[0] < qb - 1e-6]
            for i in idx:
                in_vocal[i] = True
            qn = [arr.melody_q[i] for i in idx]
            vk = list(VOCAL_KINDS)[int(rng.choice(len(VOCAL_KINDS), p=np.array(list(VOCAL_KINDS.values()))))]
            if not qn and vk != "spoken":
                vk = "spoken"
            info = {"start": round(a, 4), "end": round(b, 4), "kind": vk, "measures": list(sec)}
            words = None
            if vk == "sung" and want_real(rng, REAL_SUNG_P, ctx) and (
                    real_speaker is not None or (real_speaker := real_speech("speech", sr, rng, split)) is not None):
                words = real_speaker.words()
            if words:  # real sung: the speaker's recorded words, pitch-locked to the melody
                notes = [(n_[0] * spq - a, n_[1] * spq, n_[2] + vshift) for n_ in qn]
                y = V.sing_words(notes, words, b - a + 0.3, sr, rng, legato=float(rng.uniform(0.9, 0.99)))
                s0 = int(a * sr)
                e0 = min(n, s0 + y.size)
                vocals[s0:e0] += y[: e0 - s0]
                real_vocal_s += (e0 - s0) / sr
                info.update({"real": True, "singer": {"speaker": real_speaker.speaker,
                                                       "real_source": real_speaker.reg.id, "words": len(words)},
                             "notes": [[round(x[0] + a, 4), round(x[0] + a + x[1], 4), int(x[2])] for x in notes]})
            elif vk == "sung":
                syls, src = V.lyric_syllables(qn, piece.get("lyric_lang"), rng, fallback_lang=lang)
                notes = [(n_[0] * spq - a, n_[1] * spq, n_[2] + vshift, s) for n_, s in zip(qn, syls)]
                y = V.sing_line(notes, singer, b - a + 0.3, sr, rng, legato=float(rng.uniform(0.9, 0.99)))
                s0 = int(a * sr)
                e0 = min(n, s0 + y.size)
                vocals[s0:e0] += y[: e0 - s0]
                info.update({"singer": singer.as_dict(), "lyrics": src,
                             "syllables": " ".join(syls)[:400],
                             "notes": [[round(x[0] + a, 4), round(x[0] + a + x[1], 4), int(x[2])] for x in notes]})
            elif vk == "spoken" and want_real(rng, REAL_SPOKEN_P, ctx) and (
                    real_speaker is not None or (real_speaker := real_speech("speech", sr, rng, split)) is not None):
                y = real_speaker.excerpt(k_sec, b - a, ctx)
                s0 = int(a * sr)
                e0 = min(n, s0 + y.size)
                vocals[s0:e0] += y[: e0 - s0]
                real_vocal_s += (e0 - s0) / sr
                info.update({"real": True, "speaker": {"speaker": real_speaker.speaker,
                                                        "real_source": real_speaker.reg.id},
                             "seconds": round((e0 - s0) / sr, 4)})
            elif vk == "spoken":
                speaker = V.random_voice(rng, lang=lang if lang != "la" else "en")
                y, said = V.speech_line(speaker, rng, (b - a) * 0.8, sr, max_seconds=b - a)
                s0 = int(a * sr)
                e0 = min(n, s0 + y.size)
                vocals[s0:e0] += y[: e0 - s0]
                info.update({"speaker": speaker.as_dict(), "text": " ".join(said)})
            else:
                prog = VOCAL_PROGRAMS[vk]
                if (0, prog) not in ctx.presets:
                    prog = 52
                tr = melody_track(arr, rng, ctx.presets, qnotes=qn, program=prog, stem="vocals", role=vk)
                if tr is not None:
                    vocal_tracks.append(tr)
                    info["program"] = prog
            voc_mask[int(a * sr): int(b * sr)] = True
            sections_meta.append(info)
        if vocal_tracks:
            vocals += render(vocal_tracks, total, sr, ctx.soundfont, settings)
        # melody on an instrument in the gaps (part of the accompaniment)
        lead_meta = None
        bed = real_music_bed(sr, rng, split) if want_real(rng, REAL_BED_P, ctx) else None
        if bed is None and rng.random() < 0.5:
            gap_melody = [n_ for n_, v in zip(arr.melody_q, in_vocal) if not v]
            tr = melody_track(arr, rng, ctx.presets, qnotes=gap_melody, stem="other", role="melody-in-gaps")
            if tr is not None:
                arr.stems["other"].append(tr)
                lead_meta = tr.program
        stems = {"vocals": vocals}
        if bed is not None:  # a real music bed is the whole accompaniment: in "other", drums and bass silent
            stems["drums"] = np.zeros(n, np.float32)
            stems["bass"] = np.zeros(n, np.float32)
            stems["other"] = A.fit_length(bed.excerpt(0, total, ctx), n)
            real_sources += P.of_info(bed.info, ctx.soundfont)
        else:
            for st in ("drums", "bass", "other"):
                stems[st] = render(arr.stems.get(st, []), total, sr, ctx.soundfont, settings)
        # the production chain, per stem (the mixture is their sum below, so sums stay exact)
        stems, effects = E.process_stems(stems, {st: st for st in STEMS}, sr, item_rng(ctx.seed, self.name, index, 2),
                                         stereo=ctx.stereo, strength=ctx.effects)
        vocals = stems["vocals"]
        acc = stems["drums"] + stems["bass"] + stems["other"]
        # vocal-to-accompaniment ratio over vocal-active samples
        active = voc_mask & A.active_mask(vocals, sr, -35.0)
        if not active.any():
            active = voc_mask
        var_db = float(rng.uniform(-3.0, 4.0))
        rv, ra = A.rms(vocals, active), A.rms(acc, active)
        if rv > 0 and ra > 0:
            stems["vocals"] = (vocals * (A.db_to_gain(var_db) * ra / rv)).astype(np.float32)
        elif rv > 0:
            stems["vocals"] = A.normalize_rms(vocals, -20)
        stems, _ = _quantize(stems, float(rng.uniform(0.5, 0.95)))
        acc_i = stems["drums"] + stems["bass"] + stems["other"]
        mix_i = stems["vocals"] + acc_i
        rel = self.rel_path(index, plan)
        with ItemFolder(ctx.root / self.name / rel) as tmp:
            for st in STEMS:
                A.write_pcm16(tmp / f"{st}.wav", stems[st], sr)
            A.write_pcm16(tmp / "accompaniment.wav", acc_i, sr)
            A.write_pcm16(tmp / "mixture.wav", mix_i, sr)
            vf = stems["vocals"].astype(np.float64)
            af = acc_i.astype(np.float64)
            var_meas = 20 * np.log10((A.rms(vf, active) + 1e-9) / (A.rms(af, active) + 1e-9))
            meta = {
                "id": rel, "sr": sr, "seconds": round(n / sr, 4), "channels": 1,
                **arr.meta(),
                "vocals": {"sections": sections_meta, "var_db_target": round(var_db, 3),
                           "var_db_active": round(float(var_mask_safe(var_meas)), 3),
                           "fraction": round(float(voc_mask.mean()), 3)},
                "melody_in_gaps_program": lead_meta,
                "accompaniment": "real-bed" if bed is not None else "render",
                "real_bed": bed.info if bed is not None else None,
                "real_vocal_seconds": round(real_vocal_s, 4),
                "notes": {st: ([] if bed is not None else notes_json(arr.stems.get(st, [])))
                          for st in ("drums", "bass", "other")} | {"vocals_gm": notes_json(vocal_tracks)},
                "stems": STEMS + ["accompaniment", "mixture"],
                "effects": effects,
            }
            write_json(tmp / "meta.json", meta)
        kinds = sorted({s["kind"] for s in sections_meta})
        if real_speaker is not None:
            real_sources = P.of_info(real_speaker.info, ctx.soundfont) + real_sources
        rendered = bed is None or bool(vocal_tracks)
        sources = ([P.soundfont(ctx.soundfont)] if rendered else []) + [P.score(arr.source)]
        sources += [V.source_of(s.get("singer") or s.get("speaker")) for s in sections_meta  # engine + voice
                    if s["kind"] in ("sung", "spoken") and not s.get("real")]
        sources = P.merge(sources, real_sources)
        return SongRow(id=rel, index=index, path=rel, sr=sr, seconds=round(n / sr, 4), sources=sources,
                       effects=effects, stems=list(STEMS), split=split,
                       info={"source": arr.source, "pool": arr.pool, "tempo_bpm": arr.bpm, "key": arr.key["name"],
                             "time_signature": f"{arr.meter.num}/{arr.meter.den}", "vocal_kinds": kinds,
                             "var_db": round(var_db, 3), "has_drums": bed is None and bool(arr.stems.get("drums")),
                             "accompaniment": "real-bed" if bed is not None else "render",
                             "real_vocal_seconds": round(real_vocal_s, 4)}).to_json()

    def is_complete(self, kind_dir, row) -> bool:
        d = kind_dir / row["path"]
        return all((d / f).is_file() for f in ("mixture.wav", "vocals.wav", "accompaniment.wav", "meta.json"))


def var_mask_safe(x: float) -> float:
    """Finite version of a dB value (silent sections give -inf)."""
    return float(x) if np.isfinite(x) else -120.0


def _quantize(stems: dict[str, np.ndarray], peak_target: float) -> tuple[dict[str, np.ndarray], float]:
    """Common gain so the mixture, the accompaniment and every stem peak below ``peak_target``."""
    acc = stems["drums"] + stems["bass"] + stems["other"]
    mix = acc + stems["vocals"]
    big = max([A.peak(mix), A.peak(acc)] + [A.peak(s) for s in stems.values()])
    gain = peak_target / big if big > 0 else 1.0
    return {k: A.quantize(v * gain) for k, v in stems.items()}, gain
