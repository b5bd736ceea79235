"""Discriminator: an MLP that classifies embeddings by instrument.

It must classify style (frame or class) embeddings correctly and be at chance on content
embeddings; the encoders are trained against it on the content side (see ``losses``).
"""
from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """MLP ``(..., dim) -> (..., n_classes)`` logits.

    Style and content embeddings share one discriminator, so both must have ``dim`` channels.
    """

    def __init__(self, dim: int = 64, hidden: int = 128, n_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_classes))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb)
