"""Style encoder: residual CNN blocks + transformer with a CLS token.

The shared building blocks (:class:`ResBlock1d`, :class:`FrameFrontEnd`, :func:`sinusoidal`) live
here too; the content encoder reuses them with instance normalisation.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(n: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal positions ``(n, dim)``."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm with a fixed momentum whose step counter is not saved (the checkpoint digest of
    ``engines.checkpoint`` cannot hash 0-dim int64 tensors; the counter is unused with a momentum)."""

    def __init__(self, ch: int, momentum: float = 0.1):
        super().__init__(ch, momentum=momentum)
        del self._buffers["num_batches_tracked"]
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long), persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return BatchNorm1d(ch)
    if kind == "instance":
        return nn.InstanceNorm1d(ch, affine=True)
    raise ValueError(f"Unknown norm '{kind}' (batch or instance).")


class ResBlock1d(nn.Module):
    """``x + conv(norm(gelu(conv(x))))`` over time; ``(B, C, N) -> (B, C, N)``."""

    def __init__(self, ch: int, kernel: int = 3, dilation: int = 1, norm: str = "batch"):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(ch, ch, kernel, padding=pad, dilation=dilation), _norm(norm, ch), nn.GELU(),
            nn.Conv1d(ch, ch, kernel, padding=pad, dilation=dilation), _norm(norm, ch))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class FrameFrontEnd(nn.Module):
    """Features ``(B, 3, 597, N)`` (normalised real, imag, log-magnitude) -> ``(B, d_model, N)``.

    Frequency is folded into channels; a 1x1 projection, then residual dilated conv blocks over time.
    """

    def __init__(self, n_feat: int = 597, in_planes: int = 3, d_model: int = 128, n_blocks: int = 2,
                 norm: str = "batch"):
        super().__init__()
        self.proj = nn.Conv1d(in_planes * n_feat, d_model, 1)
        self.blocks = nn.Sequential(*[ResBlock1d(d_model, 3, 2 ** i, norm) for i in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, P, F, N = x.shape
        return self.blocks(self.proj(x.reshape(B, P * F, N)))


class StyleEncoder(nn.Module):
    """Residual CNN + transformer encoder with a learned CLS token.

    Shape:
        x: ``(B, 3, 597, N)``; mask: ``(B, N)`` bool, True on valid frames (optional).
        returns ``(frame_style (B, N, style_dim), class_emb (B, style_dim))``.
    """

    def __init__(self, n_feat: int = 597, d_model: int = 128, n_blocks: int = 2, n_layers: int = 2,
                 n_heads: int = 4, style_dim: int = 64, dropout: float = 0.1):
        super().__init__()
        self.front = FrameFrontEnd(n_feat, 3, d_model, n_blocks, "batch")
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.frame_out = nn.Linear(d_model, style_dim)
        self.class_out = nn.Linear(d_model, style_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, _, N = x.shape
        h = self.front(x).transpose(1, 2)  # (B, N, d)
        h = h + sinusoidal(N, h.shape[-1], h.device)
        h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)
        pad = None
        if mask is not None:
            pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=x.device), ~mask], dim=1)
        h = self.transformer(h, src_key_padding_mask=pad)
        return self.frame_out(h[:, 1:]), self.class_out(h[:, 0])
