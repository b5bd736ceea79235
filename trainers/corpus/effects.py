"""The production chain: effects drawn per item and applied per stem at render time (pedalboard).

Every stem of an item gets its own chain, drawn from the documented ranges below for its *role*;
the mixture is then the (integer) sum of the processed stems, so stems still add up exactly.
A chain is a list of plain dicts (``{"effect": "reverb", "room_size": 0.6, ...}``): it is what the
manifest records (``effects``), and :func:`apply_chain` rebuilds the same processing from it, so a
chain read back from a manifest reproduces the audio bit for bit on the same machine.

Effects and their ranges (drawn uniformly unless noted; "p" is the chance an effect is in a chain):

| effect | parameters | roles (p) |
|---|---|---|
| ``eq`` | high-pass 20-180 Hz; low shelf 80-300 Hz +-6 dB; peak 300 Hz-5 kHz +-6 dB, Q 0.5-2; high shelf 4-10 kHz +-6 dB | all (0.7) |
| ``compressor`` | threshold -30..-8 dB, ratio 1.5-6, attack 1-30 ms, release 50-300 ms, make-up to the input RMS | vocals, speech, drums, bass (0.6); others (0.3) |
| ``saturation`` | drive 2-14 dB (pedalboard Distortion), mixed in at 10-50 %, level-matched | vocals, bass, other, instrument (0.2) |
| ``doubling`` | a copy delayed 12-35 ms, detuned +-5-15 cents, at -9..-3 dB | vocals (0.3) |
| ``chorus`` | rate 0.3-2 Hz, depth 0.1-0.4, centre delay 5-12 ms, mix 0.15-0.5 | vocals, other, instrument (0.2) |
| ``reverb`` | room (size 0.1-0.45), hall (0.6-0.95), plate (0.4-0.7, damping 0.0-0.3): wet 0.05-0.4, dry 0.6-1.0 | all (0.65) |
| ``band`` | telephone (300-3400 Hz, light clipping) or radio (150-5000 Hz, compressed) | speech, vocals (0.12); query (0.1) |
| ``codec`` | mp3 (LAME VBR quality 2-8) or ogg vorbis (quality 0.1-0.6) round trip | all (0.25) |
| ``noise`` | white/pink/brown noise at -55..-30 dB re the stem RMS (seeded) | background, drums, other (0.3) |
| ``width`` | stereo only: side gain 0.3-1.6 | all stereo stems (0.5) |

Targets of a separation task (vocals, the query target) get no noise: noise belongs to the
accompaniment / background, where a model must learn to leave it.
"""
from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ROLES = ("vocals", "speech", "instrument", "drums", "bass", "other", "background", "effect", "query")
#: chance of each effect per role (the table in the module docstring)
P: dict[str, dict[str, float]] = {
    "eq": {r: 0.7 for r in ROLES},
    "compressor": {**{r: 0.3 for r in ROLES}, "vocals": 0.6, "speech": 0.6, "drums": 0.6, "bass": 0.6},
    "saturation": {"vocals": 0.2, "bass": 0.2, "other": 0.2, "instrument": 0.2},
    "doubling": {"vocals": 0.3},
    "chorus": {"vocals": 0.2, "other": 0.2, "instrument": 0.2},
    "reverb": {r: 0.65 for r in ROLES},
    "band": {"speech": 0.12, "vocals": 0.12, "query": 0.1},
    "codec": {r: 0.25 for r in ROLES},
    "noise": {"background": 0.3, "drums": 0.3, "other": 0.3},
    "width": {r: 0.5 for r in ROLES},
}
#: order in which effects are applied (a production chain: tone, dynamics, colour, space, delivery)
ORDER = ("eq", "compressor", "saturation", "doubling", "chorus", "reverb", "band", "width", "codec", "noise")
REVERB_TYPES = {"room": (0.1, 0.45, 0.3, 0.8), "hall": (0.6, 0.95, 0.2, 0.6), "plate": (0.4, 0.7, 0.0, 0.3)}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _u(rng: np.random.Generator, lo: float, hi: float, nd: int = 4) -> float:
    return round(float(rng.uniform(lo, hi)), nd)


def draw_chain(rng: np.random.Generator, role: str, sr: int, *, stereo: bool = False,
               strength: float = 1.0) -> list[dict]:
    """A chain for one stem of ``role``; ``strength`` scales every probability (0 = no effects)."""
    if role not in ROLES:
        raise ValueError(f"unknown effect role {role!r}; one of {ROLES}")
    chain: list[dict] = []
    for name in ORDER:
        p = P[name].get(role, 0.0) * strength
        if name == "width" and not stereo:
            p = 0.0
        if name == "codec" and sr not in MP3_RATES:
            p = 0.0
        if p <= 0 or rng.random() >= p:
            continue
        chain.append(_draw(name, rng, sr))
    return chain


