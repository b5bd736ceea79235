"""Note lists -> Standard MIDI File -> FluidSynth command line -> numpy audio.

Scores are parsed with music21 (``scores.py``); the renderer then works on plain note lists (times
in seconds) so that it controls every per-note velocity, program, bank and controller exactly.
Those lists are written to a Standard MIDI File by the small writer below (format 1, 960 ticks per
second, one channel per track, CC7 volume / CC10 pan / CC91 reverb / CC93 chorus per track) and
rendered with ``fluidsynth -ni -F out.wav -r SR SOUNDFONT file.mid`` (float output, so no dither:
the same MIDI file always renders to the same samples).
"""
from __future__ import annotations

import functools
import logging
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .deps import find_fluidsynth

log = logging.getLogger(__name__)

TICKS_PER_QUARTER = 480
TEMPO_US = 500000  # 120 qpm -> 960 ticks per second
TICKS_PER_SECOND = TICKS_PER_QUARTER * 1_000_000 / TEMPO_US
DRUM_CHANNEL = 9


@dataclass
class Note:
    """One note: start and duration in seconds, MIDI pitch, velocity 1..127."""

    start: float
    dur: float
    pitch: int
    vel: int = 90


@dataclass
class Track:
    """One instrument track (one MIDI channel)."""

    program: int
    notes: list[Note] = field(default_factory=list)
    drums: bool = False
    bank: int = 0
    volume: int = 100
    pan: int = 64
    reverb: int = 40
    chorus: int = 0
    name: str = ""
    #: optional pitch-bend events (time s, value -8192..8191), e.g. for sirens
    bends: list[tuple[float, int]] = field(default_factory=list)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _tick(t: float) -> int:
    return max(0, int(round(t * TICKS_PER_SECOND)))


def _track_chunk(events: list[tuple[int, int, bytes]]) -> bytes:
    """events: (tick, order, raw bytes); sorted by tick then order."""
    events.sort(key=lambda e: (e[0], e[1]))
    body = bytearray()
    last = 0
    for tick, _, raw in events:
        body += _vlq(tick - last) + raw
        last = tick
    body += _vlq(0) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_midi(path: str | os.PathLike, tracks: list[Track], end_time: float) -> None:
    """Write ``tracks`` to a format-1 Standard MIDI File whose end is at ``end_time`` seconds.

    Each non-drum track gets its own channel (channel 10 is kept for drums); at most 15 melodic
    tracks. Overlapping notes of the same pitch on one channel are shortened so that a note-off
    never cuts a later note.
    """
    chunks = []
    tempo = [(0, 0, b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big")),
             (_tick(end_time), 9, b"\xff\x01\x03end")]
    chunks.append(_track_chunk(tempo))
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    for tr in tracks:
        if tr.drums:
            ch = DRUM_CHANNEL
        else:
            if not free:
                raise ValueError("more than 15 melodic tracks")
            ch = free.pop(0)
        ev: list[tuple[int, int, bytes]] = []
        if tr.name:
            nm = tr.name.encode("ascii", "replace")[:60]
            ev.append((0, 0, b"\xff\x03" + _vlq(len(nm)) + nm))
        if not tr.drums and tr.bank:
            ev.append((0, 1, bytes([0xB0 | ch, 0, tr.bank & 0x7F])))
        ev.append((0, 2, bytes([0xC0 | ch, tr.program & 0x7F])))
        for cc, val in ((7, tr.volume), (10, tr.pan), (91, tr.reverb), (93, tr.chorus)):
            ev.append((0, 3, bytes([0xB0 | ch, cc, int(np.clip(val, 0, 127))])))
        for t, val in tr.bends:
            v = int(np.clip(val, -8192, 8191)) + 8192
            ev.append((_tick(t), 4, bytes([0xE0 | ch, v & 0x7F, (v >> 7) & 0x7F])))
        # note-offs (order 5) before note-ons (order 6) at the same tick
        by_pitch: dict[int, list[Note]] = {}
        for n in sorted(tr.notes, key=lambda n: (n.start, n.pitch)):
            by_pitch.setdefault(n.pitch, []).append(n)
        for pitch, ns in by_pitch.items():
            if not 0 <= pitch <= 127:
                continue
            for i, n in enumerate(ns):
                on = _tick(n.start)
                off = _tick(n.start + n.dur)
                if i + 1 < len(ns):
                    off = min(off, _tick(ns[i + 1].start) - 1)
                if off <= on:
                    continue
                vel = int(np.clip(n.vel, 1, 127))
                ev.append((on, 6, bytes([0x90 | ch, pitch, vel])))
                ev.append((off, 5, bytes([0x80 | ch, pitch, 0])))
        chunks.append(_track_chunk(ev))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), TICKS_PER_QUARTER)
    Path(path).write_bytes(header + b"".join(chunks))


