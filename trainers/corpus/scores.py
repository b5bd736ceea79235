"""The music21 score corpus: a catalogue of usable scores and their parsed, cached note lists.

Parsing a score with music21 costs 0.02-0.5 s, so every parsed score is reduced to a small JSON
"piece" (parts as note lists in quarter lengths, measures with their time signatures, the key from
music21's analysis, lyrics) and cached under ``<out>/.cache/scores``. The catalogue (which scores
exist, in which pool) comes from music21's metadata bundle and is cached as well.

Scores named in the evaluation set's README as single hand-picked pieces are held out
(:data:`HELD_OUT`) so the defaults are never trained on the exact pieces they are scored on.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_VERSION = 2

#: Single pieces the public evaluation set was rendered from: never used for training.
HELD_OUT: tuple[str, ...] = (
    "schubert/",
    "leadSheet/fosterBrownHair",
    "johnson_j_r/",
    "joplin/",
    "corelli/",
    "schumann_clara/",
)
#: Folders that are not music to render (test files, atonal exercises) or duplicates.
SKIPPED: tuple[str, ...] = (
    "demos/", "theoryExercises/", "schoenberg/", "webern/", "bach/choraleAnalyses/",
    "beethoven/opus18no1/movement1.krn", "beethoven/opus18no1/movement2.krn",
    "beethoven/opus18no1/movement3.krn", "beethoven/opus18no1/movement4.krn",
    "josquin/",  # one voice per ABC tune: not usable as a multi-part score
    "ciconia/",
)

#: Larger score files are skipped: music21 needs ~0.1 s per compressed kilobyte to parse them.
MAX_FILE_BYTES: dict[str, int] = {".mxl": 45_000, ".xml": 300_000, ".musicxml": 300_000, ".krn": 150_000}

#: Pool of each corpus folder.
POOL_OF_FOLDER: dict[str, str] = {
    "bach": "chorale",
    "essenFolksong": "folk",
    "miscFolk": "fiddle",
    "ryansMammoth": "fiddle",
    "oneills1850": "fiddle",
    "nottingham-dataset": "fiddle",
    "airdsAirs": "fiddle",
    "monteverdi": "madrigal",
    "palestrina": "madrigal",
    "trecento": "madrigal",
    "lusitano": "madrigal",
    "luca": "madrigal",
    "haydn": "quartet",
    "mozart": "quartet",
    "beethoven": "quartet",
    "schumann_robert": "quartet",
    "chopin": "keys",
    "cpebach": "keys",
    "beach": "keys",
    "liliuokalani": "keys",
    "leadSheet": "keys",
    "handel": "keys",
    "verdi": "keys",
    "weber": "keys",
}
#: Overrides of the pool of single files.
POOL_OF_FILE: dict[str, str] = {
    "mozart/k545/movement1_exposition.mxl": "keys",
    "schumann_robert/dichterliebe_no2.xml": "keys",
    "schumann_robert/opus48no2.mxl": "keys",
}
#: espeak-ng language of the lyrics of a folder.
LYRIC_LANG: dict[str, str] = {
    "bach": "de",
    "schumann_robert": "de",
    "monteverdi": "it",
    "lusitano": "it",
    "verdi": "it",
    "handel": "it",
    "palestrina": "la",
    "trecento": "la",
    "luca": "la",
    "liliuokalani": "en",
    "leadSheet": "en",
    "beach": "en",
}


@dataclass(frozen=True)
class ScoreRef:
    """One score of the catalogue: corpus path, optional tune number in an ABC opus, pool."""

    path: str
    number: str | None
    pool: str
    parts: int

    @property
    def key(self) -> str:
        """Stable identifier used for caching and in metadata."""
        return self.path + ("#" + self.number if self.number else "")


def _atomic_write_text(path: Path, text: str) -> None:
    from engines.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _pool_for(path: str) -> str | None:
    if any(path.startswith(h) for h in HELD_OUT) or any(path.startswith(s) for s in SKIPPED):
        return None
    if path in POOL_OF_FILE:
        return POOL_OF_FILE[path]
    if path.endswith(".rntxt"):
        return None
    return POOL_OF_FOLDER.get(path.split("/")[0])


def build_catalogue() -> list[ScoreRef]:
    """List the usable scores of music21's core corpus (no parsing; ABC collections are split
    into their tunes by their ``X:`` reference numbers)."""
    from music21 import corpus

    refs: set[ScoreRef] = set()
    for full in corpus.getCorePaths():
        full = Path(full)
        parts = full.as_posix().split("/corpus/")
        path = parts[-1]
        pool = _pool_for(path)
        if pool is None:
            continue
        if full.suffix.lower() == ".abc":
            try:
                text = full.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            numbers = re.findall(r"^X:\s*(\d+)", text, flags=re.M)
            if len(numbers) > 1:
                for num in dict.fromkeys(numbers):
                    refs.add(ScoreRef(path, num, pool, 1))
                continue
            refs.add(ScoreRef(path, None, pool, 1))
        else:
            limit = MAX_FILE_BYTES.get(full.suffix.lower(), 300_000)
            try:
                if full.stat().st_size > limit:
                    continue  # parses for tens of seconds (e.g. the Grosse Fuge): not worth it
            except OSError:
                continue
            refs.add(ScoreRef(path, None, pool, 0))
    return sorted(refs, key=lambda r: (r.pool, r.path, _num_key(r.number)))


def _num_key(number: str | None) -> tuple[int, str]:
    if number is None:
        return (-1, "")
    m = re.match(r"\d+", number)
    return (int(m.group()) if m else 10**9, number)


class ScoreLibrary:
    """Catalogue + parse cache of music21 scores, rooted in a cache folder."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        self._catalogue: list[ScoreRef] | None = None
        self._pools: dict[str, list[ScoreRef]] | None = None
        self._mem: dict[str, dict | None] = {}

    # -- catalogue ---------------------------------------------------------------------------
    @property
    def catalogue(self) -> list[ScoreRef]:
        """The catalogue, loaded from the cache or built (and cached) on first use."""
        if self._catalogue is None:
            path = self.cache_dir / "catalogue.json"
            refs = None
            if path.is_file():
                try:
                    data = json.loads(path.read_text())
                    if data.get("version") == CACHE_VERSION:
                        refs = [ScoreRef(r[0], r[1], r[2], r[3]) for r in data["scores"]]
                except (ValueError, KeyError, IndexError):
                    refs = None
            if refs is None:
                refs = build_catalogue()
                _atomic_write_text(path, json.dumps(
                    {"version": CACHE_VERSION,
                     "scores": [[r.path, r.number, r.pool, r.parts] for r in refs]}))
            self._catalogue = refs
        return self._catalogue

    def pool(self, name: str) -> list[ScoreRef]:
        """Scores of one pool (``chorale``, ``folk``, ``fiddle``, ``madrigal``, ``quartet``, ``keys``)."""
        if self._pools is None:
            pools: dict[str, list[ScoreRef]] = {}
            for r in self.catalogue:
                pools.setdefault(r.pool, []).append(r)
            self._pools = pools
        return self._pools.get(name, [])

    # -- parsing -----------------------------------------------------------------------------
    def _cache_path(self, ref: ScoreRef) -> Path:
        h = hashlib.sha1(ref.key.encode()).hexdigest()[:16]
        return self.cache_dir / "scores" / f"{h}.json"

    def piece(self, ref: ScoreRef) -> dict | None:
        """The parsed piece of ``ref`` (cached), or None if it cannot be used."""
        if ref.key in self._mem:
            return self._mem[ref.key]
        path = self._cache_path(ref)
        data: dict | None = None
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                if data.get("version") != CACHE_VERSION:
                    data = None
            except ValueError:
                data = None
        if data is None:
            try:
                data = parse_piece(ref)
            except Exception as exc:  # music21 raises many kinds of errors on odd files
                log.debug("cannot parse %s: %s", ref.key, exc)
                data = {"version": CACHE_VERSION, "bad": True, "reason": str(exc)[:200]}
            _atomic_write_text(path, json.dumps(data, separators=(",", ":")))
        result = None if data.get("bad") else data
        if len(self._mem) > 256:
            self._mem.clear()
        self._mem[ref.key] = result
        return result

    def draw(self, rng: np.random.Generator, pools: dict[str, float], *, min_parts: int = 1,
             max_parts: int = 16, tries: int = 40) -> tuple[ScoreRef, dict]:
        """Draw a usable piece from ``pools`` (name -> weight), retrying unusable scores."""
        names = [p for p in sorted(pools) if self.pool(p)]
        if not names:
            raise RuntimeError("the music21 corpus has none of the pools " + ", ".join(pools))
        w = np.array([pools[p] for p in names], dtype=float)
        w /= w.sum()
        for _ in range(tries):
            pool = self.pool(names[int(rng.choice(len(names), p=w))])
            ref = pool[int(rng.integers(len(pool)))]
            if ref.parts and not (min_parts <= ref.parts <= max_parts):
                continue
            piece = self.piece(ref)
            if piece is None or not (min_parts <= len(piece["parts"]) <= max_parts):
                continue
            if piece["length"] < 4 or sum(len(p["notes"]) for p in piece["parts"]) < 8:
                continue
            return ref, piece
        raise RuntimeError(f"no usable score found in pools {names} after {tries} tries")


