"""The whole timbre transfer model: encoders, decoder, discriminator, statistics and class styles.

Data flow (frames ``N`` at 22050 Hz / hop 256)::

    raw (B, 2, 597, N) real/imag of STFT(513)+CQT(84)
      -> prepare: normalised real, imag (stored statistics) + log-magnitude -> (B, 3, 597, N)
      -> ContentEncoder -> content (B, N, 64)        StyleEncoder -> frame style (B, N, 64), class (B, 64)
      -> Decoder(content, target style) -> target log-magnitude (B, N, 513)

The complex output is that magnitude with a phase (the input's, refined by Griffin-Lim; see
``api``). ``prototypes`` holds a running mean class embedding per instrument, the style used when
no reference clip is given.
"""
from __future__ import annotations

import torch
from torch import nn

from engines.audio import spectral
from engines.checkpoint import Bool, Float, Int, Str, capture_init

from .content_encoder import ContentEncoder
from .decoder import Decoder
from .discriminator import Discriminator
from .features import INSTRUMENTS, LOG_EPS, N_FEAT, N_FFT, N_STFT, SAMPLE_RATE, FeatureStats
from .style_encoder import StyleEncoder


def instrument_index(name: str | int) -> int:
    if isinstance(name, int):
        if not 0 <= name < len(INSTRUMENTS):
            raise ValueError(f"Instrument index {name} out of range.")
        return name
    key = str(name).lower()
    if key not in INSTRUMENTS:
        raise ValueError(f"Unknown instrument '{name}': choose one of {', '.join(INSTRUMENTS)}.")
    return INSTRUMENTS.index(key)


def window_plan(n: int, window: int, overlap: float) -> tuple[list[int], int, int, int]:
    """The model's windows over ``n`` frames: ``(starts, length, hop, cross-fade frames)``."""
    L = min(window, n)
    hop = max(1, int(round(window * (1 - overlap))))
    return window_starts(n, L, hop), L, hop, max(1, int(round(L * overlap)))


class OverlapAdd:
    """Joins the model's window outputs ``(W, L, F)`` into ``(F, n)``: every window is weighted by a linear
    ramp of ``fade`` frames at both of its ends (the ramps at the clip's ends cancel in the division by the
    summed weights), windows may come in any number of batches.

    Not :func:`engines.audio.chunking.run_chunked`: that runner ramps only where a neighbour overlaps, with
    ``linspace`` ramps, and the models were trained and measured with these weights; where the last window
    (flush with the clip's end) overlaps its neighbour by more than ``fade`` frames the two differ.
    """

    def __init__(self, n: int, length: int, fade: int, n_out: int, device=None, dtype=torch.float32):
        i = torch.arange(length, dtype=dtype, device=device)
        self.w = torch.minimum(torch.ones(length, dtype=dtype, device=device),
                               torch.minimum((i + 1) / fade, (length - i) / fade))[:, None]
        self.acc = torch.zeros(n, n_out, dtype=dtype, device=device)
        self.den = torch.zeros(n, 1, dtype=dtype, device=device)
        self.length = length

    def add(self, starts: list[int], outs: torch.Tensor) -> None:
        L = self.length
        for k, s in enumerate(starts):
            self.acc[s:s + L] += outs[k] * self.w
            self.den[s:s + L] += self.w

    def result(self) -> torch.Tensor:
        """``(F, n)``."""
        return self.acc.div_(self.den.clamp_min_(1e-8)).t()