def _draw(name: str, rng: np.random.Generator, sr: int) -> dict:
    nyq = sr / 2
    if name == "eq":
        return {"effect": "eq", "highpass_hz": _u(rng, 20, 180), "low_hz": _u(rng, 80, 300), "low_db": _u(rng, -6, 6),
                "peak_hz": _u(rng, 300, min(5000, 0.4 * nyq)), "peak_db": _u(rng, -6, 6), "peak_q": _u(rng, 0.5, 2),
                "high_hz": _u(rng, min(4000, 0.5 * nyq), min(10000, 0.8 * nyq)), "high_db": _u(rng, -6, 6)}
    if name == "compressor":
        return {"effect": "compressor", "threshold_db": _u(rng, -30, -8), "ratio": _u(rng, 1.5, 6),
                "attack_ms": _u(rng, 1, 30), "release_ms": _u(rng, 50, 300)}
    if name == "saturation":
        return {"effect": "saturation", "drive_db": _u(rng, 2, 14), "mix": _u(rng, 0.1, 0.5)}
    if name == "doubling":
        return {"effect": "doubling", "delay_ms": _u(rng, 12, 35), "cents": _u(rng, 5, 15) * (1 if rng.random() < 0.5 else -1),
                "gain_db": _u(rng, -9, -3)}
    if name == "chorus":
        return {"effect": "chorus", "rate_hz": _u(rng, 0.3, 2), "depth": _u(rng, 0.1, 0.4),
                "centre_delay_ms": _u(rng, 5, 12), "mix": _u(rng, 0.15, 0.5)}
    if name == "reverb":
        kind = list(REVERB_TYPES)[int(rng.integers(len(REVERB_TYPES)))]
        s0, s1, d0, d1 = REVERB_TYPES[kind]
        return {"effect": "reverb", "type": kind, "room_size": _u(rng, s0, s1), "damping": _u(rng, d0, d1),
                "wet": _u(rng, 0.05, 0.4), "dry": _u(rng, 0.6, 1.0)}
    if name == "band":
        kind = "telephone" if rng.random() < 0.5 else "radio"
        return {"effect": "band", "type": kind}
    if name == "codec":
        if rng.random() < 0.5:
            return {"effect": "codec", "format": "mp3", "vbr_quality": _u(rng, 2, 8, 2)}
        return {"effect": "codec", "format": "ogg", "quality": _u(rng, 0.1, 0.6, 2)}
    if name == "noise":
        return {"effect": "noise", "color": ["white", "pink", "brown"][int(rng.integers(3))],
                "level_db": _u(rng, -55, -30), "seed": int(rng.integers(2**31 - 1))}
    if name == "width":
        return {"effect": "width", "side_gain": _u(rng, 0.3, 1.6)}
    raise ValueError(name)


# ------------------------------------------------------------------ applying
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _board(x: np.ndarray, sr: int, plugins: list) -> np.ndarray:
    from pedalboard import Pedalboard

    return Pedalboard(plugins)(np.ascontiguousarray(x, np.float32), sr)


def _noise(color: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    if color == "white":
        return w
    n = shape[-1]
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    scale = f ** (-0.5 if color == "pink" else -1.0)
    y = np.fft.irfft(np.fft.rfft(w, axis=-1) * scale, n=n, axis=-1)
    return y / (np.std(y) + 1e-12)


def _codec(x: np.ndarray, sr: int, e: dict) -> np.ndarray:
    if e["format"] == "mp3":
        from pedalboard import MP3Compressor

        return _board(x, sr, [MP3Compressor(vbr_quality=float(e["vbr_quality"]))])
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x.T, sr, format="OGG", subtype="VORBIS", compression_level=1.0 - float(e["quality"]))
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32", always_2d=True)
    y = y.T
    out = np.zeros_like(x)
    m = min(out.shape[1], y.shape[1])
    out[:, :m] = y[:, :m]
    return out