_SOFT = re.compile("[\u00ad\u200b]")


def _clean_lyric(text: str | None) -> str | None:
    if not text:
        return None
    t = _SOFT.sub("", text).split("\n")[0].strip().strip("-_").strip()
    t = re.sub(r"[\"“”„«»()\[\]{}*]", "", t)
    return t or None


def _part_notes(part) -> list[list]:
    """``[start_q, dur_q, midi, lyric]`` of a part, chords split into pitches, ties merged.

    (Much faster than ``stripTies``, which costs seconds on a quartet movement.)
    """
    flat = part.flatten()
    out: list[list] = []
    pending: dict[int, int] = {}
    for el in flat.notes:
        ql = float(el.duration.quarterLength)
        if ql <= 0:
            continue  # grace notes
        off = float(el.offset)
        el_tie = el.tie.type if getattr(el, "tie", None) is not None else None
        lyric = _clean_lyric(getattr(el, "lyric", None))
        pitches = sorted(getattr(el, "pitches", ()), key=lambda pp: -pp.midi)
        for i, pp in enumerate(pitches):
            midi = int(pp.midi)
            tie = pp.tie.type if getattr(pp, "tie", None) is not None else el_tie
            if tie in ("stop", "continue") and midi in pending:
                prev = out[pending[midi]]
                if abs(prev[0] + prev[1] - off) < 1e-3:
                    prev[1] = round(off + ql - prev[0], 4)
                    if tie == "stop":
                        pending.pop(midi, None)
                    continue
            if not 12 <= midi <= 120:
                continue
            out.append([round(off, 4), round(ql, 4), midi, lyric if i == 0 else None])
            if tie in ("start", "continue"):
                pending[midi] = len(out) - 1
    out.sort(key=lambda n: (n[0], -n[2]))
    return out


