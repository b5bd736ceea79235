"""The cascade transformer: (input latent, target latent, their masks) -> output latent.

Each of ``num_stages`` stages reads the current estimate together with both source latents and the
two masks, runs ``num_transformer_layers`` transformer layers over time (frames are tokens) and
adds a correction, scaled by the local magnitude of the direct fusion, to the estimate. The first estimate is the direct complementary fusion
``m_in * z_in + m_tgt * z_tgt``, and every stage's output projection starts at zero, so an
untrained cascade equals the direct fusion and training learns corrections to it (seams, level,
what the masked-out regions should keep).

With ``cascade=False`` the stages see only the input latent and its mask (the original's
non-cascade mode). Latents are normalised by their RMS inside the model and rescaled on output.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from engines.checkpoint import Bool, Float, Int, capture_init


class Stage(nn.Module):
    """One cascade stage: ``(B, in_ch, N) -> (B, C, N)`` correction."""

    def __init__(self, in_ch: int, channels: int, d_model: int, num_layers: int, nhead: int, ff: int, dropout: float):
        super().__init__()
        self.inp = nn.Conv1d(in_ch, d_model, 1)
        self.pos = nn.Conv1d(d_model, d_model, 7, padding=3, groups=d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        # no bias: a constant latent offset would be a buzz at the frame rate in every band
        self.out = nn.Conv1d(d_model, channels, 1, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.pos(h)
        h = self.encoder(h.transpose(1, 2))
        return self.out(self.norm(h).transpose(1, 2))


@capture_init
class CascadeFusion(nn.Module):
    """Cascade transformer on codec latents.

    Args:
        channels: latent channels (128).
        d_model, nhead, dim_feedforward, dropout: transformer sizes.
        num_stages: stages in the cascade.
        num_transformer_layers: transformer layers per stage.
        cascade: also read the target latent (cascade mode); otherwise only the input.
    """

    #: What a checkpoint header may ask for (engines.checkpoint refuses anything else).
    CHECKPOINT_BOUNDS = {"channels": Int(1, 1024), "d_model": Int(1, 1024), "num_stages": Int(1, 8),
                         "num_transformer_layers": Int(1, 8), "nhead": Int(1, 32),
                         "dim_feedforward": Int(1, 4096), "dropout": Float(0.0, 1.0), "cascade": Bool()}

    def __init__(self, channels: int = 128, d_model: int = 128, num_stages: int = 3, num_transformer_layers: int = 2,
                 nhead: int = 4, dim_feedforward: int = 256, dropout: float = 0.0, cascade: bool = True):
        super().__init__()
        self.channels = channels
        self.cascade = cascade
        in_ch = channels * (5 if cascade else 3)
        self.stages = nn.ModuleList(Stage(in_ch, channels, d_model, num_transformer_layers, nhead, dim_feedforward,
                                          dropout) for _ in range(num_stages))

    def forward(self, z_in: torch.Tensor, z_tgt: torch.Tensor, m_in: torch.Tensor, m_tgt: torch.Tensor) -> torch.Tensor:
        """All tensors ``(B, C, N)``; returns the output latent ``(B, C, N)``."""
        B, C, N = z_in.shape
        if C != self.channels or z_tgt.shape != z_in.shape or m_in.shape != z_in.shape or m_tgt.shape != z_in.shape:
            raise ValueError(f"CascadeFusion expects four (B, {self.channels}, N) tensors; got "
                             f"{tuple(z_in.shape)}, {tuple(z_tgt.shape)}, {tuple(m_in.shape)}, {tuple(m_tgt.shape)}.")
        scale = torch.cat([z_in, z_tgt], 1).pow(2).mean((1, 2), keepdim=True).sqrt().clamp_min(1e-5)
        a, b = z_in / scale, z_tgt / scale
        est = m_in * a + m_tgt * b
        ctx = [a, b, m_in, m_tgt] if self.cascade else [a, m_in]
        # corrections are scaled by the local magnitude of the direct fusion (a 5-frame average): the
        # latent's dynamic range is huge, and a uniform correction would fill quiet or masked-out
        # (silent) regions with noise
        env = F.avg_pool1d(est.abs(), 5, 1, 2, count_include_pad=False)
        for stage in self.stages:
            est = est + stage(torch.cat([est, *ctx], 1)) * env
        return est * scale

    @torch.no_grad()
    def forward_chunked(self, z_in, z_tgt, m_in, m_tgt, window: int = 384, overlap: int = 48) -> torch.Tensor:
        """:meth:`forward` over windows of ``window`` frames, cross-faded over ``overlap`` frames
        (attention cost stays linear in the length); all windows run as one batch
        (:func:`engines.audio.chunking.run_chunked`, cross-fade mode)."""
        from engines.audio.chunking import run_chunked

        if not z_in.shape == z_tgt.shape == m_in.shape == m_tgt.shape:
            return self(z_in, z_tgt, m_in, m_tgt)  # refuses with the readable message
        C = z_in.shape[1]
        x = torch.cat([z_in, z_tgt, m_in, m_tgt], 1)  # (B, 4C, N): one tensor for the runner
        return run_chunked(lambda piece: self(*piece.split(C, 1)), x, window, overlap=overlap, batch=True)
