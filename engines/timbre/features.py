"""Timbre features: complex STFT (513 bins) + complex CQT (84 bins), real/imag as channels.

Everything runs at :data:`SAMPLE_RATE` (22050 Hz) with ``n_fft`` 1024 and hop 256, so STFT and CQT
frames line up (``frames = T // 256 + 1``). Normalisation statistics (per bin mean/std of the real
and imaginary parts) are kept in :class:`FeatureStats` and stored as ``.npz`` with the keys
``stft_mean``, ``stft_std`` (``[2, 513]``) and ``cqt_mean``, ``cqt_std`` (``[2, 84]``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.audio import spectral

from .config import INSTRUMENTS

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
N_STFT = N_FFT // 2 + 1  # 513
N_CQT = 84
CQT_BINS_PER_OCTAVE = 12
N_FEAT = N_STFT + N_CQT  # 597
#: Level every clip is brought to before analysis (the scorer and the corpus use -20 dBFS RMS).
TARGET_RMS_DB = -20.0
#: Floor added to magnitudes before the log (log-magnitude targets and inputs).
LOG_EPS = 1e-4
#: Instruments, in label order: :data:`engines.timbre.config.INSTRUMENTS` (imported above).


def n_frames(n_samples: int, hop: int = HOP) -> int:
    """Number of centred STFT/CQT frames of a ``n_samples`` signal."""
    return n_samples // hop + 1


def rms_gain(wav: np.ndarray, target_db: float = TARGET_RMS_DB) -> float:
    """The gain that brings ``wav`` to ``target_db`` dBFS RMS (1 for silence): :func:`engines.audio.levels.rms_gain`."""
    from engines.audio import levels

    return levels.rms_gain(wav, target_db)


def stft_complex(wav: torch.Tensor) -> torch.Tensor:
    """Complex STFT ``(..., T)`` -> ``(..., 513, N)`` (Hann, centred, n_fft 1024, hop 256)."""
    return spectral.stft(wav, N_FFT, HOP)


def cqt_complex(wav: np.ndarray, n_frames_out: int | None = None) -> np.ndarray:
    """Complex CQT of a mono ``(T,)`` signal -> ``(84, N)`` complex64, trimmed/padded to ``n_frames_out``."""
    wav = np.asarray(wav, dtype=np.float32)
    n = n_frames(wav.shape[-1]) if n_frames_out is None else n_frames_out
    if wav.shape[-1] < 4096:  # librosa needs a few periods of the lowest filter
        wav = np.pad(wav, (0, 4096 - wav.shape[-1]))
    import warnings

    with warnings.catch_warnings():  # librosa warns on short clips for its lowest (decimated) octaves
        warnings.simplefilter("ignore", UserWarning)
        c = spectral.cqt(wav, SAMPLE_RATE, hop=HOP, n_bins=N_CQT, bins_per_octave=CQT_BINS_PER_OCTAVE)
    c = c.astype(np.complex64)
    if c.shape[-1] < n:
        c = np.pad(c, ((0, 0), (0, n - c.shape[-1])))
    return c[:, :n]


def stack_complex(stft: torch.Tensor, cqt: torch.Tensor) -> torch.Tensor:
    """Raw (unnormalised) features: complex ``(B, 513, N)`` + ``(B, 84, N)`` -> real ``(B, 2, 597, N)``."""
    z = torch.cat([stft, cqt.to(stft.dtype)], dim=-2)
    return torch.stack([z.real, z.imag], dim=1).float()


def features(wav: np.ndarray) -> torch.Tensor:
    """Raw features of one mono clip ``(T,)`` at 22050 Hz -> ``(2, 597, N)`` (real, imag)."""
    x = torch.from_numpy(np.asarray(wav, dtype=np.float32))
    s = stft_complex(x)
    c = torch.from_numpy(cqt_complex(wav, s.shape[-1]))
    return stack_complex(s[None], c[None])[0]


@dataclass
class FeatureStats:
    """Per-bin mean/std of the real and imaginary parts: STFT ``[2, 513]``, CQT ``[2, 84]``."""

    stft_mean: np.ndarray
    stft_std: np.ndarray
    cqt_mean: np.ndarray
    cqt_std: np.ndarray
    name: str = "unified"

    @classmethod
    def identity(cls, name: str = "identity") -> "FeatureStats":
        return cls(np.zeros((2, N_STFT), np.float32), np.ones((2, N_STFT), np.float32),
                   np.zeros((2, N_CQT), np.float32), np.ones((2, N_CQT), np.float32), name)

    def check(self) -> None:
        for key, shape in (("stft_mean", (2, N_STFT)), ("stft_std", (2, N_STFT)),
                           ("cqt_mean", (2, N_CQT)), ("cqt_std", (2, N_CQT))):
            v = getattr(self, key)
            if tuple(v.shape) != shape:
                raise ValueError(f"Timbre statistics: '{key}' has shape {tuple(v.shape)}, expected {list(shape)}.")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"Timbre statistics: '{key}' holds non-finite values.")

    def mean(self) -> np.ndarray:
        """``(2, 597)``: STFT then CQT."""
        return np.concatenate([self.stft_mean, self.cqt_mean], axis=1).astype(np.float32)

    def std(self) -> np.ndarray:
        return np.concatenate([self.stft_std, self.cqt_std], axis=1).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        from engines.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez(f, stft_mean=self.stft_mean, stft_std=self.stft_std, cqt_mean=self.cqt_mean,
                     cqt_std=self.cqt_std, name=np.array(self.name))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Timbre statistics not found: '{path}'.")
        try:
            with np.load(path, allow_pickle=False) as z:  # arrays only: a pickled object is refused
                missing = {"stft_mean", "stft_std", "cqt_mean", "cqt_std"} - set(z.files)
                if missing:
                    raise ValueError(f"'{path.name}' lacks {sorted(missing)}; not a timbre statistics file.")
                name = str(z["name"]) if "name" in z.files else path.stem
                st = cls(z["stft_mean"].astype(np.float32), z["stft_std"].astype(np.float32),
                         z["cqt_mean"].astype(np.float32), z["cqt_std"].astype(np.float32), name[:128])
        except (OSError, EOFError, ValueError) as err:
            if str(err).startswith(f"'{path.name}'"):
                raise
            raise ValueError(f"'{path.name}' is not a readable timbre statistics file ({err}).") from err
        st.check()
        return st


class StatsAccumulator:
    """Running per-bin sums of real/imag parts (float64) over any number of clips."""

    def __init__(self) -> None:
        self.n = 0
        self.s1 = np.zeros((2, N_FEAT), np.float64)
        self.s2 = np.zeros((2, N_FEAT), np.float64)

    def update(self, feats: torch.Tensor | np.ndarray) -> None:
        """Add raw features ``(2, 597, N)``."""
        f = feats.numpy() if torch.is_tensor(feats) else np.asarray(feats)
        f = f.astype(np.float64)
        self.n += f.shape[-1]
        self.s1 += f.sum(-1)
        self.s2 += np.square(f).sum(-1)

    def merge(self, other: "StatsAccumulator") -> "StatsAccumulator":
        out = StatsAccumulator()
        out.n, out.s1, out.s2 = self.n + other.n, self.s1 + other.s1, self.s2 + other.s2
        return out

    def finalize(self, name: str = "unified", min_std: float = 1e-4) -> FeatureStats:
        if self.n == 0:
            raise ValueError("No frames were accumulated: the dataset holds no audio.")
        mean = self.s1 / self.n
        std = np.sqrt(np.maximum(self.s2 / self.n - mean ** 2, 0.0))
        std = np.maximum(std, min_std)
        mean, std = mean.astype(np.float32), std.astype(np.float32)
        st = FeatureStats(mean[:, :N_STFT].copy(), std[:, :N_STFT].copy(), mean[:, N_STFT:].copy(),
                          std[:, N_STFT:].copy(), name)
        st.check()
        return st


def log_magnitude(stft: torch.Tensor) -> torch.Tensor:
    """``log(|X| + 1e-4)`` of a complex STFT (the decoder's target representation)."""
    return torch.log(stft.abs() + LOG_EPS)


def griffin_lim(mag: torch.Tensor, phase: torch.Tensor | None, length: int, n_iter: int = 32,
                momentum: float = 0.99) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from ``mag (..., 513, N)``, started from a given phase.

    Kept instead of ``librosa.griffinlim``/``torchaudio.functional.griffinlim`` because the engine starts from
    the *input's* phase: librosa's ``init`` is only ``"random"`` or ``None`` (zero phase) and it multiplies
    ``S`` into every iterate (a complex ``S`` would add its phase each time); torchaudio's has only a random
    or zero start. Both also run on one array at a time (numpy) or need a power spectrogram. The update is
    librosa's (same momentum rule); ``tests/engines/timbre/test_timbre_engine.py`` checks that from a zero
    phase it gives librosa's result.

    Args:
        phase: complex unit-modulus initial phase (e.g. the input's), or ``None`` for random.
        length: output samples.

    Returns:
        waveform ``(..., length)``.
    """
    if phase is None:
        g = torch.Generator().manual_seed(0)
        phase = torch.exp(2j * np.pi * torch.rand(mag.shape, generator=g)).to(mag.device)
    spec = mag * phase
    prev = torch.zeros_like(spec)
    for _ in range(n_iter):
        wav = spectral.istft(spec, N_FFT, HOP, length)
        rebuilt = stft_complex(wav)
        accel = rebuilt - momentum / (1 + momentum) * prev
        prev = rebuilt
        spec = mag * accel / accel.abs().clamp_min(1e-8)
    return spectral.istft(spec, N_FFT, HOP, length)


def stats_for_clips(clips, name: str = "unified") -> FeatureStats:
    """Statistics of loaded clips (objects with ``wav`` ``(T,)`` and ``cqt`` ``(2, 84, N)`` tensors, e.g.
    :class:`trainers.timbre.Clip`): what ``train timbre`` computes when no ``--stats`` is given."""
    acc = StatsAccumulator()
    for c in clips:
        s = stft_complex(c.wav)
        cq = torch.complex(c.cqt[0].float(), c.cqt[1].float())
        n = min(s.shape[-1], cq.shape[-1])
        acc.update(stack_complex(s[None, :, :n], cq[None, :, :n])[0])
    return acc.finalize(name)