def window_starts(n: int, window: int, hop: int) -> list[int]:
    """Start frames of windows of ``window`` frames covering ``n`` frames (last one flush with the end)."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


@capture_init
class TimbreTransfer(nn.Module):
    """Disentangled piano <-> violin timbre transfer (see the module docstring for shapes)."""

    #: What a checkpoint header may ask for (engines.checkpoint refuses anything else).
    CHECKPOINT_BOUNDS = {"d_model": Int(1, 2048), "style_dim": Int(1, 1024), "latent_dim": Int(1, 1024),
                         "enc_blocks": Int(0, 16), "enc_layers": Int(0, 16), "dec_layers": Int(0, 16),
                         "n_heads": Int(1, 64), "dropout": Float(0.0, 1.0), "window": Int(1, 2048),
                         "overlap": Float(0.0, 0.9), "n_mels": Int(1, 512), "stats_name": Str(128),
                         "residual": Bool()}

    def __init__(self, d_model: int = 128, style_dim: int = 64, latent_dim: int = 32, enc_blocks: int = 2,
                 enc_layers: int = 2, dec_layers: int = 2, n_heads: int = 4, dropout: float = 0.1,
                 window: int = 287, overlap: float = 0.3, n_mels: int = 80, stats_name: str = "identity",
                 residual: bool = True):
        super().__init__()
        self._build_encoders(d_model, style_dim, enc_blocks, enc_layers, n_heads, dropout, window, overlap, stats_name)
        self.decoder = Decoder(style_dim, style_dim, N_STFT, latent_dim, d_model, dec_layers, n_heads, dropout,
                               residual=residual)
        self._build_discriminator(style_dim, n_mels)

    # the parts every model of this family shares (TimbreSynth too), built in this order around its decoder (the
    # order fixes which random numbers each part's initial weights take)
    def _build_encoders(self, d_model, style_dim, enc_blocks, enc_layers, n_heads, dropout, window, overlap,
                        stats_name) -> None:
        self.window, self.overlap, self.stats_name = window, overlap, stats_name
        self.style_encoder = StyleEncoder(N_FEAT, d_model, enc_blocks, enc_layers, n_heads, style_dim, dropout)
        self.content_encoder = ContentEncoder(N_FEAT, d_model, enc_blocks, enc_layers, n_heads, style_dim, dropout)

    def _build_discriminator(self, style_dim: int, n_mels: int) -> None:
        """The instrument discriminator, the feature statistics, the style prototypes and the mel filterbank."""
        self.discriminator = Discriminator(style_dim, 2 * style_dim, len(INSTRUMENTS))
        st = FeatureStats.identity()
        self.register_buffer("feat_mean", torch.from_numpy(st.mean()))
        self.register_buffer("feat_std", torch.from_numpy(st.std()))
        self.register_buffer("prototypes", torch.zeros(len(INSTRUMENTS), style_dim))
        self.register_buffer("proto_count", torch.zeros(len(INSTRUMENTS)))
        self.register_buffer("mel_fb", spectral.mel_filterbank(SAMPLE_RATE, N_FFT, n_mels), persistent=False)

    # ---------------------------------------------------------------- statistics and features
    def set_stats(self, stats: FeatureStats) -> None:
        stats.check()
        self.feat_mean.copy_(torch.from_numpy(stats.mean()))
        self.feat_std.copy_(torch.from_numpy(stats.std()))
        self.stats_name = stats.name
        if hasattr(self, "_init_kwargs"):
            self._init_kwargs["stats_name"] = stats.name

    def prepare(self, raw: torch.Tensor) -> torch.Tensor:
        """``(B, 2, 597, N)`` raw real/imag -> ``(B, 3, 597, N)`` normalised real, imag, log-magnitude."""
        B, P, F, N = raw.shape
        if P != 2 or F != N_FEAT:
            raise ValueError(f"Expected raw features (B, 2, {N_FEAT}, N), got {tuple(raw.shape)}.")
        norm = (raw - self.feat_mean[None, :, :, None]) / self.feat_std[None, :, :, None]
        logmag = (torch.log(torch.sqrt(raw[:, 0] ** 2 + raw[:, 1] ** 2) + LOG_EPS) + 4.0) / 3.0
        return torch.cat([norm.clamp(-20, 20), logmag[:, None]], dim=1)

    def encode(self, raw: torch.Tensor, mask: torch.Tensor | None = None):
        """Returns ``(content (B,N,S), frame_style (B,N,S), class_emb (B,S))``."""
        x = self.prepare(raw)
        content = self.content_encoder(x, mask)
        frame_style, class_emb = self.style_encoder(x, mask)
        return content, frame_style, class_emb

    def forward(self, raw: torch.Tensor, style: torch.Tensor, target: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Content of ``raw (B,2,597,N)`` rendered with ``style (B,S)`` -> log-magnitude ``(B, N, 513)``.

        With ``target`` (``(B, N, 513)`` log-magnitudes) the decoder runs under teacher forcing.
        """
        content = self.content_encoder(self.prepare(raw), mask)
        return self.decoder(content, style, target, self.input_logmag(raw))

    @staticmethod
    def input_logmag(raw: torch.Tensor) -> torch.Tensor:
        """``log(|STFT| + 1e-4)`` of raw features ``(B, 2, 597, N)`` -> ``(B, N, 513)``."""
        return torch.log(torch.sqrt(raw[:, 0, :N_STFT] ** 2 + raw[:, 1, :N_STFT] ** 2) + LOG_EPS).transpose(1, 2)

    # ---------------------------------------------------------------- class styles
    @torch.no_grad()
    def update_prototypes(self, class_emb: torch.Tensor, labels: torch.Tensor, momentum: float = 0.99) -> None:
        for c in range(len(INSTRUMENTS)):
            sel = labels == c
            if sel.any():
                m = class_emb[sel].mean(0)
                if self.proto_count[c] == 0:
                    self.prototypes[c] = m
                else:
                    self.prototypes[c] = momentum * self.prototypes[c] + (1 - momentum) * m
                self.proto_count[c] += int(sel.sum())

    def style_of(self, instrument: str | int) -> torch.Tensor:
        """The stored class-level style ``(S,)`` of an instrument."""
        return self.prototypes[instrument_index(instrument)].clone()

    # ---------------------------------------------------------------- inference on whole clips
    def _windows(self, raw: torch.Tensor) -> tuple[torch.Tensor, list[int], int]:
        starts, L, _, _ = window_plan(raw.shape[-1], self.window, self.overlap)
        return torch.stack([raw[..., s:s + L] for s in starts]), starts, L

    def generate_windows(self, wins: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Windows ``(W, 2, 597, L)`` with style ``(S,)`` -> log-magnitudes ``(W, L, 513)`` (batched autoregression)."""
        content = self.content_encoder(self.prepare(wins))
        return self.decoder.generate(content, style[None].expand(len(wins), -1), self.input_logmag(wins))

    @torch.no_grad()
    def embed_style(self, raw: torch.Tensor) -> torch.Tensor:
        """Class-level style ``(S,)`` of one clip ``(2, 597, N)`` (mean over its windows)."""
        wins, _, _ = self._windows(raw)
        return self.style_encoder(self.prepare(wins))[1].mean(0)

    @torch.no_grad()
    def classify(self, raw: torch.Tensor, max_windows: int = 1) -> torch.Tensor:
        """Instrument probabilities ``(n_classes,)`` of a clip from the discriminator on its class style
        (averaged over at most ``max_windows`` windows from the middle of the clip, to stay cheap)."""
        wins, _, _ = self._windows(raw)
        mid = max(0, (len(wins) - max_windows) // 2)
        wins = wins[mid:mid + max_windows]
        return torch.softmax(self.discriminator(self.style_encoder(self.prepare(wins))[1]), -1).mean(0)

    @torch.no_grad()
    def transfer_logmag(self, raw: torch.Tensor, style: torch.Tensor, progress=None) -> torch.Tensor:
        """One clip ``(2, 597, N)`` with style ``(S,)`` -> log-magnitude ``(513, N)``.

        The clip is cut into windows of ``window`` frames overlapping by ``overlap``; all windows are
        generated together (batched autoregression) and overlap-added with linear cross-fades.
        """
        N = raw.shape[-1]
        starts, L, _, fade = window_plan(N, self.window, self.overlap)
        out = self.generate_windows(torch.stack([raw[..., s:s + L] for s in starts]), style)  # (W, L, 513)
        oa = OverlapAdd(N, L, fade, out.shape[-1], device=out.device, dtype=out.dtype)
        oa.add(starts, out)
        if progress is not None:
            progress(1.0, "decoded")
        return oa.result()


def stats_from_model(model: TimbreTransfer) -> FeatureStats:
    """The normalisation statistics a model was trained with."""
    mean, std = model.feat_mean.cpu().numpy(), model.feat_std.cpu().numpy()
    return FeatureStats(mean[:, :N_STFT].copy(), std[:, :N_STFT].copy(), mean[:, N_STFT:].copy(),
                        std[:, N_STFT:].copy(), model.stats_name)


__all__ = ["TimbreTransfer", "OverlapAdd", "instrument_index", "window_plan", "window_starts", "stats_from_model"]
