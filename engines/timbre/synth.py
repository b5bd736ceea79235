"""Differentiable harmonic-plus-noise synthesiser (DDSP style), pure torch, vectorised over frames.

The decoder of :class:`engines.timbre.synth_model.TimbreSynth` predicts, per frame (22050 Hz, hop 256):
an overall amplitude, a distribution over ``K`` harmonics of the fundamental and the magnitudes of a
noise filter in ``M`` linear bands. This module turns those controls and the fundamental frequency
into a waveform:

* **harmonics**: controls are interpolated linearly to the sample rate; the phase is the running sum of
  ``2 pi f0 / sr`` (in float64, wrapped), harmonic ``k`` is ``sin(k * phase)``; partials at or above
  Nyquist are muted. The sum over harmonics runs over blocks of samples (bounded memory on long clips);
  no per-frame Python loop.
* **filtered noise**: the STFT of white noise (a fixed seed, so a run is reproducible), times the
  per-frame filter (the bands interpolated over the bins), back through the iSTFT.
* **reverb**: a learned impulse response per target instrument (``ir``, initialised as decaying noise),
  added to the dry signal by FFT convolution.

Shapes: ``f0 (B, N)`` Hz, ``amplitude (B, N)``, ``harmonics (B, N, K)`` (sums to 1), ``noise (B, N, M)``;
outputs ``(B, T)`` with ``T = (N - 1) * hop`` unless ``length`` is given.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engines.audio import spectral

#: STFT size of the filtered-noise branch (hop = the control hop).
NOISE_FFT = 512


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> torch.Tensor:
    """DDSP's positive squashing: ``max_value * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def upsample(x: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Frame controls ``(B, C, N)`` -> ``(B, C, length)`` by linear interpolation between frame centres
    (frame ``n`` sits at sample ``n * hop``; held after the last frame)."""
    B, C, N = x.shape
    if N == 1:
        return x.expand(B, C, length)
    y = F.interpolate(x, size=(N - 1) * hop + 1, mode="linear", align_corners=True)
    if y.shape[-1] < length:
        y = torch.cat([y, y[..., -1:].expand(B, C, length - y.shape[-1])], dim=-1)
    return y[..., :length]


def harmonic(f0: torch.Tensor, amplitudes: torch.Tensor, sr: int, hop: int, length: int,
             block: int = 1 << 16) -> torch.Tensor:
    """Sum of harmonics: ``f0 (B, N)`` Hz, ``amplitudes (B, N, K)`` (absolute) -> ``(B, length)``.

    Harmonics at or above Nyquist (at a frame's pitch) are muted frame by frame. The phase is accumulated
    over the whole clip (float64); the harmonic bank is evaluated ``block`` samples at a time (memory
    ``B * K * block``), each block fully vectorised."""
    B, N, K = amplitudes.shape
    f0_up = upsample(f0[:, None], hop, length)[:, 0]  # (B, T)
    omega = 2 * math.pi * f0_up.double() / sr
    phase = torch.remainder(torch.cumsum(omega, dim=-1) - omega[..., :1], 2 * math.pi).to(f0.dtype)  # (B, T)
    k = torch.arange(1, K + 1, device=f0.device, dtype=f0.dtype)
    amps = (amplitudes * (k * f0[..., None] < sr / 2).to(amplitudes.dtype)).transpose(1, 2)  # (B, K, N)
    out = []
    for a in range(0, length, block):
        b = min(length, a + block)
        n0, n1 = a // hop, min(N - 1, -(-(b - 1) // hop))
        seg = amps[..., n0:n1 + 1]
        # only the harmonics some frame of this block keeps below Nyquist (high notes need few of them)
        live = (seg != 0).any(-1).any(0)  # (K,): muted harmonics add nothing (and get no gradient)
        Kb = int(live.nonzero().max()) + 1 if live.any() else 1
        amp = upsample(seg[:, :Kb], hop, b - n0 * hop)[..., a - n0 * hop:]  # (B, Kb, b - a)
        out.append((amp * torch.sin(k[None, :Kb, None] * phase[:, None, a:b])).sum(1))
    return torch.cat(out, dim=-1)


def filtered_noise(bands: torch.Tensor, hop: int, length: int, generator: torch.Generator | None = None,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """White noise shaped per frame by ``bands (B, N, M)`` (linear magnitudes over ``M`` bands from 0 Hz to
    Nyquist) -> ``(B, length)``; ``noise (B, length)`` may be given (else drawn from ``generator``)."""
    B, N, M = bands.shape
    if noise is None:
        noise = torch.rand(B, length, generator=generator, device="cpu").to(bands.device, bands.dtype) * 2 - 1
    X = spectral.stft(noise, NOISE_FFT, hop)  # (B, F, N')
    n = X.shape[-1]
    H = F.interpolate(bands, size=NOISE_FFT // 2 + 1, mode="linear", align_corners=True).transpose(1, 2)
    if H.shape[-1] < n:  # (B, F, N) frames -> the noise STFT's frames
        H = torch.cat([H, H[..., -1:].expand(-1, -1, n - H.shape[-1])], dim=-1)
    return spectral.istft(X * H[..., :n], NOISE_FFT, hop, length)


def fft_convolve(x: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """``x (B, T)`` convolved with ``ir (B, L)``, cut to ``T`` samples (FFT, linear convolution)."""
    T, L = x.shape[-1], ir.shape[-1]
    n = 1 << (T + L - 1).bit_length()
    y = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(ir, n), n)
    return y[..., :T]


class Reverb(nn.Module):
    """A learned impulse response per class: ``forward(x (B, T), cls (B,)) -> (B, T)`` = dry + wet.

    The wet response is ``ir[cls] * exp(-t / decay[cls])`` (``decay`` learned, in seconds, through a
    softplus) so training starts from a short, quiet room.
    """

    def __init__(self, n_classes: int = 2, seconds: float = 0.5, sr: int = 22050):
        super().__init__()
        self.sr = sr
        n = max(2, int(seconds * sr))
        g = torch.Generator().manual_seed(1234)
        self.ir = nn.Parameter(0.02 * torch.randn(n_classes, n, generator=g))
        self.decay = nn.Parameter(torch.full((n_classes,), math.log(math.expm1(0.15))))  # softplus -> 0.15 s

    def impulse(self, cls: torch.Tensor) -> torch.Tensor:
        t = torch.arange(self.ir.shape[-1], device=self.ir.device, dtype=self.ir.dtype) / self.sr
        env = torch.exp(-t[None] / F.softplus(self.decay[cls])[:, None].clamp_min(1e-3))
        ir = self.ir[cls] * env
        return torch.cat([torch.zeros_like(ir[:, :1]), ir[:, 1:]], dim=-1)  # the dry path is separate

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return x + fft_convolve(x, self.impulse(cls))


class HarmonicNoiseSynth(nn.Module):
    """Controls -> waveform: harmonics at ``f0`` + filtered noise, then the class's learned reverb.

    Shape:
        f0 ``(B, N)`` Hz; amplitude ``(B, N)``; harmonics ``(B, N, K)`` (a distribution); noise ``(B, N, M)``;
        cls ``(B,)`` the target class (for the reverb). Returns ``(B, length)``.
    """

    def __init__(self, sr: int = 22050, hop: int = 256, n_classes: int = 2, reverb_seconds: float = 0.5):
        super().__init__()
        self.sr, self.hop = sr, hop
        self.reverb = Reverb(n_classes, reverb_seconds, sr) if reverb_seconds > 0 else None

    def forward(self, f0: torch.Tensor, amplitude: torch.Tensor, harmonics: torch.Tensor, noise: torch.Tensor,
                cls: torch.Tensor, length: int | None = None, generator: torch.Generator | None = None,
                white: torch.Tensor | None = None) -> torch.Tensor:
        N = f0.shape[-1]
        T = (N - 1) * self.hop if length is None else int(length)
        k = torch.arange(1, harmonics.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
        keep = (k[None, None] * f0[..., None] < self.sr / 2).to(harmonics.dtype)  # renormalise below Nyquist
        dist = harmonics * keep
        dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
        y = harmonic(f0, dist * amplitude[..., None], self.sr, self.hop, T)
        y = y + filtered_noise(noise, self.hop, T, generator, white)
        return self.reverb(y, cls) if self.reverb is not None else y


__all__ = ["HarmonicNoiseSynth", "Reverb", "exp_sigmoid", "fft_convolve", "filtered_noise", "harmonic", "upsample",
           "NOISE_FFT"]
