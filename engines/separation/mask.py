"""DGMO-style mask optimisation and reconstruction.

mask = sigmoid(logits), optimised with Adam so that mel(mask * |X|) matches a reference mel:
``loss = L1(log mel(mask |X|), log ref) + lambda_tv * TV(mask) + lambda_sat * mean(mask (1 - mask))``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.audio.spectral import istft

EPS = 1e-5


@dataclass
class OptResult:
    mask: torch.Tensor          # (F, N) in [0, 1]
    losses: list[float]


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference along time and frequency of ``m (F, N)``."""
    tv = m.new_zeros(())
    if m.shape[-1] > 1:
        tv = tv + (m[:, 1:] - m[:, :-1]).abs().mean()
    if m.shape[0] > 1:
        tv = tv + (m[1:] - m[:-1]).abs().mean()
    return tv


def optimise_mask(init: torch.Tensor, mix_mag: torch.Tensor, ref_mel: torch.Tensor, fb: torch.Tensor, *,
                  steps: int = 18, lr: float = 0.28, lambda_tv: float = 0.008, lambda_sat: float = 0.001,
                  floor: torch.Tensor | None = None) -> OptResult:
    """Refine ``init (F, N)`` for ``steps`` Adam steps; ``floor`` ``(F, N)`` or ``(1, N)`` bounds the mask below.

    ``mix_mag (F, N)``, ``ref_mel (M, N)``, ``fb (M, F)``.
    """
    init = init.detach().clamp(1e-3, 1 - 1e-3)
    logits = torch.log(init / (1 - init)).requires_grad_(True)
    losses: list[float] = []
    if steps <= 0:
        return OptResult(init, losses)
    # plain Adam written out: torch.optim's first step costs seconds of one-off imports
    mom = torch.zeros_like(logits)
    var = torch.zeros_like(logits)
    b1, b2 = 0.9, 0.999
    scale = EPS * (1 + mix_mag.mean())
    log_ref = torch.log(ref_mel + scale)
    with torch.enable_grad():
        for k in range(1, steps + 1):
            m = torch.sigmoid(logits)
            est = fb @ (m * mix_mag)
            loss = (torch.log(est + scale) - log_ref).abs().mean() + lambda_tv * total_variation(m) \
                + lambda_sat * (m * (1 - m)).mean()
            (g,) = torch.autograd.grad(loss, logits)
            with torch.no_grad():
                mom.mul_(b1).add_(g, alpha=1 - b1)
                var.mul_(b2).addcmul_(g, g, value=1 - b2)
                step = lr * (1 - b2 ** k) ** 0.5 / (1 - b1 ** k)
                logits -= step * mom / (var.sqrt() + 1e-8)
            losses.append(float(loss.detach()))
    m = torch.sigmoid(logits.detach())
    if floor is not None:
        m = torch.maximum(m, floor)
    return OptResult(m, losses)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor, n_fft: int, hop: int, length: int, *,
               soft: bool = True, threshold: float = 0.5) -> torch.Tensor:
    """iSTFT of ``mask * spec`` with the mixture phase. ``spec (..., F, N)`` complex, ``mask (F, N)``.

    ``soft=False`` binarises the mask at ``threshold``.
    """
    m = mask if soft else (mask >= threshold).to(mask.dtype)
    return istft(spec * m, n_fft, hop, length)
