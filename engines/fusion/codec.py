"""Codecs behind one interface: waveform ``(B, 1, T)`` <-> continuous latent ``(B, 128, T')``.

* :class:`MDCTCodec` (``"builtin"``), the offline default: a critically sampled MDCT (sine window,
  256-sample frames, hop 128) at 24 kHz. It is orthogonal (Princen-Bradley / TDAC), so
  ``decode(encode(x)) == x`` up to float rounding, and needs no weights. Channel ``k`` holds the
  band around ``(k + 0.5) * 93.75`` Hz, frame ``n`` the samples around ``n * 128``:
  a 187.5 Hz frame rate. Both directions are linear and differentiable.
* :class:`EncodecCodec`: ``transformers.EncodecModel`` (hub id ``facebook/encodec_24khz`` /
  ``facebook/encodec_48khz`` or a local folder). The latent is the encoder output before
  quantisation; decoding runs the decoder. The 48 kHz model normalises its input by its RMS;
  :meth:`EncodecCodec.encode` keeps that scale (``return_scale=True``) and ``decode(z, scale)``
  restores it. Weights are frozen (``requires_grad=False``) but gradients flow through the decoder.

``get_codec(name_or_path)`` dispatches: ``"builtin"``/``"mdct"`` or an EnCodec id/folder.
"""
from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

LATENT_CHANNELS = 128


class Codec(ABC, nn.Module):
    """Interface: ``encode(wav (B, 1, T)) -> (B, 128, T')``; ``decode(z, length=None) -> (B, 1, T)``."""

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @property
    @abstractmethod
    def frame_rate(self) -> float: ...

    @property
    def channels(self) -> int:
        return LATENT_CHANNELS

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor: ...

    def channel_frequencies(self) -> torch.Tensor | None:
        """Centre frequency (Hz) of each latent channel, or ``None`` when channels are not bands."""
        return None

    @staticmethod
    def _check(wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"A codec takes audio shaped (B, 1, T); got {tuple(wav.shape)}.")
        return wav


class MDCTCodec(Codec):
    """Orthogonal MDCT with 128 bands (the built-in codec); see the module docstring.

    Args:
        sample_rate: the rate audio must have (24000 by default).
        bands: number of MDCT coefficients per frame (= hop; the latent has this many channels).
    """

    def __init__(self, sample_rate: int = 24000, bands: int = LATENT_CHANNELS):
        super().__init__()
        self._sr = int(sample_rate)
        self.bands = int(bands)
        n = 2 * self.bands
        t = torch.arange(n, dtype=torch.float64)
        k = torch.arange(self.bands, dtype=torch.float64)
        window = torch.sin(math.pi * (t + 0.5) / n)
        basis = torch.cos(math.pi / self.bands * (t[None, :] + 0.5 + self.bands / 2) * (k[:, None] + 0.5))
        kernel = (window[None, :] * basis * math.sqrt(2.0 / self.bands)).float()  # (bands, 2*bands)
        self.register_buffer("kernel", kernel[:, None, :], persistent=False)  # conv1d weight (K, 1, 2K)

    @property
    def sample_rate(self) -> int:
        return self._sr

    @property
    def frame_rate(self) -> float:
        return self._sr / self.bands

    @property
    def name(self) -> str:
        return "builtin"

    def channel_frequencies(self) -> torch.Tensor:
        return (torch.arange(self.bands) + 0.5) * self._sr / (2 * self.bands)

    def num_frames(self, length: int) -> int:
        return math.ceil(length / self.bands) + 1

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav (B, 1, T)`` -> ``z (B, 128, ceil(T / 128) + 1)``."""
        B, _, T = self._check(wav).shape
        K = self.bands
        frames = self.num_frames(T)
        total = (frames + 1) * K
        x = F.pad(wav, (K, total - T - K))
        return F.conv1d(x, self.kernel.to(wav.dtype), stride=K)

    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``z (B, 128, N)`` -> ``wav (B, 1, length)`` (``length`` defaults to ``(N - 1) * 128``)."""
        B, C, N = z.shape
        if C != self.bands:
            raise ValueError(f"The built-in codec decodes {self.bands} channels; got {C}.")
        K = self.bands
        y = F.conv_transpose1d(z, self.kernel.to(z.dtype), stride=K)  # (B, 1, (N + 1) * K)
        length = (N - 1) * K if length is None else int(length)
        y = y[..., K:K + length]
        if y.shape[-1] < length:
            y = F.pad(y, (0, length - y.shape[-1]))
        return y


