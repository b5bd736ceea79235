"""Training-corpus renderer for Audio Studio.

Renders the material every default model is trained on, from sources that ship with the machine:
music21's bundled score corpus rendered through FluidSynth and a General MIDI soundfont, espeak-ng
speech and sung lines, and Debian's recorded sound themes.  See ``docs/corpus.md``.

This module is imported by the query engine for :data:`CLASSES`, so it must stay cheap to import:
nothing heavy (music21, librosa) is imported here.
"""
from __future__ import annotations

#: The fixed class list of the query embedder / classifier (order matters: it is the label index).
CLASSES: list[str] = [
    "speech",
    "singing",
    "piano",
    "strings",
    "winds",
    "brass",
    "guitar",
    "bass",
    "organ",
    "drums",
    "bells",
    "alarms",
    "birds",
    "noise",
]

#: Output kinds, in the order the CLI renders them by default (early trainers can start first).
KINDS: list[str] = ["clips", "query", "songs", "timbre", "fusion"]

#: Sample rate of each kind's files.
KIND_SR: dict[str, int] = {
    "songs": 44100,
    "timbre": 24000,
    "fusion": 24000,
    "clips": 16000,
    "query": 16000,
}

__all__ = ["CLASSES", "KINDS", "KIND_SR"]
