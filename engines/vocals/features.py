"""Features of the vocal mask CNN: the original's hyper-parameters and spectrogram pipeline.

Pipeline (seed 004, kept): mono waveform at 22050 Hz -> STFT (n_fft 1024, hop 256, 513 bins) ->
magnitude in dB + perceptual (A-) weighting per bin - ``ref_level_db`` -> normalised to 0..1 over
``-min_level_db`` dB. The network sees 25 frames (~290 ms) of context per predicted frame.

Training target: the vocal's share of the mixture magnitude in each bin of the middle frame,
``|V| / (|V| + |A|)``, turned into a binary mask by ``mask_threshold`` (0.5 = the ideal binary
mask: "the vocal dominates this bin").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from engines.audio import spectral

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
N_BINS = N_FFT // 2 + 1
CONTEXT = 25


@dataclass
class HParams:
    """The original's hyper-parameters (same names), saved in every checkpoint.

    Attributes:
        batch_size: training batch size (windows per step).
        nepochs: number of training epochs.
        fix_learning_rate: a fixed learning rate, or ``None`` for a one-cycle schedule peaking at ``lr``.
        mask_threshold: cutoff on the vocal's magnitude share that makes a bin "vocal" (0..1).
        ref_level_db: reference level subtracted from the weighted dB spectrogram.
        use_preemphasis: apply a pre-emphasis filter (``preemphasis``) to the waveform before the features.
        res_dims: width of each residual unit of the CNN.
        save_every_epoch: export a model snapshot every N epochs.
        eval_every_epoch: evaluate (write wavs, compute SDR) every N epochs.
        num_evals: number of evaluation songs written and scored per evaluation.
        stft_stride: stride (in frames) between training slices; 1 gives every possible slice.
        mask_at_eval: binary mask at inference (``True``) instead of the soft probability.
    """

    batch_size: int = 64
    nepochs: int = 10
    fix_learning_rate: float | None = None
    mask_threshold: float = 0.5
    ref_level_db: float = 20.0
    use_preemphasis: bool = False
    res_dims: list = field(default_factory=lambda: [192, 192, 192, 192])
    save_every_epoch: int = 1
    eval_every_epoch: int = 1
    num_evals: int = 4
    stft_stride: int = 8
    mask_at_eval: bool = False
    # --- additions (not in the original) -------------------------------------------------
    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_size: int = HOP
    context: int = CONTEXT
    min_level_db: float = -100.0
    preemphasis: float = 0.97
    #: frames predicted per training window (the network is convolutional over time: a window of
    #: ``context + predict_frames - 1`` frames yields ``predict_frames`` middle-frame masks).
    predict_frames: int = 32
    #: dilation of each residual unit's time convolution (sum must be ``(context - 1) / 2``).
    dilations: list = field(default_factory=lambda: [1, 2, 4, 5])
    #: channels of the optional 2D conv stem (each layer takes one of the 12 context frames per side).
    stem: list = field(default_factory=list)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    #: the mixture is scaled to this RMS (dBFS) before the features (the mask is scale-free).
    input_rms_db: float = -20.0
    #: training target: the soft ratio mask |V| / (|V| + |A|) (BCE on soft labels) instead of the
    #: binary mask cut at ``mask_threshold``.
    soft_mask: bool = False
    #: default logit scale of the soft mask at inference (``sharpen`` of the API / CLI).
    mask_sharpen: float = 1.0
    #: augmentation of the waveform training set: probability that a window's accompaniment comes from
    #: another song, and the random gain range (+- dB) of each stem.
    remix_prob: float = 0.0
    stem_gain_db: float = 0.0
    #: training loss: ``bce`` (the original's binary cross-entropy on the mask, weighted by level) or
    #: ``psa`` (waveform-domain error of the masked mixture STFT, ``|m X - V|^2`` over ``|X|^2``).
    loss: str = "bce"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "HParams":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})


def perceptual_weights(sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """A-weighting in dB for each STFT bin, ``(n_fft // 2 + 1,)`` (librosa's perceptual weighting)."""
    import librosa

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    w = librosa.A_weighting(np.maximum(freqs, 1.0), min_db=-80.0)
    return w.astype(np.float32)


_WEIGHTS: dict[tuple[int, int, str], torch.Tensor] = {}


def _weights(sr: int, n_fft: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(F, 1)`` A-weighting in dB on ``device`` (cached)."""
    key = (sr, n_fft, str(device))
    if key not in _WEIGHTS:
        _WEIGHTS[key] = torch.from_numpy(perceptual_weights(sr, n_fft))[:, None].to(device)
    return _WEIGHTS[key]


def preemphasize(wav: torch.Tensor, coef: float) -> torch.Tensor:
    """``y[t] = x[t] - coef * x[t-1]`` along the last axis."""
    return torch.cat([wav[..., :1], wav[..., 1:] - coef * wav[..., :-1]], dim=-1)


def normalize_magnitude(mag: torch.Tensor, hp: HParams) -> torch.Tensor:
    """Magnitude ``(..., F, N)`` -> perceptually weighted, normalised features in 0..1."""
    db = 20.0 * torch.log10(mag.clamp_min(1e-5)) + _weights(hp.sample_rate, hp.n_fft, mag.device) - hp.ref_level_db
    return ((db - hp.min_level_db) / -hp.min_level_db).clamp_(0.0, 1.0)


def features(wav: torch.Tensor, hp: HParams, spec: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised features of a (gain-normalised) waveform.

    Args:
        wav: ``(..., T)`` at ``hp.sample_rate``.
        spec: the complex STFT of ``wav`` when already computed (ignored with pre-emphasis).

    Returns:
        ``(..., F, N)`` float32 in 0..1 with ``F = n_fft // 2 + 1`` and ``N = T // hop + 1``.
    """
    if hp.use_preemphasis:
        spec = spectral.stft(preemphasize(wav, hp.preemphasis), hp.n_fft, hp.hop_size)
    elif spec is None:
        spec = spectral.stft(wav, hp.n_fft, hp.hop_size)
    return normalize_magnitude(spec.abs(), hp)


def target_mask(vocals_mag: torch.Tensor, accomp_mag: torch.Tensor, hp: HParams) -> torch.Tensor:
    """Binary training target ``(..., F, N)``: 1 where ``|V| / (|V| + |A|) > mask_threshold``."""
    share = vocals_mag / (vocals_mag + accomp_mag).clamp_min(1e-8)
    return (share > hp.mask_threshold) & (vocals_mag > 1e-6)