class EncodecCodec(Codec):
    """``transformers.EncodecModel`` behind the codec interface (frozen; gradients flow through).

    Args:
        model: an ``EncodecModel`` instance (tests build a small random one).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        cfg = model.config
        self._sr = int(cfg.sampling_rate)
        self._hop = int(math.prod(cfg.upsampling_ratios))
        self._audio_channels = int(cfg.audio_channels)
        self._normalize = bool(getattr(cfg, "normalize", False))
        self._latent = int(cfg.hidden_size)
        if self._latent != LATENT_CHANNELS:
            logger.warning("EnCodec latent has %d channels (the fusion interface expects %d)",
                           self._latent, LATENT_CHANNELS)

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "EncodecCodec":
        """Load from a hub id (needs a download, or the hub cache) or a local folder."""
        from transformers import EncodecModel  # lazy: ~4 s import

        try:
            model = EncodecModel.from_pretrained(name_or_path)
        except Exception as err:  # noqa: BLE001 - offline machines end here for hub ids
            raise ValueError(f"Cannot load the EnCodec model '{name_or_path}' ({err.__class__.__name__}). "
                             "Weights cannot be downloaded here: pass a local folder saved with "
                             "save_pretrained, or use the built-in codec (--codec builtin).") from err
        return cls(model)

    @property
    def sample_rate(self) -> int:
        return self._sr

    @property
    def frame_rate(self) -> float:
        return self._sr / self._hop

    @property
    def channels(self) -> int:
        return self._latent

    @property
    def name(self) -> str:
        return f"encodec_{self._sr // 1000}khz"

    def encode(self, wav: torch.Tensor, return_scale: bool = False):
        """``wav (B, 1, T)`` -> ``z (B, 128, ceil(T / hop))`` (and the RMS scale when asked)."""
        B, _, T = self._check(wav).shape
        x = wav.expand(B, self._audio_channels, T) if self._audio_channels > 1 else wav
        pad = (-T) % self._hop
        if pad:
            x = F.pad(x, (0, pad))
        scale = None
        if self._normalize:
            mono = x.mean(1, keepdim=True)
            scale = mono.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8
            x = x / scale
        z = self.model.encoder(x)
        return (z, scale) if return_scale else z

    def decode(self, z: torch.Tensor, length: int | None = None, scale: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, 128, N)`` -> ``wav (B, 1, length)`` (mono; ``scale`` from ``encode`` restores the level)."""
        y = self.model.decoder(z)
        if y.shape[1] > 1:
            y = y.mean(1, keepdim=True)
        if scale is not None:
            y = y * scale
        if length is not None:
            y = y[..., :length] if y.shape[-1] >= length else F.pad(y, (0, length - y.shape[-1]))
        return y


BUILTIN_NAMES = ("builtin", "mdct")


def get_codec(name_or_path: str | None = "builtin") -> Codec:
    """``"builtin"`` (default) or an EnCodec hub id / local folder."""
    if name_or_path is None or str(name_or_path).lower() in BUILTIN_NAMES:
        return MDCTCodec()
    if os.path.isdir(str(name_or_path)) or "encodec" in str(name_or_path).lower():
        return EncodecCodec.from_pretrained(str(name_or_path))
    raise ValueError(f"Unknown codec '{name_or_path}': use 'builtin', an EnCodec hub id "
                     "(facebook/encodec_24khz, facebook/encodec_48khz) or a local EnCodec folder.")