def _apply_one(x: np.ndarray, sr: int, e: dict) -> np.ndarray:
    """``x``: ``(C, T)`` float32 -> same shape."""
    from pedalboard import (Chorus, Clipping, Compressor, Delay, Distortion, HighpassFilter, HighShelfFilter,
                            LowpassFilter, LowShelfFilter, PeakFilter, PitchShift, Reverb)

    name = e["effect"]
    if name == "eq":
        return _board(x, sr, [HighpassFilter(e["highpass_hz"]), LowShelfFilter(e["low_hz"], e["low_db"]),
                              PeakFilter(e["peak_hz"], e["peak_db"], e["peak_q"]),
                              HighShelfFilter(e["high_hz"], e["high_db"])])
    if name == "compressor":
        r0 = _rms(x)
        y = _board(x, sr, [Compressor(e["threshold_db"], e["ratio"], e["attack_ms"], e["release_ms"])])
        r1 = _rms(y)
        return y * (r0 / r1) if r1 > 0 else y
    if name == "saturation":
        r0 = _rms(x)
        wet = _board(x, sr, [Distortion(e["drive_db"])])
        rw = _rms(wet)
        wet = wet * (r0 / rw) if rw > 0 else wet
        return (1 - e["mix"]) * x + e["mix"] * wet
    if name == "doubling":
        copy = _board(x, sr, [PitchShift(e["cents"] / 100.0), Delay(e["delay_ms"] / 1000.0, 0.0, 1.0)])
        return x + copy * (10 ** (e["gain_db"] / 20))
    if name == "chorus":
        return _board(x, sr, [Chorus(e["rate_hz"], e["depth"], e["centre_delay_ms"], 0.0, e["mix"])])
    if name == "reverb":
        return _board(x, sr, [Reverb(e["room_size"], e["damping"], e["wet"], e["dry"], 1.0)])
    if name == "band":
        if e["type"] == "telephone":
            return _board(x, sr, [HighpassFilter(300.0), LowpassFilter(min(3400.0, 0.45 * sr)), Clipping(-3.0)])
        return _board(x, sr, [HighpassFilter(150.0), LowpassFilter(min(5000.0, 0.45 * sr)),
                              Compressor(-20.0, 4.0, 5.0, 100.0)])
    if name == "codec":
        return _codec(x, sr, e)
    if name == "noise":
        n = _noise(e["color"], x.shape, int(e["seed"]))
        return x + n * (_rms(x) * 10 ** (e["level_db"] / 20))
    if name == "width":
        if x.shape[0] != 2:
            return x
        mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2 * e["side_gain"]
        return np.stack([mid + side, mid - side])
    raise ValueError(f"unknown effect {name!r}")


def apply_chain(x: np.ndarray, sr: int, chain: list[dict[str, Any]]) -> np.ndarray:
    """Apply ``chain`` to ``x`` (``(T,)`` or ``(C, T)`` float); returns float32 of the same shape and length.

    A silent stem stays silent (no effect adds sound to nothing: no noise on an empty stem).
    """
    a = np.asarray(x, dtype=np.float32)
    mono = a.ndim == 1
    y = a[None] if mono else a
    if not chain or not np.any(y):
        return a.copy()
    for e in chain:
        y = np.asarray(_apply_one(y, sr, e), dtype=np.float32)
        if y.shape[1] != a.shape[-1]:  # keep the length (tails are cut, as a mix bus would)
            z = np.zeros((y.shape[0], a.shape[-1]), np.float32)
            m = min(z.shape[1], y.shape[1])
            z[:, :m] = y[:, :m]
            y = z
    if not np.isfinite(y).all():
        raise FloatingPointError(f"effect chain {chain} produced non-finite samples")
    return y[0] if mono else y


def process_stems(stems: dict[str, np.ndarray], roles: dict[str, str], sr: int, rng: np.random.Generator, *,
                  stereo: bool = False, strength: float = 1.0) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Draw and apply one chain per stem; returns the processed stems and the manifest's ``effects`` list
    (``[{"stem": name, **effect}, ...]``, empty when nothing was applied)."""
    out: dict[str, np.ndarray] = {}
    record: list[dict] = []
    for name, x in stems.items():
        chain = draw_chain(rng, roles.get(name, "other"), sr, stereo=stereo, strength=strength)
        out[name] = apply_chain(x, sr, chain)
        record += [{"stem": name, **e} for e in chain]
    return out, record


def chains_of(record: list[dict]) -> dict[str, list[dict]]:
    """The per-stem chains of a manifest ``effects`` list (the inverse of :func:`process_stems`' record)."""
    out: dict[str, list[dict]] = {}
    for e in record:
        e = dict(e)
        out.setdefault(e.pop("stem"), []).append(e)
    return out
