"""The fusion engine's options: one frozen :class:`Config` drives ``fuse(...)``, ``launch.py fuse`` and the Fuse tab.

No torch here (the CLI's ``--help`` stays fast). The model (``--model`` / ``--checkpoint``) is not an option
of a run: it is what :meth:`engines.fusion.Engine.load` loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engines.audio.limits import Range
from engines.options import ConfigBase, option

MASK_TYPES = ("none", "temporal", "frequency", "spectral", "energy", "hybrid", "stems")
MODES = ("direct", "learned")
SEGMENT_UNITS = ("bars", "beats", "frames")
FREQ_SCALES = ("log", "linear")
SPECTRAL_UNITS = ("octaves", "channels")
#: the log-frequency axis of ``--mask_freq_split``: 0.2 is this many Hz, 1.0 is Nyquist
SPLIT_ANCHOR = (0.2, 200.0)


def split_hz(split: float, sample_rate: float = 24000.0, scale: str = "log") -> float:
    """The frequency (Hz) of ``--mask_freq_split`` ``split``: on the ``log`` axis ``200 * (nyq / 200) **
    ((split - 0.2) / 0.8)`` (0.2 = 200 Hz, 0.3 = 334 Hz: a bass/mid split, 0.5 = 930 Hz, 0.7 = 2.6 kHz, 1 = Nyquist;
    0 = 0 Hz), on the ``linear`` axis (the original's share of the bands) ``split * nyq``."""
    nyq = float(sample_rate) / 2
    split = float(split)
    if split <= 0:
        return 0.0
    if scale == "linear":
        return split * nyq
    s0, f0 = SPLIT_ANCHOR
    return float(f0 * (nyq / f0) ** ((split - s0) / (1.0 - s0)))


def split_label(split: float, sample_rate: float = 24000.0, scale: str = "log") -> str:
    """``"335 Hz"`` / ``"2.6 kHz"``: the split in Hz for people (the Fuse tab, the log block)."""
    f = split_hz(split, sample_rate, scale)
    return f"{f / 1000:.1f} kHz" if f >= 1000 else f"{f:.0f} Hz"


@dataclass(frozen=True)
class Config(ConfigBase):
    """Options of one fusion of song A (the input: its tempo, length and bar grid lead) with song B."""

    PRESETS: ClassVar[dict[str, dict]] = {
        # no beat tracking and no time stretch: fixed 150-frame (0.8 s) segments, the quickest run
        "quick": {"match_tempo": False, "segment_unit": "frames"},
        # two-bar alternation with B pitch-shifted to A's key and longer crossfades
        "mashup": {"segment_length": 2, "match_key": True, "crossfade_ms": 60.0},
        # the cascade transformer over the masked sum (seams, level)
        "learned": {"mode": "learned"},
    }

    mask_type: str = option("temporal", "complementary mask: which source holds which region of the latent",
                            choices=MASK_TYPES, group="mask")
    mode: str = option("direct", "direct: complementary masks, no network; learned: the cascade transformer",
                       choices=MODES, group="model")
    codec: str = option("builtin", "builtin, or an EnCodec hub id / local folder", group="model", studio=False)
    segment_unit: str = option("bars", "temporal segments follow A's bars or beats, or fixed "
                               "--mask_temporal_segment frames", choices=SEGMENT_UNITS, group="segments")
    segment_length: int = option(1, "bars (or beats) per segment", range=Range(1, 64, integer=True),
                                 group="segments")
    mask_temporal_segment: int = option(150, "frames per segment (--segment_unit frames)",
                                        range=Range(1, 100000, integer=True), group="segments")
    mask_freq_split: float = option(0.3, "where A's low band ends (frequency, hybrid); --freq_scale log: 0.2 = "
                                    "200 Hz, 0.3 = 334 Hz (bass/mid), 0.5 = 930 Hz, 0.7 = 2.6 kHz, 1 = 12 kHz "
                                    "(Nyquist at 24 kHz); linear: share of the codec's bands (0.3 = 3.6 kHz)",
                                    range=Range(0, 1), group="mask", step=0.05)
    freq_scale: str = option("log", "axis of --mask_freq_split: log (perceptual: 200 Hz * (Nyquist / 200 Hz) ** "
                             "((split - 0.2) / 0.8)) or linear (the original's share of bands)",
                             choices=FREQ_SCALES, group="mask")
    mask_channel_keep: float = option(0.5, "share of channels given to A (spectral, drawn at random)",
                                      range=Range(0, 1), group="mask", step=0.05)
    spectral_unit: str = option("octaves", "spectral: whole octave bands drawn at random (each song keeps "
                                "audible bands) or single codec channels (the original's dropout: a blend)",
                                choices=SPECTRAL_UNITS, group="mask")
    balance: bool = option(True, "level the two songs' parts so each holds 30-70 percent of the output energy (gains "
                           "up to +-12 dB, half on each song; stem mashups too, unless the lead is near-empty)",
                           group="alignment")
    vocals_from: str = option("a", "stems: the song whose vocals (or melody/harmony, --stem_split rhythm) go over "
                              "the other's accompaniment (or rhythm section)", choices=("a", "b"), group="stems")
    stem_split: str = option("vocals", "stems: vocals over accompaniment, or rhythm (drums + bass of one song, "
                             "vocals + other of the other; needs a four-stem vocal model)",
                             choices=("vocals", "rhythm"), group="stems")
    mask_energy_threshold: float = option(0.7, "energy percentile (energy): A's segments (bars/beats; frames with "
                                          "--segment_unit frames) above it go to A",
                                          range=Range(0, 1), group="mask", step=0.05)
    match_tempo: bool = option(True, "time-stretch B to A's tempo and bar grid", group="alignment")
    match_key: bool = option(False, "pitch-shift B to A's key", group="alignment")
    match_loudness: bool = option(True, "match B's loudness (LUFS) to A's", group="alignment")
    crossfade_ms: float = option(20.0, "crossfade at segment edges (0 = hard switches)", range=Range(0, 2000),
                                 group="alignment", step=5)
    energy_smoothing_ms: float = option(100.0, "moving average of frame energies before the energy threshold",
                                        range=Range(0, 10000), group="mask", step=10)
    downbeats: str = option("learned", "beat and downbeat tracker: learned (the registered fusion-beats network, "
                            "trained on the corpus's rendered beats: bar grid right on 10 of 12 rendered and 3 of 4 "
                            "real bench songs) or heuristic (the onset grid, bars at the strongest low-band onsets: "
                            "1 of 12, 0 of 4)", choices=("learned", "heuristic"), group="segments")
    beats_per_bar: int = option(0, "beats per bar: 2-12, or 0 = detect (learned: 2, 3 or 4; heuristic: 3 or 4)",
                                range=Range(2, 12, integer=True, allow=(0,), note="0 detects the meter"),
                                group="segments")
    seed: int = option(0, "seed of the random (spectral) mask", range=Range(0, 2**32 - 1, integer=True),
                       group="mask")
    max_seconds: float | None = option(None, "longest song accepted (None: the studio/CLI limit; a larger value "
                                       "is capped to it)", range=Range(0, None, lo_open=True), cli=False,
                                       studio=False, group="limits")


__all__ = ["Config", "MASK_TYPES", "MODES", "SEGMENT_UNITS", "FREQ_SCALES", "SPECTRAL_UNITS", "split_hz", "split_label"]
