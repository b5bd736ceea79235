"""Losses of the fusion model, computed in audio space after decoding (seed 001).

* :class:`RMSLoss`: root-mean-square difference of two waveforms.
* :class:`MultiResolutionSTFTLoss`: spectral convergence + log-magnitude L1 over FFT sizes
  512/1024/2048 with hops 128/256/512 (Yamamoto et al., Parallel WaveGAN, arXiv:1910.11480);
  the maintained ``auraloss`` implementation.
* :class:`MelLoss`: L1 between log-mel spectrograms (1024 FFT, 80 bins, 0-8 kHz).
* :class:`FusionLoss`: the weighted sum the trainer uses, returning every component.

Shape: every ``forward(input, target)`` takes waveforms ``(B, 1, T)`` and returns a scalar
(``reduction="mean"``) or ``(B,)`` (``reduction="none"``).
"""
from __future__ import annotations

import torch
from torch import nn

from engines.audio import spectral


class RMSLoss(nn.Module):
    """``sqrt(mean((input - target) ** 2))`` per item, then reduced."""

    def __init__(self, reduction: str = "mean", eps: float = 1e-12):
        super().__init__()
        self.reduction, self.eps = reduction, eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = (input - target).pow(2).flatten(1).mean(1).add(self.eps).sqrt()
        return per.mean() if self.reduction == "mean" else per


class MultiResolutionSTFTLoss(nn.Module):
    """auraloss' multi-resolution STFT loss with the issue's resolutions.

    ``eps`` floors the magnitudes inside the log (auraloss' default is 1e-8): with 1e-4 (about -80 dB
    re a full-scale sine bin at n_fft 512) near-silent bins, e.g. the empty quarters of a hybrid
    mask, no longer dominate the log-magnitude term.
    """

    def __init__(self, fft_sizes=(512, 1024, 2048), hop_sizes=(128, 256, 512), reduction: str = "mean",
                 eps: float = 1e-4):
        super().__init__()
        from auraloss.freq import MultiResolutionSTFTLoss as _MR

        self.reduction = reduction
        self.loss = _MR(fft_sizes=list(fft_sizes), hop_sizes=list(hop_sizes), win_lengths=list(fft_sizes),
                        w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, reduction="mean", eps=eps)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return self.loss(input, target)
        return torch.stack([self.loss(input[i:i + 1], target[i:i + 1]) for i in range(input.shape[0])])


class MelLoss(nn.Module):
    """L1 distance of ``log(mel + 1e-5)`` spectrograms (Slaney mel, 1024 FFT, hop 256)."""

    def __init__(self, sample_rate: int = 24000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                 fmin: float = 0.0, fmax: float = 8000.0, reduction: str = "mean"):
        super().__init__()
        self.n_fft, self.hop, self.reduction = n_fft, hop, reduction
        fb = spectral.mel_filterbank(sample_rate, n_fft, n_mels, fmin, min(fmax, sample_rate / 2))
        self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.float32), persistent=False)

    def _logmel(self, x: torch.Tensor) -> torch.Tensor:
        mag = spectral.stft(x.flatten(1), self.n_fft, self.hop).abs()  # (B, F, N)
        return torch.log(torch.matmul(self.fb.to(mag.dtype), mag) + 1e-5)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = (self._logmel(input) - self._logmel(target)).abs().flatten(1).mean(1)
        return per.mean() if self.reduction == "mean" else per


class FusionLoss(nn.Module):
    """``w_in * rms_input + w_tgt * rms_target + w_spec * spectral + w_mel * mel``.

    ``forward(out, ref_input, ref_target, out_input=None, out_target=None, ref=None)``:
        out: decoded output ``(B, 1, T)``; ref_input / ref_target: the (masked) input and target
        audio; out_input / out_target: the output restricted to each source's region (defaults to
        ``out``: the original's unmasked RMS losses); ref: what the spectral and mel losses compare
        against (defaults to ``ref_target``, as in the original).
    Returns ``{"loss", "rms_input", "rms_target", "spectral", "mel"}`` (components are computed even
    at weight 0, for logging; ``spectral``/``mel`` are skipped at weight 0 when ``cheap=True``).
    """

    def __init__(self, weight_input: float = 1.0, weight_target: float = 1.0, weight_spectral: float = 0.5,
                 weight_mel: float = 0.5, sample_rate: int = 24000, cheap: bool = False):
        super().__init__()
        self.w = dict(rms_input=weight_input, rms_target=weight_target, spectral=weight_spectral, mel=weight_mel)
        self.cheap = cheap
        self.rms = RMSLoss()
        self.stft = MultiResolutionSTFTLoss()
        self.mel = MelLoss(sample_rate)

    def forward(self, out, ref_input, ref_target, out_input=None, out_target=None, ref=None) -> dict:
        out_input = out if out_input is None else out_input
        out_target = out if out_target is None else out_target
        ref = ref_target if ref is None else ref
        parts = {"rms_input": self.rms(out_input, ref_input), "rms_target": self.rms(out_target, ref_target)}
        zero = out.new_zeros(())
        parts["spectral"] = self.stft(out, ref) if (self.w["spectral"] or not self.cheap) else zero
        parts["mel"] = self.mel(out, ref) if (self.w["mel"] or not self.cheap) else zero
        loss = sum(self.w[k] * v for k, v in parts.items())
        return {"loss": loss, **parts}
