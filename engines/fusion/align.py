"""Musical alignment before fusing (what mashup tools do first).

* :func:`track_beats`: tempo, a constant-tempo beat grid and downbeats: with ``downbeats_from="learned"`` (the
  fusion engine's default) fitted to the registered frame-level network's beat and downbeat activations
  (:func:`track_frames`); with ``"heuristic"`` onset autocorrelation with a fractional period (not librosa's
  tracker, see its docstring for why) and the beat phase, modulo ``beats_per_bar``, with the strongest low-band
  onsets (kick drums fall on bar starts).
* :func:`estimate_key`: the learned key profiles (:class:`engines.audio.key.KeyNet`, registry kind
  ``fusion-key``) on the mean chroma, or, without that model, profile correlation (:mod:`engines.audio.key`'s,
  shared with the corpus's score key finder).
* :func:`key_shift`: semitones (-6..+5) that bring one key's tonic (relative major) to another's.
* :func:`tempo_ratio`, :func:`time_stretch`, :func:`pitch_shift`: tempo matching (octave errors
  folded) and key matching with ``librosa.phase_vocoder``.
* :func:`smooth_masks`: short equal-gain crossfades at the edges of time-varying masks.

Loudness (LUFS, matching B to A) is :mod:`engines.audio.levels` (``lufs``, ``match_loudness``).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from engines.audio import key as _key
from . import downbeat as _downbeat

logger = logging.getLogger(__name__)

PITCH_CLASSES = list(_key.PITCH_CLASSES)
#: the key profile :func:`estimate_key` correlates with when no ``fusion-key`` model is registered
#: (:data:`engines.audio.key.PROFILES`; on 162 unseen corpus songs Aarden-Essen finds 73.5 % of the keys,
#: Krumhansl-Kessler, the finder before issue 18, 43.2 %, the learned model 84.0 %)
KEY_PROFILE = "aarden"
HOP = 512


@dataclass
class BeatInfo:
    """Beat analysis of one signal (times in seconds)."""

    tempo: float
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    beats_per_bar: int = 4
    downbeats_from: str = "heuristic"  # or "learned" (engines/fusion/downbeat.py)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["beats"] = [round(t, 4) for t in self.beats]
        d["downbeats"] = [round(t, 4) for t in self.downbeats]
        d["tempo"] = round(self.tempo, 3)
        return d


@dataclass
class KeyInfo:
    tonic: int
    mode: str
    confidence: float

    @property
    def name(self) -> str:
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"

    def to_dict(self) -> dict:
        return {"tonic": self.tonic, "mode": self.mode, "name": self.name, "confidence": round(self.confidence, 3)}


def _onset_envs(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectral flux of the log-mel spectrogram, full band and below 250 Hz (one torch STFT, no
    JIT): two ``(frames,)`` arrays at ``sr / HOP`` frames per second."""
    from engines.audio.spectral import mel_filterbank, stft

    n_fft = 2048
    power = stft(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), n_fft, HOP).abs().pow_(2).numpy()
    out = []
    for n_mels, fmax in ((64, sr / 2), (12, 250.0)):
        fb = np.asarray(mel_filterbank(sr, n_fft, n_mels, 0.0, fmax), dtype=np.float32)
        S = 10 * np.log10(np.maximum(fb @ power, 1e-10))
        S = np.maximum(S, S.max() - 80)
        flux = np.maximum(S[:, 1:] - S[:, :-1], 0).mean(0)
        out.append(np.concatenate([[0.0], flux]).astype(np.float32))
    return out[0], out[1]


