"""Content encoder: like the style encoder, with instance normalisation and no CLS token.

Instance normalisation over time removes each channel's clip-level mean, i.e. the static spectral
envelope that carries most of an instrument's colour, so the sequence keeps the notes.
"""
from __future__ import annotations

import torch
from torch import nn

from .style_encoder import FrameFrontEnd, sinusoidal


class ContentEncoder(nn.Module):
    """Residual CNN (instance norm) + transformer encoder -> a sequence of content embeddings.

    Shape:
        x: ``(B, 3, 597, N)``; mask: ``(B, N)`` bool, True on valid frames (optional).
        returns ``(B, N, content_dim)``.
    """

    def __init__(self, n_feat: int = 597, d_model: int = 128, n_blocks: int = 2, n_layers: int = 2,
                 n_heads: int = 4, content_dim: int = 64, dropout: float = 0.1):
        super().__init__()
        self.front = FrameFrontEnd(n_feat, 3, d_model, n_blocks, "instance")
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, content_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, _, _, N = x.shape
        h = self.front(x).transpose(1, 2)
        h = h + sinusoidal(N, h.shape[-1], h.device)
        h = self.transformer(h, src_key_padding_mask=None if mask is None else ~mask)
        return self.out(h)
