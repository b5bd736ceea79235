"""The band-split separator: full-band, stereo-aware masks for four stems with seconds of context.

A compact BSRNN-style design with a dilated temporal convolution trunk instead of recurrent layers (fast
on a CPU, and a fixed receptive field, so chunked inference with enough context equals whole-song
inference):

* input: the complex STFT of the (level-normalised) stereo mixture at the input's rate (44.1 kHz:
  n_fft 2048, hop 512, 1025 bins, no band cut), power-law compressed (``|X|^compress`` with its phase);
* **band split**: the bins are cut into ``len(band_edges) - 1`` bands (narrow at low frequencies, wide at
  high ones); each band's real and imaginary parts of both channels go through its own linear layer to
  ``dim`` features: ``(B, K bands, N frames, dim)``;
* **trunk**: ``len(dilations)`` residual blocks, each a per-band temporal block (LayerNorm, depthwise
  dilated kernel-``kernel`` time convolution, pointwise MLP) and a band-mixing block (LayerNorm, MLP over
  the band axis, per frame). Receptive field ``1 + (kernel - 1) * sum(dilations)`` frames (255 = 3 s for
  the defaults);
* **mask estimation**: per band an MLP to ``stems x channels x bins`` logits; a softmax over the stems makes
  the masks sum to one, so the stems sum to the mixture exactly.

Stems are ``mask * X`` (real masks on the complex mixture STFT) per channel; a mono input runs as two equal
channels.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from engines.checkpoint import Float, Int, Ints, Json, Strs, capture_init

STEMS4 = ("vocals", "drums", "bass", "other")


def band_edges(n_fft: int = 2048, sample_rate: int = 44100, n_bands: int = 32, min_width: int = 3) -> list[int]:
    """Bin edges of ``<= n_bands`` bands on a mel-like scale covering all ``n_fft // 2 + 1`` bins, each at least
    ``min_width`` bins wide (the lowest ones are merged until they are)."""
    n_bins = n_fft // 2 + 1
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    top = mel(sample_rate / 2)
    edges = [0]
    for i in range(1, n_bands):
        b = int(round(inv(top * i / n_bands) / (sample_rate / n_fft)))
        if b - edges[-1] >= min_width and n_bins - b >= min_width:
            edges.append(b)
    edges.append(n_bins)
    return edges


class _TimeBlock(nn.Module):
    """``(B*K, N, D) -> same``: LayerNorm, depthwise dilated time conv ('same' padding), pointwise MLP, residual."""

    def __init__(self, dim: int, kernel: int, dilation: int, expand: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.dw = nn.Conv1d(dim, dim, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2, groups=dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * expand), nn.GELU(), nn.Linear(dim * expand, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp(y)


class _BandBlock(nn.Module):
    """``(B, N, K, D) -> same``: LayerNorm, MLP across the K bands (per frame and feature), residual."""

    def __init__(self, dim: int, n_bands: int, expand: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mix = nn.Sequential(nn.Linear(n_bands, n_bands * expand), nn.GELU(), nn.Linear(n_bands * expand, n_bands))
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(self.norm(x).transpose(-1, -2)).transpose(-1, -2)
        return x + self.ff(y)


@capture_init
class BandSplitSeparator(nn.Module):
    """Band-split mask network over the full-band stereo STFT (see the module docstring).

    Args:
        sample_rate, n_fft, hop: the STFT the model was trained on (the input is resampled to ``sample_rate``).
        band_edges: bin edges of the bands (first 0, last ``n_fft // 2 + 1``).
        dim: features per band.
        dilations: time dilation of each trunk block (its depth).
        kernel: time kernel of the depthwise convolutions (odd).
        channels: audio channels the model reads (2: stereo; mono inputs are duplicated).
        stems: output stem names (``vocals`` first).
        compress: power-law exponent of the input magnitudes.
        hparams: the training configuration, stored with the weights.
    """

    CHECKPOINT_BOUNDS = {"sample_rate": Int(8000, 48000), "n_fft": Int(64, 16384), "hop": Int(16, 8192),
                         "band_edges": Ints(0, 8193, 256, 2), "dim": Int(4, 1024), "dilations": Ints(1, 1024, 64, 1),
                         "kernel": Int(1, 31), "channels": Int(1, 8), "stems": Strs(8, 32),
                         "compress": Float(0.05, 1.0), "hparams": Json(65536, none_ok=True)}

    def __init__(self, sample_rate: int = 44100, n_fft: int = 2048, hop: int = 512, band_edges: list | None = None,
                 dim: int = 48, dilations: list | tuple = (1, 2, 4, 8, 16, 32, 64, 1), kernel: int = 3,
                 channels: int = 2, stems: list | tuple = STEMS4, compress: float = 0.3, hparams: dict | None = None):
        super().__init__()
        n_bins = n_fft // 2 + 1
        edges = list(band_edges) if band_edges else globals()["band_edges"](n_fft, sample_rate)
        if edges[0] != 0 or edges[-1] != n_bins or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"band_edges must rise from 0 to {n_bins}, got {edges[:4]}...{edges[-2:]}")
        if kernel % 2 == 0:
            raise ValueError("kernel must be odd")
        if len(stems) < 2 or stems[0] != "vocals":
            raise ValueError("stems must start with 'vocals' and name at least two stems")
        self.sample_rate, self.n_fft, self.hop = sample_rate, n_fft, hop
        self.edges, self.dim, self.channels, self.stems = edges, dim, channels, list(stems)
        self.compress, self.kernel, self.dilations = compress, kernel, list(dilations)
        self.hparams = dict(hparams or {})
        widths = [b - a for a, b in zip(edges, edges[1:])]
        K, S, C = len(widths), len(stems), channels
        self.split = nn.ModuleList(nn.Linear(2 * C * w, dim) for w in widths)
        self.time = nn.ModuleList(_TimeBlock(dim, kernel, d) for d in dilations)
        self.band = nn.ModuleList(_BandBlock(dim, K) for _ in dilations)
        self.out_norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, S * C * w))
                                   for w in widths)

    @property
    def receptive_field(self) -> int:
        """Frames on which one output frame depends."""
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Stem mask logits.

        Args:
            spec: complex mixture STFT ``(B, C, F, N)`` (level-normalised; ``C == channels``).

        Returns:
            logits ``(B, S, C, F, N)`` (softmax over ``S`` gives the masks).
        """
        B, C, F, N = spec.shape
        if C != self.channels or F != self.edges[-1]:
            raise ValueError(f"Expected a (B, {self.channels}, {self.edges[-1]}, N) spectrogram, got {tuple(spec.shape)}.")
        comp = spec * (spec.abs().clamp_min_(1e-8).pow_(self.compress - 1))
        z = torch.view_as_real(comp).permute(0, 1, 4, 2, 3)  # (B, C, 2, F, N), a view (no copy)
        feats = []
        for lin, a, b in zip(self.split, self.edges, self.edges[1:]):
            band = z[..., a:b, :].permute(0, 4, 1, 2, 3).reshape(B, N, -1)  # (B, N, C*2*w)
            feats.append(lin(band))
        x = torch.stack(feats, 2)  # (B, N, K, D)
        K, D = x.shape[2], x.shape[3]
        for tb, bb in zip(self.time, self.band):
            x = tb(x.permute(0, 2, 1, 3).reshape(B * K, N, D)).reshape(B, K, N, D).permute(0, 2, 1, 3)
            x = bb(x)
        x = self.out_norm(x)
        S = len(self.stems)
        out = x.new_empty(B, N, S, C, F)  # each band's head writes its bins (no list of pieces to concatenate)
        for k, (head, a, b) in enumerate(zip(self.heads, self.edges, self.edges[1:])):
            out[..., a:b] = head(x[:, :, k]).reshape(B, N, S, C, b - a)
        return out.permute(0, 2, 3, 4, 1)  # (B, S, C, F, N)

    def masks(self, spec: torch.Tensor, sharpen: float = 1.0) -> torch.Tensor:
        """Soft masks ``(B, S, C, F, N)`` summing to one over the stems."""
        logits = self(spec)
        if torch.is_grad_enabled():
            return torch.softmax(logits * sharpen if sharpen != 1.0 else logits, dim=1)
        if sharpen != 1.0:  # inference: the softmax in place (a 30 s stereo piece's four masks are ~100 MB)
            logits.mul_(sharpen)
        logits.sub_(logits.amax(1, keepdim=True)).exp_()
        return logits.div_(logits.sum(1, keepdim=True))


def margin_samples(net: BandSplitSeparator) -> int:
    """Context (samples, a multiple of the hop) each streamed piece needs so that its kept span equals
    whole-song inference: half the receptive field plus the STFT window."""
    return (net.receptive_field // 2 + net.n_fft // net.hop + 2) * net.hop


@torch.inference_mode()
def separate_stems(net: BandSplitSeparator, wav: torch.Tensor, gain: float, *, stems: int = 2, sharpen: float = 1.0,
                   binary: bool = False, chunk_seconds: float = 30.0, progress=None, on_mask=None) -> torch.Tensor:
    """Stems of ``wav`` ``(C, T)`` at the model rate, streamed in chunks (context mode of
    :func:`engines.audio.chunking.run_chunked`, so the result equals whole-song inference).

    Args:
        gain: level normalisation of the whole song (applied to the network's input only).
        stems: 2 -> ``(1, C, T)`` vocals only (the accompaniment is the mixture minus them); 4 (or the model's
            stem count) -> ``(S, C, T)`` every stem.
        binary: each bin goes wholly to its most likely stem (2 stems: vocals when their mask > 0.5).
        on_mask: ``on_mask(vocal_mask (C, F, N), piece_samples)`` per piece (the plotted mask).

    A stereo model reads two channels at once; a mono song runs as two equal channels (the output keeps one),
    and a song with more channels runs each channel as such a dual-mono pair.
    """
    from engines.audio import chunking, spectral

    C, T = wav.shape
    dev = next(net.parameters()).device
    hop, n_fft = net.hop, net.n_fft
    chunk = max(int(chunk_seconds * net.sample_rate) // hop, 32) * hop
    nc = net.channels

    def piece(seg: torch.Tensor) -> torch.Tensor:
        seg = seg.to(dev)
        # (P, nc, L): the channel pairs the network reads
        x = seg[None] if C == nc else seg[:, None].expand(C, nc, seg.shape[-1])
        spec = spectral.stft(x, n_fft, hop)  # (P, nc, F, N)
        m = net.masks(spec * gain, sharpen)  # (P, S, nc, F, N)
        if binary:
            if stems == 2:
                m = (m[:, :1] > 0.5).to(m.dtype)
            else:
                m = torch.nn.functional.one_hot(m.argmax(1), m.shape[1]).permute(0, 4, 1, 2, 3).to(m.dtype)
        elif stems == 2:
            m = m[:, :1]
        if C != nc:  # dual mono: one channel of each pair (they are equal)
            vm = m[:, 0, 0]  # (C, F, N)
        else:
            vm = m[0, 0]  # (C, F, N)
        if on_mask is not None:
            on_mask(vm, seg.shape[-1])
        # one stem at a time: the inverse STFT's frame buffers for all four stems at once would hold ~0.5 GB more
        y = torch.stack([spectral.istft(m[:, s] * spec, n_fft, hop, length=seg.shape[-1]) for s in range(m.shape[1])],
                        1)  # (P, S', nc, L)
        y = y[0] if C == nc else y[:, :, 0].transpose(0, 1)  # (S', C, L)
        return y

    return chunking.run_chunked(piece, wav, chunk, context=margin_samples(net), progress=progress)