def _tempo_period(env: np.ndarray, fps: float, lo_bpm: float = 60, hi_bpm: float = 200, prior_bpm: float = 120):
    """Beat period (frames, fractional) from the onset autocorrelation with a log-normal tempo prior."""
    e = env - env.mean()
    n = len(e)
    if n < 8 or not np.any(e):
        return fps * 60 / prior_bpm
    ac = np.fft.irfft(np.abs(np.fft.rfft(e, 2 * n)) ** 2)[:n]
    lags = np.arange(max(int(fps * 60 / hi_bpm), 1), min(int(fps * 60 / lo_bpm) + 1, n - 1))
    if len(lags) == 0:
        return fps * 60 / prior_bpm
    bpm = 60 * fps / lags
    w = np.exp(-0.5 * (np.log2(bpm / prior_bpm)) ** 2)
    score = ac[lags] * w
    i = int(np.argmax(score))
    lag = float(lags[i])
    if 0 < i < len(lags) - 1:  # parabolic refinement
        a, b, c = score[i - 1], score[i], score[i + 1]
        den = a - 2 * b + c
        if den < 0:
            lag += 0.5 * (a - c) / den
    return lag


#: a grid point up to this far before 0 s is the signal's first one, at 0 s (onset features lag the sound by a
#: frame or two, so the grid of a song that starts on a beat would otherwise begin one beat late)
EDGE_S = 0.07


def extend_bars(downbeats, tempo: float, beats_per_bar: int) -> np.ndarray:
    """The downbeats ``downbeats`` (s) with the bar grid extended back to the start of the signal (a bar line
    less than :data:`EDGE_S` before 0 s is put at 0 s)."""
    downbeats = np.asarray(downbeats, dtype=np.float64)
    if not len(downbeats):
        return downbeats
    bar = 60.0 / tempo * beats_per_bar
    n_back = int(np.floor((downbeats[0] + EDGE_S) / bar + 1e-6))
    return np.concatenate([np.maximum(downbeats[0] - bar * np.arange(n_back, 0, -1), 0.0), downbeats])