@functools.lru_cache(maxsize=8)
def soundfont_presets(path: str) -> frozenset[tuple[int, int]]:
    """The (bank, program) presets a soundfont defines, read from its ``phdr`` chunk."""
    presets: set[tuple[int, int]] = set()
    with open(path, "rb") as f:
        riff, _size, form = struct.unpack("<4sI4s", f.read(12))
        if riff != b"RIFF" or form != b"sfbk":
            raise ValueError(f"{path} is not a SoundFont 2 file")
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                break
            cid, size = struct.unpack("<4sI", hdr)
            if cid == b"LIST":
                kind = f.read(4)
                if kind != b"pdta":
                    f.seek(size - 4, 1)
                    continue
                end = f.tell() + size - 4
                while f.tell() < end:
                    sid, ssize = struct.unpack("<4sI", f.read(8))
                    if sid == b"phdr":
                        data = f.read(ssize)
                        for i in range(0, len(data) - 38, 38):
                            prog, bank = struct.unpack("<HH", data[i + 20:i + 24])
                            presets.add((bank, prog))
                        return frozenset(presets)
                    f.seek(ssize + (ssize & 1), 1)
            else:
                f.seek(size + (size & 1), 1)
    return frozenset(presets)


def has_preset(soundfont: str | os.PathLike, bank: int, program: int) -> bool:
    """Whether the soundfont defines preset ``bank:program``."""
    return (bank, program) in soundfont_presets(str(soundfont))


@dataclass
class SynthSettings:
    """Global FluidSynth settings of one render (room reverb and chorus)."""

    room_size: float = 0.4
    damping: float = 0.3
    reverb_level: float = 0.8
    chorus_depth: float = 6.0
    gain: float = 0.4


def render(tracks: list[Track], duration: float, sr: int, soundfont: str | os.PathLike,
           settings: SynthSettings | None = None, stereo: bool = False,
           tmpdir: str | os.PathLike | None = None) -> np.ndarray:
    """Render ``tracks`` with FluidSynth; return float32 audio of exactly ``duration`` seconds.

    Returns ``(T,)`` mono (the channel mean) or ``(2, T)`` when ``stereo``.
    """
    n = int(round(duration * sr))
    if not tracks or not any(t.notes for t in tracks):
        return np.zeros((2, n) if stereo else n, dtype=np.float32)
    exe = find_fluidsynth()
    s = settings or SynthSettings()
    with tempfile.TemporaryDirectory(prefix="fs-", dir=tmpdir) as td:
        mid = os.path.join(td, "in.mid")
        wav = os.path.join(td, "out.wav")
        write_midi(mid, tracks, duration)
        cmd = [exe, "-ni", "-q", "-R", "1", "-C", "1", "-g", f"{s.gain:.3f}",
               "-O", "float", "-T", "wav", "-r", str(int(sr)),
               "-o", "synth.cpu-cores=1", "-o", "synth.dynamic-sample-loading=1",
               "-o", f"synth.reverb.room-size={s.room_size:.3f}",
               "-o", f"synth.reverb.damp={s.damping:.3f}",
               "-o", f"synth.reverb.level={s.reverb_level:.3f}",
               "-o", f"synth.chorus.depth={s.chorus_depth:.2f}",
               "-F", wav, str(soundfont), mid]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if proc.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
        data, _ = sf.read(wav, dtype="float32", always_2d=True)
    audio = data.T
    if audio.shape[1] < n:
        audio = np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
    audio = audio[:, :n]
    if not np.all(np.isfinite(audio)):
        audio = np.nan_to_num(audio)
    return np.ascontiguousarray(audio if stereo else audio.mean(axis=0), dtype=np.float32)