def parse_piece(ref: ScoreRef) -> dict[str, Any]:
    """Parse a score with music21 into the cached piece dictionary."""
    from music21 import corpus

    if ref.number:
        score = corpus.parse(ref.path, number=int(ref.number) if ref.number.isdigit() else ref.number)
    else:
        score = corpus.parse(ref.path)
    parts_in = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    parts: list[dict] = []
    for p in parts_in:
        notes = _part_notes(p)
        if notes:
            name = getattr(p, "partName", None) or getattr(p, "id", None) or ""
            parts.append({"name": str(name)[:40], "notes": notes})
    if not parts:
        raise ValueError("no notes")
    measures = _measures(parts_in[0])
    end = max(n[0] + n[1] for p in parts for n in p["notes"])
    if not measures:
        measures = [[0.0, 4.0, 4, 4]]
    length = max(end, measures[-1][0] + measures[-1][1])
    key = analyze_key([(n[0], n[1], n[2]) for p in parts for n in p["notes"]])
    title = ""
    if score.metadata is not None:
        title = str(score.metadata.title or score.metadata.movementName or "")
    folder = ref.path.split("/")[0]
    has_lyrics = sum(1 for n in parts[0]["notes"] if n[3]) >= max(4, len(parts[0]["notes"]) // 4)
    return {
        "version": CACHE_VERSION,
        "source": ref.key,
        "pool": ref.pool,
        "title": title[:120],
        "key": key,
        "measures": measures,
        "length": round(float(length), 4),
        "parts": parts,
        "lyric_lang": LYRIC_LANG.get(folder, "en") if has_lyrics else None,
    }


def _measures(part) -> list[list]:
    """[offset, length, numerator, denominator] of every measure of ``part`` (quarter lengths)."""
    out: list[list] = []
    ts = None
    for m in part.getElementsByClass("Measure"):
        if m.timeSignature is not None:
            ts = m.timeSignature
        num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
        nominal = num * 4.0 / den
        length = float(m.duration.quarterLength) or nominal
        if length > nominal * 1.01:
            length = nominal
        out.append([round(float(m.offset), 4), round(length, 4), int(num), int(den)])
    # ensure increasing offsets without overlaps
    clean: list[list] = []
    for m in out:
        if clean and m[0] < clean[-1][0] + 1e-6:
            continue
        clean.append(m)
    return clean


# -- excerpts -------------------------------------------------------------------------------

def full_measure_indices(piece: dict) -> list[int]:
    """Indices of the measures whose length equals their time signature (downbeat starts)."""
    return [i for i, m in enumerate(piece["measures"]) if abs(m[1] - m[2] * 4.0 / m[3]) < 1e-3]


def excerpt(piece: dict, start_measure: int, min_quarters: float) -> dict:
    """Cut ``piece`` from measure ``start_measure`` for at least ``min_quarters`` quarter lengths.

    The piece is looped (repeated from its first measure) when it is too short. Returns a dict with
    ``parts`` (note lists ``[start_q, dur_q, pitch, lyric]`` relative to the excerpt start),
    ``measures`` (``[offset_q, length_q, num, den]``) and ``length`` (quarter lengths, a whole number
    of measures).
    """
    meas = piece["measures"]
    total = max(piece["length"], meas[-1][0] + meas[-1][1])
    out_meas: list[list] = []
    t0 = meas[start_measure][0]
    rep = 0
    i = start_measure
    while True:
        m = meas[i]
        off = m[0] + rep * total - t0
        out_meas.append([round(off, 4), m[1], m[2], m[3]])
        if off + m[1] >= min_quarters - 1e-6:
            break
        i += 1
        if i >= len(meas):
            i = 0
            rep += 1
        if len(out_meas) > 2000:
            break
    length = out_meas[-1][0] + out_meas[-1][1]
    parts = []
    for p in piece["parts"]:
        notes = []
        r = 0
        while True:
            base = r * total - t0
            if base >= length:
                break
            for n in p["notes"]:
                s = n[0] + base
                if s < -1e-6 or s >= length - 1e-6:
                    continue
                d = min(n[1], length - s)
                notes.append([round(s, 4), round(d, 4), n[2], n[3]])
            r += 1
        notes.sort(key=lambda n: (n[0], -n[2]))
        parts.append({"name": p["name"], "notes": notes})
    return {"parts": parts, "measures": out_meas, "length": round(length, 4)}


def skyline(notes: list[list]) -> list[list]:
    """Reduce a note list to a monophonic top line (highest note at each onset, no overlaps)."""
    by_start: dict[float, list] = {}
    for n in notes:
        cur = by_start.get(n[0])
        if cur is None or n[2] > cur[2]:
            by_start[n[0]] = n
    line = [list(by_start[s]) for s in sorted(by_start)]
    for a, b in zip(line, line[1:]):
        if a[0] + a[1] > b[0]:
            a[1] = round(b[0] - a[0], 4)
    return [n for n in line if n[1] > 0]


def melody_part_index(piece: dict) -> int:
    """Index of the melody part: the part with the highest median pitch (the first on ties)."""
    best, best_med = 0, -1.0
    for i, p in enumerate(piece["parts"]):
        if not p["notes"]:
            continue
        med = float(np.median([n[2] for n in p["notes"]]))
        if med > best_med + 1.0:
            best, best_med = i, med
    return best


_PC_NAMES = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B"]


@functools.lru_cache(maxsize=1)
def _key_profiles() -> tuple[np.ndarray, np.ndarray]:
    """music21's default key profiles (Aarden-Essen, what ``analyze('key')`` uses): major, minor -- from the
    project's one profile table, :data:`engines.audio.key.PROFILES` (the fusion engine's key finder reads it too)."""
    from engines.audio.key import profiles

    return profiles("aarden")


def analyze_key(notes: list[tuple[float, float, int]]) -> dict:
    """Key of a note list ``(start_q, dur_q, pitch)``: the duration-weighted pitch-class histogram
    correlated with music21's Aarden-Essen key profiles, as ``Stream.analyze('key')`` does, without
    building a music21 stream (which costs seconds on a quartet movement)."""
    hist = np.zeros(12)
    for _, dur, pitch in notes:
        hist[int(pitch) % 12] += max(0.0, float(dur))
    if hist.sum() <= 0:
        return {"tonic": "C", "mode": "major", "tonic_pc": 0, "name": "C major", "correlation": 0.0}
    major, minor = _key_profiles()
    best = (-2.0, 0, "major")
    for mode, prof in (("major", major), ("minor", minor)):
        for pc in range(12):
            r = float(np.corrcoef(hist, np.roll(prof, pc))[0, 1])
            if r > best[0] + 1e-12:
                best = (r, pc, mode)
    r, pc, mode = best
    return {"tonic": _PC_NAMES[pc], "mode": mode, "tonic_pc": pc, "name": f"{_PC_NAMES[pc]} {mode}",
            "correlation": round(r, 4)}