def _onset_grid(y: np.ndarray, sr: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``(tempo, beat times, low-band onset strength at each beat)``: the onset-autocorrelation grid."""
    fps = sr / HOP
    env, low = _onset_envs(y, sr)
    period = _tempo_period(env, fps)
    n = len(env)
    phases = np.arange(0, period, 0.5)
    grid = lambda ph: np.arange(ph, n - 1, period)  # noqa: E731
    scores = [np.interp(grid(ph), np.arange(n), env).mean() if len(grid(ph)) else 0.0 for ph in phases]
    phase = float(phases[int(np.argmax(scores))]) if len(phases) else 0.0
    beat_frames = _with_edge_beat(grid(phase), phase, period, fps)
    return 60.0 * fps / period, beat_frames / fps, np.interp(beat_frames, np.arange(len(low)), low)


def _with_edge_beat(frames: np.ndarray, phase: float, period: float, fps: float) -> np.ndarray:
    """The grid ``frames`` with the beat just before 0 s (within :data:`EDGE_S`) added at its start."""
    if len(frames) and phase - period >= -EDGE_S * fps:
        return np.concatenate([[max(phase - period, 0.0)], frames])
    return frames


def track_frames(logits: np.ndarray, beats_per_bar: int = 0) -> tuple[float, np.ndarray, int, int]:
    """``(tempo, beats, beats_per_bar, phase)`` from a frame-level network's ``(2, n_frames)`` logits
    (:class:`engines.fusion.frame_beats.FrameBeatNet`): the grid of :func:`engines.fusion.frame_beats.beat_grid` on
    the beat activation, started from its autocorrelation period (the beat just before 0 s put at 0 s), and the
    meter (``beats_per_bar`` when > 0) and phase (index of the first downbeat beat) that
    :func:`engines.fusion.downbeat.decode` finds in the downbeat logits pooled at the beats."""
    from . import frame_beats

    fps = frame_beats.FPS
    act = 1.0 / (1.0 + np.exp(-np.asarray(logits[0], dtype=np.float64)))
    period, phase = frame_beats.beat_grid(act, fps, _tempo_period(act, fps, 40.0, 220.0), 40.0, 220.0)
    beats = _with_edge_beat(np.arange(phase, logits.shape[1] - 1, period), phase, period, fps) / fps
    if len(beats) < 2:
        return 60.0 * fps / period, beats, beats_per_bar or 4, 0
    bpb, ph, _ = _downbeat.decode(frame_beats.pool_at(logits[1], beats), beats_per_bar)
    return 60.0 * fps / period, beats, bpb, ph


def track_beats(y: np.ndarray, sr: int, beats_per_bar: int = 0, downbeats_from: str = "heuristic") -> BeatInfo:
    """Tempo (BPM), beat times and downbeat times of a mono signal ``(T,)``.

    A constant-tempo grid. With ``downbeats_from="learned"`` and the registered ``fusion-beats`` model a
    frame-level network (:class:`engines.fusion.frame_beats.FrameBeatNet`), the grid is fitted to the network's
    beat activation and the bars to its downbeat activation (:func:`track_frames`). Otherwise the period comes from the onset
    autocorrelation (log-normal prior around 120 BPM, parabolic refinement to a fractional period), the phase
    collects the most onset strength, and the downbeats are the per-beat model's
    (:class:`engines.fusion.downbeat.DownbeatNet`) or, ``"heuristic"``, the beat phase (modulo ``beats_per_bar``)
    with the strongest low-band (< 250 Hz) onsets. ``beats_per_bar=0`` picks the meter (the heuristic: 3 or 4,
    3 only when triple grouping stands out clearly). The bar grid is extended back to 0 s.

    Why not ``librosa.beat.beat_track``: fusing stretches B by the tempo ratio and lays A's bar grid
    over the whole song, so the tempo must be exact and the beats a constant grid. librosa's tempo is
    an integer onset-frame lag (at 24 kHz / 512 = 46.9 frames/s, 120 BPM reads as 117.2 or 122.3 BPM,
    2 % off: B drifts by a third of a second over 15 s), and its dynamic-programming beats follow
    local onsets instead of a grid. The test ``test_beat_grid_agrees_with_librosa`` checks that on
    clear beats this tracker's tempo lies within one lag step of librosa's and closer to the true
    tempo, and that every librosa beat has one of this tracker's within four frames (85 ms).
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    model = _downbeat.load() if downbeats_from == "learned" else None
    if isinstance(model, _downbeat.FrameBeatNet):
        from . import frame_beats

        tempo, beats, beats_per_bar, phase_b = track_frames(frame_beats.frame_logits(model, y, sr), beats_per_bar)
    else:
        tempo, beats, strength = _onset_grid(y, sr)

        def best_phase(bpb):
            sc = [strength[p::bpb].mean() if len(strength[p::bpb]) else 0.0 for p in range(min(bpb, len(beats)))]
            return int(np.argmax(sc)), float(np.max(sc)) / (float(strength.mean()) + 1e-9)

        if model is not None and len(beats):  # the per-beat learned tracker picks meter and phase
            beats_per_bar, phase_b = _downbeat.predict(model, y, sr, beats, beats_per_bar)
        elif len(beats):
            if beats_per_bar <= 0:  # meter: 3 when triple grouping is clearly stronger, else 4
                p3, s3 = best_phase(3)
                p4, s4 = best_phase(4)
                beats_per_bar = 3 if s3 > 1.1 * s4 else 4
            phase_b = best_phase(beats_per_bar)[0]
    downbeats = extend_bars(beats[phase_b::beats_per_bar], tempo, beats_per_bar) if len(beats) else beats[:0]
    return BeatInfo(tempo=float(tempo), beats=[float(t) for t in beats], downbeats=[float(t) for t in downbeats],
                    beats_per_bar=beats_per_bar, downbeats_from="learned" if model is not None else "heuristic")


def estimate_key(y: np.ndarray, sr: int) -> KeyInfo:
    """Key of a mono signal from its mean chroma (:func:`engines.audio.key.chroma_vector`): the registered
    ``fusion-key`` model's most probable key (:class:`engines.audio.key.KeyNet`; confidence = its probability), or,
    with none registered, the best correlation with the :data:`KEY_PROFILE` profiles."""
    from engines import registry

    chroma = _key.chroma_vector(y, sr)
    model = registry.load_optional("fusion-key", (_key.KeyNet,))
    r, tonic, mode = _key.classify(model, chroma) if model is not None else _key.best_key(chroma, KEY_PROFILE)
    return KeyInfo(tonic=tonic, mode=mode, confidence=r)


def key_shift(source: KeyInfo, target: KeyInfo) -> int:
    """Semitones in -6..+5 moving ``source`` onto ``target`` (minor keys compared by relative major)."""
    rel = lambda k: (k.tonic + (3 if k.mode == "minor" else 0)) % 12  # noqa: E731
    d = (rel(target) - rel(source)) % 12
    return d - 12 if d > 5 else d


def tempo_ratio(tempo_from: float, tempo_to: float, max_ratio: float = 2.0) -> float:
    """Stretch rate (librosa convention: > 1 speeds up) taking ``tempo_from`` to ``tempo_to``,
    with half/double-tempo octave errors folded so the rate lies in ``[1/sqrt2, sqrt2]``."""
    if tempo_from <= 0 or tempo_to <= 0:
        return 1.0
    r = tempo_to / tempo_from
    while r > np.sqrt(2):
        r /= 2
    while r < 1 / np.sqrt(2):
        r *= 2
    return float(np.clip(r, 1 / max_ratio, max_ratio))


def time_stretch(y: np.ndarray, rate: float, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Phase-vocoder time stretch (``rate`` > 1 is faster): ``librosa.phase_vocoder`` on the project's STFT
    (:mod:`engines.audio.spectral`, an exact torch STFT/iSTFT pair) in complex128, so the phase accumulates
    in float64 (``librosa.effects.time_stretch`` accumulates in float32 and drifts on long songs); identity
    for ``|rate - 1| < 0.005``. Returns ``round(len(y) / rate)`` samples."""
    import librosa

    from engines.audio.spectral import istft, stft

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if abs(rate - 1.0) < 0.005 or len(y) < n_fft:
        return y
    S = stft(torch.from_numpy(y), n_fft, hop).numpy().astype(np.complex128)  # (F, N)
    D = librosa.phase_vocoder(S, rate=float(rate), hop_length=hop)
    out = istft(torch.from_numpy(D.astype(np.complex64)), n_fft, hop, length=int(round(len(y) / rate)))
    return out.numpy().astype(np.float32)


def pitch_shift(y: np.ndarray, sr: int, n_steps: float) -> np.ndarray:
    """Pitch shift by ``n_steps`` semitones, same length (stretch, then resample with soxr)."""
    import soxr

    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if n_steps == 0:
        return y
    ratio = 2.0 ** (float(n_steps) / 12)
    z = soxr.resample(time_stretch(y, 1.0 / ratio), sr * ratio, sr, quality="HQ").astype(np.float32)
    return np.pad(z, (0, max(len(y) - len(z), 0)))[: len(y)]


def smooth_masks(m_in: torch.Tensor, m_tgt: torch.Tensor, ramp_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-gain crossfades of ``ramp_frames`` frames where a mask changes along time.

    The masks ``(B, C, N)`` are low-pass filtered along time with a length-``ramp_frames`` box;
    a pair with ``m_in + m_tgt == 1`` keeps that sum, and regions away from edges are unchanged.
    """
    if ramp_frames <= 1:
        return m_in, m_tgt
    k = int(ramp_frames)
    B, C, N = m_in.shape
    w = torch.ones(1, 1, k, dtype=m_in.dtype, device=m_in.device) / k

    def f(m):
        x = m.reshape(B * C, 1, N)
        x = torch.nn.functional.pad(x, (k // 2, k - 1 - k // 2), mode="replicate")
        return torch.nn.functional.conv1d(x, w).reshape(B, C, N)

    return f(m_in), f(m_tgt)
