"""Autoregressive decoder: content sequence + target style -> target log-magnitude frames.

A causal transformer over frames. At step ``t`` it sees the content embedding ``c_t`` (the content
encoder is bidirectional, so ``c_t`` already knows the neighbourhood), the target's class-level
style embedding and a low-dimensional latent ``z_{t-1}`` of the frame it produced last. Training
uses teacher forcing (``z`` of the ground-truth previous frame, with frame dropout and noise so the
decoder cannot lean on it too much) and runs in parallel under a causal mask; inference generates
frame by frame with a key/value cache (one small step per frame). Long inputs are cut into windows
by the model (see :meth:`engines.timbre.model.TimbreTransfer.transfer_logmag`) and overlap-added.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .style_encoder import sinusoidal


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention; ``(B, N, d) -> (B, N, d)``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.1):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}.")
        self.h, self.dh = n_heads, d_model // n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        return tuple(t.reshape(B, N, self.h, self.dh).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self._split(x)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, N, D)))
        return x + self.drop(self.ff(self.ln2(x)))

    def step(self, x: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, t: int) -> torch.Tensor:
        """One frame ``x (B, 1, d)`` at position ``t``; writes its key/value into the caches ``(B, H, Nmax, dh)``."""
        B, _, D = x.shape
        q, k, v = self._split(x)
        cache_k[:, :, t:t + 1] = k
        cache_v[:, :, t:t + 1] = v
        a = F.scaled_dot_product_attention(q, cache_k[:, :, :t + 1], cache_v[:, :, :t + 1])
        x = x + self.proj(a.transpose(1, 2).reshape(B, 1, D))
        return x + self.ff(self.ln2(x))


class Decoder(nn.Module):
    """Autoregressive transformer decoder.

    Shape:
        content: ``(B, N, content_dim)``; style: ``(B, style_dim)``; target (teacher forcing):
        ``(B, N, n_out)`` log-magnitudes or ``None`` (generate); base: ``(B, N, n_out)`` the input's
        log-magnitude when ``residual`` (the decoder then predicts a log-gain on top of it, so it starts
        as the identity and keeps the input's harmonics exactly where they are). Returns ``(B, N, n_out)``.
    """

    def __init__(self, content_dim: int = 64, style_dim: int = 64, n_out: int = 513, latent_dim: int = 32,
                 d_model: int = 128, n_layers: int = 2, n_heads: int = 4, dropout: float = 0.1,
                 latent_dropout: float = 0.5, latent_noise: float = 0.2, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.latent_dropout, self.latent_noise = latent_dropout, latent_noise
        self.d_model = d_model
        self.in_content = nn.Linear(content_dim, d_model)
        self.in_style = nn.Linear(style_dim, d_model)
        self.in_latent = nn.Linear(latent_dim, d_model)
        self.start = nn.Parameter(torch.zeros(latent_dim))
        self.to_latent = nn.Sequential(nn.Linear(n_out, latent_dim), nn.Tanh())
        self.blocks = nn.ModuleList([CausalBlock(d_model, n_heads, dropout) for _ in range(n_layers)])
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 2 * d_model), nn.GELU(),
                                  nn.Linear(2 * d_model, n_out))
        if residual:  # the output is base + head(...): start as the identity (the input's spectrum)
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)
        else:  # log-magnitudes live around -9..4: start the output near a quiet spectrum
            nn.init.constant_(self.head[-1].bias, -5.0)

    def _cond(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        N = content.shape[1]
        return self.in_content(content) + self.in_style(style)[:, None] + sinusoidal(N, self.d_model, content.device)

    def _base(self, base: torch.Tensor | None, content: torch.Tensor, t: slice | None = None):
        if not self.residual:
            return 0.0
        if base is None:
            raise ValueError("A residual decoder needs base= (the input's log-magnitude, (B, N, n_out)).")
        return base if t is None else base[:, t]

    def forward(self, content: torch.Tensor, style: torch.Tensor, target: torch.Tensor | None = None,
                base: torch.Tensor | None = None) -> torch.Tensor:
        B, N, _ = content.shape
        if target is None:
            return self.generate(content, style, base)
        z = self.to_latent(target)
        if self.training:
            keep = (torch.rand(B, N, 1, device=z.device) >= self.latent_dropout).to(z.dtype)
            z = (z + self.latent_noise * torch.randn_like(z)) * keep
        prev = torch.cat([self.start.expand(B, 1, -1), z[:, :-1]], dim=1)
        h = self._cond(content, style) + self.in_latent(prev)
        for blk in self.blocks:
            h = blk(h)
        return self._base(base, content) + self.head(h)

    @torch.no_grad()
    def generate(self, content: torch.Tensor, style: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Frame-by-frame generation with a key/value cache; ``(B, N, n_out)``."""
        B, N, _ = content.shape
        cond = self._cond(content, style)
        caches = [(cond.new_zeros(B, b.h, N, b.dh), cond.new_zeros(B, b.h, N, b.dh)) for b in self.blocks]
        z = self.start.expand(B, 1, -1)
        outs = []
        for t in range(N):
            h = cond[:, t:t + 1] + self.in_latent(z)
            for blk, (ck, cv) in zip(self.blocks, caches):
                h = blk.step(h, ck, cv, t)
            y = self._base(base, content, slice(t, t + 1)) + self.head(h)
            outs.append(y)
            z = self.to_latent(y)
        return torch.cat(outs, dim=1)
