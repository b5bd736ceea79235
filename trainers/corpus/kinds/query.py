"""``query/``: (mixture, query, target) triples for the query-by-example separator (16 kHz, 10 s).

``query/q_NNNNN/`` holds ``mix.wav``, ``target.wav``, ``background.wav`` (``mix = target +
background`` exactly: both are scaled together, quantised, and the mix is their integer sum),
``query.wav`` (1.5-3.5 s: the same source, a *different* excerpt - another sentence of the same
voice, other bars of the same tune on the same instrument, another file of the same effect kind)
and ``meta.json`` (class, events in seconds, target-to-background ratio over the event samples
``tbr_db_active`` drawn from U(-5, +5) dB, ``tbr_db_global``, source and background descriptions).
"""
from __future__ import annotations

import logging

import numpy as np

from .. import CLASSES
from .. import audio as A
from .. import effects as E
from .. import voices as V
from ..arrange import arrange, melody_track
from ...data import QueryRow
from .. import provenance as P
from ..sources import (CLASS_AVOID, NOISE_PROGRAMS, GMEffect, NoiseSound, RealSpeech, make_source, real_effect,
                       real_music_bed, real_speakers, want_real)
from ..synth import render
from .base import Context, ItemFolder, Kind, item_rng, item_split, random_synth_settings, write_json

log = logging.getLogger(__name__)

#: production-chain role of each target class (trainers/corpus/effects.py)
EFFECT_ROLE = {"speech": "speech", "singing": "vocals", "drums": "drums", "bass": "bass", "bells": "effect",
               "alarms": "effect", "birds": "effect"}
#: Probability of each target class (noise is background only).
TARGET_WEIGHTS: dict[str, float] = {
    "speech": 0.26, "singing": 0.08, "piano": 0.05, "strings": 0.05, "winds": 0.05, "brass": 0.05,
    "guitar": 0.05, "bass": 0.04, "organ": 0.04, "drums": 0.05, "bells": 0.09, "alarms": 0.09,
    "birds": 0.1,
}
MUSIC_POOLS = {"chorale": 0.25, "quartet": 0.15, "fiddle": 0.2, "folk": 0.2, "keys": 0.1, "madrigal": 0.1}
SECONDS = 10.0
#: target classes under which a real music bed may play (soundtracks may hold any instrument)
REAL_BED_TARGETS = {"speech", "singing", "bells", "alarms", "birds"}
#: probability (times ``ctx.real``) of a real recording for each background component
REAL_BG_P = {"music": 0.5, "babble": 0.5, "ambience": 0.5}


