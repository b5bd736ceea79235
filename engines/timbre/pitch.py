"""Pitch and loudness of a monophonic clip (the content the synthesis decoder is driven by), and a
polyphony check.

The tracker is ``librosa.yin`` (no torchaudio, no downloaded weights): on the bench's pianos it puts
95-100 % of the frames inside notes within 50 cents of the score, as ``librosa.pyin`` does, at a
tenth of pyin's time (0.04 s vs 0.5 s for 8 s of audio on one core). Frames are the engine's
(22050 Hz, hop 256, centred), so ``N = T // 256 + 1``.

* ``f0`` is held through quiet frames (the note's pitch stays while a piano note decays, and the
  synthesiser needs a pitch everywhere; the decoder sets the amplitude), and through the two frames at
  either end of a sounding stretch (onsets from silence and releases give wild estimates), and is
  median-filtered over 3 frames to remove single-frame octave slips, and again after the spectral refinement
  (:func:`remove_slips`: its multiple-of-the-pitch check can jump an octave for one or two frames on a decayed
  note, and each jump was a broadband burst in the synthesised output);
* ``loudness`` is the frame's RMS in dB (the clip is at -20 dBFS RMS when the engine calls it);
* ``voiced`` marks frames louder than ``VOICED_DB`` below the clip's loudest frame.
"""
from __future__ import annotations

import numpy as np

from .features import HOP, N_FFT, SAMPLE_RATE

FMIN, FMAX = 65.0, 2100.0
#: a multiple of yin's reading counts as the fundamental when its peak is at most this far below the strongest
SUBHARMONIC_DB = 13.0  # C2 .. C7: the piano and violin range the corpus plays
FRAME = 1024
VOICED_DB = 35.0
#: the median over this many frames after :func:`refine` (:func:`remove_slips`): an excursion of at most 2 frames
#: (23 ms) is removed, one of 3 frames or more is kept (yin reads a 90 ms note as 5 frames)
SLIP_FRAMES = 5
#: share of a loud frame's energy near the tracked pitch's first 10 harmonics below which it counts as
#: polyphonic (median shares measured on bench clips: pianos 0.75-0.98, violins 0.93-0.96, two melodies 0.6-0.9)
HARMONIC_SHARE = 0.55
#: a frame whose tracked fundamental holds less than this share of its harmonic energy is a chord heard as
#: the upper partials of a missing fundamental (monophonic bench clips: medians 0.3-0.9)
FUNDAMENTAL_SHARE = 0.03
#: share of loud frames that must look polyphonic for the clip to be reported as polyphonic (measured on the
#: 16 bench pairs: monophonic pianos 0.05-0.26, violins 0.04-0.18; two of their pianos summed 0.49-0.90)
POLY_FRAMES = 0.4
#: a note starts where the loudness rises by this much over the previous ``ONSET_FRAMES`` frames, or where the
#: (held, :func:`remove_slips`) pitch moves by more than ``ONSET_CENTS`` (a legato change of note), at most once per
#: ``ONSET_GAP`` frames (116 ms: a 16th note at 130 bpm)
ONSET_DB = 6.0
ONSET_CENTS = 60.0
ONSET_FRAMES = 6
ONSET_GAP = 10
#: ... and a rise (not a change of pitch) only when it comes within this of the current note's loudest: the beating
#: of a decaying note (chorus, reverb) rises by 6 dB too
ONSET_PEAK_DB = 12.0


def loudness_db(wav: np.ndarray, n: int | None = None) -> np.ndarray:
    """Frame RMS in dB ``(N,)`` (centred frames of ``N_FFT`` samples, hop 256)."""
    import librosa

    r = librosa.feature.rms(y=np.asarray(wav, np.float32), frame_length=N_FFT, hop_length=HOP, center=True)[0]
    db = 20 * np.log10(np.maximum(r, 1e-6))
    return _fit(db, n)


def _fit(x: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return x
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)), mode="edge")
    return x[:n]


def _hold(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """``f0`` with unvoiced frames set to the previous voiced frame's value (the first voiced before it)."""
    if not voiced.any():
        return np.full_like(f0, 261.63)
    idx = np.where(voiced, np.arange(len(f0)), 0)
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(voiced))
    idx[:first] = first
    return f0[idx]


