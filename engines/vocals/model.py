"""The vocal mask CNN: a residual CNN mapping 25 frames of mixture context to the middle frame's mask.

The network is convolutional over time with *valid* (unpadded) time convolutions whose receptive
field is exactly ``context`` frames: a ``(B, 513, 25)`` input gives the ``(B, 513, 1)`` mask of its
middle frame (the original's design), and a ``(B, 513, N + 24)`` input gives the masks of the ``N``
middle frames in one pass, each computed from its own 25-frame window. Frequency bins are the
channels; residual units (widths ``res_dims``) use dilated kernel-3 time convolutions.
"""
from __future__ import annotations

import torch
from torch import nn

from engines.checkpoint import Int, Ints, Json, capture_init

from .features import CONTEXT, N_BINS


class _NoCounter:
    """BatchNorm without the 0-dim ``num_batches_tracked`` counter (unused with a fixed momentum;
    the checkpoint digest cannot hash 0-dim integer tensors)."""

    def _drop_counter(self):
        self.register_buffer("num_batches_tracked", None)

    def _load_from_state_dict(self, *args, **kwargs):  # skip BatchNorm's counter injection
        return nn.Module._load_from_state_dict(self, *args, **kwargs)


class _BatchNorm(_NoCounter, nn.BatchNorm1d):
    def __init__(self, c: int):
        nn.BatchNorm1d.__init__(self, c)
        self._drop_counter()


class _BatchNorm2d(_NoCounter, nn.BatchNorm2d):
    def __init__(self, c: int):
        nn.BatchNorm2d.__init__(self, c)
        self._drop_counter()


def _bn(c: int) -> nn.BatchNorm1d:
    return _BatchNorm(c)


class ResidualUnit(nn.Module):
    """Dilated time conv (valid) + 1x1 conv with a residual path: ``(B, C_in, T) -> (B, C_out, T - 2*dilation)``."""

    def __init__(self, c_in: int, c_out: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(c_in, c_out, 3, dilation=dilation)
        self.bn1 = _bn(c_out)
        self.mix = nn.Conv1d(c_out, c_out, 1)
        self.bn2 = _bn(c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        y = self.act(self.bn1(self.conv(x)))
        y = self.bn2(self.mix(y))
        return self.act(self.skip(x[..., d:-d]) + y)


@capture_init
class VocalMaskCNN(nn.Module):
    """Residual mask CNN.

    Args:
        n_bins: frequency bins of the input and of the predicted mask (513 for n_fft 1024).
        context: frames of context per predicted frame (odd; 25 ~ 290 ms).
        res_dims: width of each residual unit.
        dilations: time dilation of each unit; ``2 * (sum(dilations) + len(stem)) + 1`` must equal ``context``.
        stem: channels of optional 2D conv layers in front (kernel 5x3 over frequency x time,
            frequency stride 2, valid in time): local time-frequency patterns before the trunk.
        hparams: the training configuration (:class:`engines.vocals.features.HParams` as a dict),
            stored with the weights so a checkpoint carries its features' settings.
    """

    #: What a checkpoint header may ask for (engines.checkpoint refuses anything else).
    CHECKPOINT_BOUNDS = {"n_bins": Int(1, 4096), "context": Int(1, 255), "res_dims": Ints(1, 2048, 16, 1),
                         "dilations": Ints(1, 64, 16, 1), "hparams": Json(65536, none_ok=True),
                         "stem": Ints(1, 256, 8)}

    def __init__(self, n_bins: int = N_BINS, context: int = CONTEXT, res_dims: list | tuple = (192, 192, 192, 192),
                 dilations: list | tuple = (1, 2, 4, 5), hparams: dict | None = None, stem: list | tuple = ()):
        super().__init__()
        if len(res_dims) != len(dilations) or not res_dims:
            raise ValueError("res_dims and dilations need the same (non-zero) length.")
        rf = 2 * (sum(dilations) + len(stem)) + 1
        if rf != context:
            raise ValueError(f"The dilations {list(dilations)} and stem {list(stem)} give a {rf}-frame receptive "
                             f"field, not the context of {context} frames.")
        self.n_bins, self.context = n_bins, context
        self.hparams = dict(hparams or {})
        layers, c, f = [], 1, n_bins
        for ch in stem:
            layers += [nn.Conv2d(c, ch, (5, 3), stride=(2, 1), padding=(2, 0)), _BatchNorm2d(ch), nn.ReLU(inplace=True)]
            c, f = ch, (f - 1) // 2 + 1
        self.stem = nn.Sequential(*layers) if layers else None
        self.inp = nn.Sequential(nn.Conv1d(c * f, res_dims[0], 1), _bn(res_dims[0]), nn.ReLU(inplace=True))
        units, c = [], res_dims[0]
        for w, d in zip(res_dims, dilations):
            units.append(ResidualUnit(c, w, d))
            c = w
        self.units = nn.Sequential(*units)
        self.out = nn.Conv1d(c, n_bins, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits.

        Args:
            x: normalised features ``(B, n_bins, T)`` with ``T >= context``.

        Returns:
            logits ``(B, n_bins, T - context + 1)``; frame ``i`` is the middle frame of input
            frames ``i .. i + context - 1``.
        """
        B, F, T = x.shape
        if F != self.n_bins or T < self.context:
            raise ValueError(f"Expected (B, {self.n_bins}, >= {self.context}) features, got {tuple(x.shape)}.")
        if self.stem is not None:
            x = self.stem(x[:, None])  # (B, C, F', T - 2 * len(stem))
            x = x.reshape(B, -1, x.shape[-1])
        return self.out(self.units(self.inp(x)))