class Query(Kind):
    """Query-by-example separation triples."""

    name = "query"
    sr = 16000
    bytes_per_second = 4 * 32000 + 32000 * 0.25
    cost_per_second = 0.24

    def plan(self, seed: int, index: int) -> dict:
        rng = item_rng(seed, self.name, index, 0)
        names = list(TARGET_WEIGHTS)
        w = np.array([TARGET_WEIGHTS[c] for c in names])
        cls = names[int(rng.choice(len(names), p=w / w.sum()))]
        return {"seconds": SECONDS, "label": cls}

    def rel_path(self, index: int, plan: dict) -> str:
        return f"q_{index:05d}"

    def _background(self, ctx: Context, rng: np.random.Generator, cls: str, split: str = "train",
                    avoid_speakers: frozenset = frozenset()) -> tuple[np.ndarray, list[dict]]:
        """Music, babble and/or ambience; each is a real recording of ``split`` with probability
        :data:`REAL_BG_P` x ``ctx.real`` where installed (babble never by a speaker of ``avoid_speakers``)."""
        sr, n = self.sr, int(SECONDS * self.sr)
        use = {"music": rng.random() < 0.6, "babble": rng.random() < 0.45, "ambience": rng.random() < 0.45}
        if not any(use.values()):
            use[["music", "babble", "ambience"][int(rng.integers(3))]] = True
        bg = np.zeros(n, np.float32)
        comps: list[dict] = []
        if use["music"] and want_real(rng, REAL_BG_P["music"], ctx) and cls in REAL_BED_TARGETS:
            bed = real_music_bed(sr, rng, split)
            if bed is not None:
                use["music"] = False
                y = bed.excerpt(0, SECONDS, ctx)
                comps.append(self._add(bg, y, rng, {**bed.info, "type": "music", "sound": "real-music"}))
                self._sources += P.of_info(bed.info, ctx.soundfont)
        if use["music"]:
            avoid = CLASS_AVOID.get(cls, set())
            _, piece = ctx.library.draw(rng, MUSIC_POOLS)
            arr = arrange(piece, rng, SECONDS, ctx.presets, drums_p=0.0 if cls == "drums" else 0.55,
                          avoid_programs=avoid, bass_p=0.0 if cls == "bass" else 0.8)
            tracks = arr.all_tracks()
            if rng.random() < 0.6:
                lead = melody_track(arr, rng, ctx.presets, avoid=avoid)
                if lead is not None:
                    tracks.append(lead)
            y = render(tracks, SECONDS, sr, ctx.soundfont, random_synth_settings(rng))
            comps.append(self._add(bg, y, rng, {"type": "music", "source": arr.source,
                                                 "instruments": [i["name"] for i in arr.instruments]}))
            self._sources += [P.soundfont(ctx.soundfont), P.score(arr.source)]
        if use["babble"] and want_real(rng, REAL_BG_P["babble"], ctx):
            speakers = [s for s in real_speakers(split) if s[0] not in avoid_speakers]
            k = min(len(speakers), int(rng.integers(2, 4)))
            if k >= 2:
                use["babble"] = False
                y, who = np.zeros(n, np.float32), []
                for i in rng.choice(len(speakers), size=k, replace=False):
                    spk = RealSpeech("speech", sr, rng, speakers[int(i)])
                    x = spk.excerpt(0, SECONDS, ctx)
                    seg = A.fit_length(np.roll(x, int(rng.integers(0, max(1, x.size)))), n)
                    r = A.rms(seg)
                    if r > 0:
                        y += seg * (A.db_to_gain(rng.uniform(-6, 0)) / r) * 0.1
                    who.append({"speaker": spk.speaker, "real_source": spk.reg.id, "files": spk.info["files"]})
                    self._sources += P.of_info(spk.info, ctx.soundfont)
                comps.append(self._add(bg, y, rng, {"type": "babble", "voices": who, "real": True}))
        if use["babble"]:
            y, who = V.babble(rng, SECONDS, sr, int(rng.integers(2, 4)))
            comps.append(self._add(bg, y, rng, {"type": "babble", "voices": who}))
            self._sources += [V.source_of(w) for w in who]  # each voice's engine and voice
        amb = None
        if use["ambience"] and want_real(rng, REAL_BG_P["ambience"], ctx):
            amb = real_effect("noise", sr, rng, split, "ambience")
        if amb is not None:
            y = amb.excerpt(0, SECONDS, ctx)
            comps.append(self._add(bg, y, rng, {**amb.info, "type": "ambience", "sound": amb.info.get("type")}))
            self._sources += P.of_info(amb.info, ctx.soundfont)
        elif use["ambience"]:
            if rng.random() < 0.5:
                src = NoiseSound("noise", sr, rng)
            else:
                name = list(NOISE_PROGRAMS)[int(rng.integers(len(NOISE_PROGRAMS)))]
                src = GMEffect("noise", sr, rng, NOISE_PROGRAMS[name], "ambience")
                src.info["ambience"] = name
            y = src.excerpt(0, SECONDS, ctx)
            comps.append(self._add(bg, y, rng, {**src.info, "type": "ambience", "sound": src.info.get("type")}))
            self._sources += P.of_info(src.info, ctx.soundfont)
        return bg, comps

    @staticmethod
    def _add(bg: np.ndarray, y: np.ndarray, rng: np.random.Generator, info: dict) -> dict:
        y = A.fit_length(y, bg.size)
        r = A.rms(y)
        g = float(rng.uniform(-6.0, 0.0))
        if r > 0:
            bg += (y * (A.db_to_gain(g) * 0.1 / r)).astype(np.float32)
        info = dict(info)
        info.pop("relation", None)
        info["gain_db"] = round(g, 2)
        return info

    def render(self, ctx: Context, index: int, plan: dict) -> dict:
        rng = item_rng(ctx.seed, self.name, index, 1)
        sr, n = self.sr, int(SECONDS * self.sr)
        cls = plan["label"]
        split = item_split(index)
        src = make_source(cls, sr, rng, ctx, split)
        n_ev = int(rng.integers(1, 4))
        durs = rng.uniform(1.0, 4.0, n_ev)
        if durs.sum() > 7.5:
            durs *= 7.5 / durs.sum()
        gaps = rng.dirichlet(np.ones(n_ev + 1)) * (SECONDS - durs.sum() - 0.2)
        target = np.zeros(n, np.float32)
        mask = np.zeros(n, bool)
        events = []
        t = 0.1
        level = float(rng.uniform(0.05, 0.2))
        for k in range(n_ev):
            t += float(gaps[k])
            x = src.excerpt(k, float(durs[k]), ctx)
            if x.size == 0 or A.rms(x) == 0:
                x = src.excerpt(k + 7, float(durs[k]), ctx)
            x = x * (level * A.db_to_gain(float(rng.uniform(-3, 3))) / max(A.rms(x), 1e-9))
            s = int(t * sr)
            e = min(n, s + x.size)
            target[s:e] += x[: e - s]
            mask[s:e] = True
            events.append([round(s / sr, 4), round(e / sr, 4)])
            t = e / sr
        q_len = float(rng.uniform(1.5, 3.5))
        query = src.excerpt(n_ev, q_len, ctx)
        if query.size == 0 or A.rms(query) == 0:
            query = src.excerpt(n_ev + 1, q_len, ctx)
        query = A.normalize_rms(query if query.size else np.zeros(int(sr * q_len), np.float32),
                                float(rng.uniform(-24, -16)), 0.95)
        self._sources = list(P.of_info(src.info, ctx.soundfont))
        avoid = frozenset({src.speaker}) if isinstance(src, RealSpeech) else frozenset()
        bg, comps = self._background(ctx, rng, cls, split, avoid)
        tbr = float(rng.uniform(-5.0, 5.0))
        # the production chain: the target, the background and the query each get their own
        fx = E.process_stems({"target": target, "background": bg, "query": query},
                             {"target": EFFECT_ROLE.get(cls, "instrument"), "background": "background", "query": "query"},
                             sr, item_rng(ctx.seed, self.name, index, 2), strength=ctx.effects)
        (fx_stems, effects) = fx
        target, bg, query = fx_stems["target"], fx_stems["background"], fx_stems["query"]
        if A.peak(query) > 0.95:
            query = (query * (0.95 / A.peak(query))).astype(np.float32)
        if effects:  # reverb tails (and codec pre-echo) belong to the events: widen them to where the target is
            events, mask = _events_after_effects(target, events, sr)
        rt, rb = A.rms(target, mask), A.rms(bg, mask)
        if rt > 0 and rb > 0:
            target = (target * (A.db_to_gain(tbr) * rb / rt)).astype(np.float32)
        stems, _ = A.quantize_stems({"target": target, "background": bg}, float(rng.uniform(0.6, 0.95)))
        mix = stems["target"] + stems["background"]
        tf, bf = stems["target"].astype(np.float64), stems["background"].astype(np.float64)
        tbr_active = 20 * np.log10((A.rms(tf, mask) + 1e-9) / (A.rms(bf, mask) + 1e-9))
        tbr_global = 20 * np.log10((A.rms(tf) + 1e-9) / (A.rms(bf) + 1e-9))
        rel = self.rel_path(index, plan)
        with ItemFolder(ctx.root / self.name / rel) as tmp:
            A.write_pcm16(tmp / "mix.wav", mix, sr)
            A.write_pcm16(tmp / "target.wav", stems["target"], sr)
            A.write_pcm16(tmp / "background.wav", stems["background"], sr)
            A.write_pcm16(tmp / "query.wav", query, sr)
            info = dict(src.info)
            relation = info.pop("relation", "another excerpt of the same source")
            write_json(tmp / "meta.json", {
                "id": rel, "sr": sr, "seconds": SECONDS, "class": cls, "label_index": CLASSES.index(cls),
                "events": events, "tbr_db_target": round(tbr, 3), "tbr_db_active": round(float(tbr_active), 3),
                "tbr_db_global": round(float(tbr_global), 3), "source": info,
                "query": {"seconds": round(query.size / sr, 4), "relation": relation, "excerpt": n_ev},
                "background": comps, "effects": effects})
        return QueryRow(id=rel, index=index, path=rel, sr=sr, seconds=SECONDS, sources=P.merge(self._sources),
                        effects=effects, split=split, label=cls, label_index=CLASSES.index(cls), events=events,
                        tbr_db_active=round(float(tbr_active), 3),
                        info={"source_type": src.info.get("type"), "background": [c["type"] for c in comps]}).to_json()

    def is_complete(self, kind_dir, row) -> bool:
        d = kind_dir / row["path"]
        return all((d / f).is_file() for f in ("mix.wav", "query.wav", "target.wav", "background.wav", "meta.json"))


def _events_after_effects(target: np.ndarray, events: list[list[float]], sr: int,
                          rel_db: float = -60.0) -> tuple[list[list[float]], np.ndarray]:
    """Events widened (up to the neighbouring events) to cover the processed target wherever it is above
    ``rel_db`` re its peak; returns the events (seconds) and the sample mask."""
    n = target.size
    thr = A.peak(target) * 10 ** (rel_db / 20)
    loud = np.abs(target) > thr
    out, mask = [], np.zeros(n, bool)
    bounds = [(int(round(a * sr)), int(round(b * sr))) for a, b in events]
    prev_end = 0
    for k, (s, e) in enumerate(bounds):
        lo = max(prev_end, bounds[k - 1][1] if k > 0 else 0)
        hi = bounds[k + 1][0] if k + 1 < len(bounds) else n
        idx = np.flatnonzero(loud[lo:hi])
        if idx.size:
            s, e = min(s, lo + int(idx[0])), max(e, lo + int(idx[-1]) + 1)
        mask[s:e] = True
        prev_end = e
        out.append([round(s / sr, 4), round(e / sr, 4)])
    return out, mask