def refine(wav: np.ndarray, f0: np.ndarray, n_fft: int = 4096, cents: float = 60.0) -> np.ndarray:
    """``f0 (N,)`` moved to the frequency of the strongest spectral peak within ``cents`` of it (a 4096-point
    STFT, parabolic interpolation of the log magnitude): yin's period follows all partials, and a piano's
    partials are stretched (inharmonic), which reads 20-25 cents sharp on the bench's pianos; the first
    partial itself is in tune. Frames whose window holds no peak keep yin's value. Before that, a reading
    a sub-multiple of the pitch (yin's slip: a period of several true periods) is moved up to the lowest
    multiple that holds a spectral peak."""
    import torch

    from engines.audio import spectral

    S = spectral.stft(torch.from_numpy(np.asarray(wav, np.float32)), n_fft, HOP).abs().numpy()  # (F, N')
    N = min(S.shape[1], len(f0))
    out = np.asarray(f0, np.float64).copy()
    cols = np.arange(N)[None, :]
    # sub-multiple check: yin may settle on a period of m > 1 true periods (an octave low on the violin, up
    # to ~9 periods on a very regular synthesised tone). The true fundamental is the lowest multiple
    # m * f0 (m = 1..10) that holds a spectral peak of at least SUBHARMONIC_DB below the strongest one.
    kb = out[:N] * n_fft / SAMPLE_RATE
    ms = np.arange(1, 11)
    idx = np.rint(ms[:, None] * kb[None]).astype(int)  # (10, N)
    e = np.max([S[np.clip(idx + d, 0, S.shape[0] - 1), cols] ** 2 for d in (-1, 0, 1)], axis=0)
    e = np.where(ms[:, None] * out[None, :N] <= min(FMAX, 5000.0), e, 0.0)
    strong = e >= 10 ** (-SUBHARMONIC_DB / 10) * e.max(0, keepdims=True)
    m = ms[np.argmax(strong, axis=0)]
    out[:N] = np.where(e.max(0) > 0, out[:N] * m, out[:N])
    k0 = out[:N] * n_fft / SAMPLE_RATE  # (N,) fractional bins
    span = int(np.ceil(k0.max() * (2 ** (cents / 1200) - 1))) + 1 if N else 1
    cand = np.rint(k0)[None, :].astype(int) + np.arange(-span, span + 1)[:, None]  # (C, N)
    cand = np.clip(cand, 1, S.shape[0] - 2)
    ok = np.abs(1200 * np.log2(np.maximum(cand, 1e-6) / np.maximum(k0[None], 1e-6))) <= cents
    logS = np.log(S + 1e-9)
    val = np.where(ok, logS[cand, cols], -np.inf)
    best = cand[np.argmax(val, axis=0), np.arange(N)]  # (N,)
    a, b, c = logS[best - 1, np.arange(N)], logS[best, np.arange(N)], logS[best + 1, np.arange(N)]
    peak = (b >= a) & (b >= c) & np.isfinite(val.max(0))
    den = a - 2 * b + c
    delta = np.where(np.abs(den) > 1e-9, 0.5 * (a - c) / np.where(np.abs(den) > 1e-9, den, 1.0), 0.0)
    fr = (best + np.clip(delta, -0.5, 0.5)) * SAMPLE_RATE / n_fft
    out[:N] = np.where(peak, fr, out[:N])
    return out.astype(np.float32)


def remove_slips(f0: np.ndarray) -> np.ndarray:
    """``f0 (N,)`` Hz with excursions of at most ``SLIP_FRAMES // 2`` frames removed (a median of its log)."""
    from scipy.ndimage import median_filter

    return np.exp2(median_filter(np.log2(np.maximum(np.asarray(f0, np.float64), 1e-3)), size=SLIP_FRAMES,
                                 mode="nearest")).astype(np.float32)


