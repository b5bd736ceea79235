"""Tiny random-init models for tests (like demucs' ``demucs_unittest``)."""
from __future__ import annotations

import torch
from torch import nn

from .checkpoint import Int, capture_init


@capture_init
class TinyNet(nn.Module):
    """A two-layer MLP: ``(B, in_dim) -> (B, out_dim)``; used by checkpoint and solver tests."""

    CHECKPOINT_BOUNDS = {"in_dim": Int(1, 4096), "hidden": Int(1, 4096), "out_dim": Int(1, 4096)}

    def __init__(self, in_dim: int = 8, hidden: int = 16, out_dim: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