def track(wav: np.ndarray, n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f0 Hz (N,), loudness dB (N,), voiced bool (N,))`` of a mono 22050 Hz clip ``(T,)``."""
    import librosa
    from scipy.ndimage import binary_erosion, median_filter

    wav = np.asarray(wav, np.float32)
    n = len(wav) // HOP + 1 if n is None else n
    y = wav if len(wav) >= FRAME else np.pad(wav, (0, FRAME - len(wav)))
    f0 = librosa.yin(y, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=FRAME, hop_length=HOP, center=True)
    f0 = refine(y, median_filter(f0, size=3, mode="nearest"))
    f0 = _fit(remove_slips(f0), n)
    loud = loudness_db(y, n)
    voiced = loud > loud.max() - VOICED_DB
    # the first and last two frames of a sounding stretch (an onset from silence, a release) give unreliable
    # estimates: the held pitch comes from inside the stretch
    reliable = binary_erosion(voiced, iterations=2)
    return _hold(f0, reliable if reliable.any() else voiced).astype(np.float32), loud.astype(np.float32), voiced


def harmonic_share(wav: np.ndarray, f0: np.ndarray, voiced: np.ndarray, n_harm: int = 10,
                   n_fft: int = 4096, with_fundamental: bool = False, max_frames: int = 300):
    """Per voiced frame: the share of the spectrum's energy (below 5 kHz, ``n_fft`` 4096 for fine bins)
    within one bin or 30 cents of the tracked pitch's first ``n_harm`` harmonics ``(V,)``; a single note
    keeps most of its energy there, a second voice puts its own partials elsewhere. ``with_fundamental``:
    also the share of that harmonic energy at the fundamental itself ``(V,)`` (a chord can look like the
    upper partials of a missing low fundamental: C-E-G are harmonics 4, 5, 6 of C two octaves down)."""
    import torch

    from engines.audio import spectral

    S = spectral.stft(torch.from_numpy(np.asarray(wav, np.float32)), n_fft, HOP).abs().pow(2).numpy()  # (F, N)
    N = min(S.shape[1], len(f0))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    band = freqs < 5000
    S, f0, voiced = S[band, :N], f0[:N], voiced[:N]
    sel = np.where(voiced)[0]
    if len(sel) > max_frames:  # an even subsample is enough for a share of frames (and bounds the cost)
        sel = sel[np.linspace(0, len(sel) - 1, max_frames).round().astype(int)]
    if not len(sel):
        return (np.zeros(0), np.zeros(0)) if with_fundamental else np.zeros(0)
    fr = freqs[band][:, None]  # (F, 1)
    ratio = fr / f0[None, sel]  # (F, V): bin frequency in harmonics of f0
    k = np.rint(ratio)
    tol = np.maximum(1.01 * SAMPLE_RATE / n_fft, k * f0[None, sel] * (2 ** (30 / 1200) - 1))
    near = (k >= 1) & (k <= n_harm) & (np.abs(fr - k * f0[None, sel]) <= tol)
    e = S[:, sel]
    share = (e * near).sum(0) / np.maximum(e.sum(0), 1e-12)
    if not with_fundamental:
        return share
    fund = (e * (near & (k == 1))).sum(0) / np.maximum((e * near).sum(0), 1e-12)
    return share, fund


def polyphony(wav: np.ndarray, f0: np.ndarray | None = None, voiced: np.ndarray | None = None) -> float:
    """Share of the clip's loud frames that do not look like one note (0 = monophonic, 1 = every frame
    polyphonic); the engine warns above :data:`POLY_FRAMES`."""
    if f0 is None or voiced is None:
        f0, _, voiced = track(wav)
    loud = loudness_db(wav, len(f0))
    strong = voiced & (loud > loud.max() - 20)
    got = harmonic_share(wav, f0, strong, with_fundamental=True)
    if not len(strong) or not strong.any():
        return 0.0
    share, fund = got
    return float(np.mean((share < HARMONIC_SHARE) | (fund < FUNDAMENTAL_SHARE)))


def note_features(f0: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """``(N, 3)``: the loudness (dB), the loudest the current note has been (dB) and the note's age (seconds)
    per frame, from a clip's tracked ``f0 (N,)`` Hz and ``loud (N,)`` dB (:func:`track`).

    A note starts at an onset (:data:`ONSET_DB` rise, or an :data:`ONSET_CENTS` change of pitch, on a frame
    within :data:`VOICED_DB` of the loudest) and lasts until the next one. With these a decoder that sees a
    window of ~2 s knows that a piano note which has decayed to near silence is still being held (a violin
    keeps bowing it at the note's level), and how long a sustained input note has sounded (a piano's decay):
    neither is in the frame's own loudness. Computed on the whole clip, then cut into the decoder's windows."""
    loud = np.asarray(loud, np.float64)
    f0 = np.asarray(f0, np.float64)
    n = len(loud)
    if n == 0:
        return np.zeros((0, 3), np.float32)
    k = ONSET_FRAMES
    past = np.stack([np.pad(loud, (j, 0), mode="edge")[:n] for j in range(1, k + 1)]).min(0)
    rise = (loud - past) >= ONSET_DB
    lf = np.log2(remove_slips(f0)).astype(np.float64)  # a 2-frame octave slip is no onset
    cents = np.abs(1200 * (lf - np.pad(lf, (1, 0), mode="edge")[:n]))
    voiced = loud > loud.max() - VOICED_DB
    cand = np.where((rise | (cents > ONSET_CENTS)) & voiced)[0]
    keep = [0]
    for i in cand:  # in order: a rise counts only to near the current note's loudest (not a decaying note's
        if i - keep[-1] < ONSET_GAP:  # beating); one onset per ONSET_GAP frames (a slow attack rises for longer
            continue  # than k frames; the held pitch catches up a few frames after a note's onset)
        if cents[i] > ONSET_CENTS or loud[i:i + k].max() > loud[keep[-1]:i].max() - ONSET_PEAK_DB:
            keep.append(int(i))
    seg = np.zeros(n, np.int64)
    seg[np.asarray(keep)] = 1
    seg = np.cumsum(seg) - 1  # (N,) the note each frame belongs to
    big = 1e4  # > the loudness range: cummax over (loud + note * big) restarts at each note
    peak = np.maximum.accumulate(loud + seg * big) - seg * big
    start = np.asarray(keep)[seg]
    age = (np.arange(n) - start) * HOP / SAMPLE_RATE
    return np.stack([loud, peak, age], axis=1).astype(np.float32)


#: vibrato: rate (Hz), the age a note must reach before it starts (s), and how long it takes to reach full depth (s)
VIBRATO_HZ = 5.5
VIBRATO_DELAY = 0.4
VIBRATO_FADE = 0.3


def vibrato(f0: np.ndarray, age: np.ndarray, cents: float, rate_hz: float = VIBRATO_HZ,
            delay_s: float = VIBRATO_DELAY, fade_s: float = VIBRATO_FADE) -> np.ndarray:
    """``f0 (N,)`` Hz with a vibrato of ``cents`` depth on the notes held longer than ``delay_s``: each note's own
    sine (phase 0 at its onset, so notes do not share one wobble), faded in over ``fade_s``; ``age (N,)`` is the
    note's age in seconds (:func:`note_features`' last column). Short notes stay as they are."""
    f0 = np.asarray(f0, np.float64)
    if cents <= 0:
        return f0.astype(np.float32)
    age = np.asarray(age, np.float64)
    depth = cents * np.clip((age - delay_s) / max(fade_s, 1e-6), 0.0, 1.0)
    return (f0 * 2.0 ** (depth * np.sin(2 * np.pi * rate_hz * age) / 1200)).astype(np.float32)


def cents_accuracy(f0: np.ndarray, notes: list[dict], sr: int = SAMPLE_RATE, hop: int = HOP,
                   tolerance: float = 50.0, guard: float = 0.03) -> float:
    """Share of the frames inside notes (``onset + guard`` .. ``offset - 0.01`` s) whose ``f0`` is within
    ``tolerance`` cents of the note's pitch (``notes``: melody.json's ``onset``, ``offset``, ``pitch`` MIDI)."""
    t = np.arange(len(f0)) * hop / sr
    ok = tot = 0
    for nt in notes:
        sel = (t >= nt["onset"] + guard) & (t < nt["offset"] - 0.01)
        ref = 440.0 * 2 ** ((nt["pitch"] - 69) / 12)
        g = np.maximum(np.asarray(f0)[sel], 1e-3)
        tot += int(sel.sum())
        ok += int(np.sum(np.abs(1200 * np.log2(g / ref)) < tolerance))
    return ok / tot if tot else float("nan")


__all__ = ["track", "note_features", "refine", "loudness_db", "polyphony", "harmonic_share", "cents_accuracy", "FMIN", "FMAX"]
