"""The built-in query model: a small log-mel embedder/classifier and a query-conditioned mask net.

Both live in one ``nn.Module`` (:class:`QueryNet`) so one checkpoint holds them; the engine uses
``embed`` for detection (and as the mask net's condition) and ``mask`` for the fitted reference.
Front end: 16 kHz, n_fft 512, hop 256 (:mod:`.features`).

The waveform-level inference path is here, once: :meth:`QueryNet.query_condition` (query clip -> condition),
:meth:`QueryNet.mix_mask` (mixture -> mask for a condition) and :meth:`QueryNet.separate` (a batch of
mixtures and queries -> estimates); the engine's fitted reference (:func:`.reference.fitted_mask`) and the
trainers (``trainers/query_classifier.py``, ``trainers/query_masknet.py``) call them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.audio.spectral import istft, stft
from engines.checkpoint import Int, Ints, Strs, capture_init

from .features import LOG_EPS, MODEL_HOP, MODEL_NFFT, log_mag, log_mel, rms_normalise


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True))


class FiLMResBlock(nn.Module):
    """Dilated residual 1-D conv block modulated by a condition vector (FiLM).

    Shapes: ``x (B, H, N)``, ``cond (B, C)`` -> ``(B, H, N)``.
    """

    def __init__(self, hidden: int, cond_dim: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.out = nn.Conv1d(hidden, hidden, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        g, b = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm(self.conv(x))
        h = F.gelu(h * (1 + g) + b)
        return x + self.out(h)


class QueryCrossAttention(nn.Module):
    """The mask net's frames attend to the query's own frames (what a pooled embedding cannot carry: the
    query's time-varying spectra). A residual block whose output projection starts at zero, so a model
    that gains one starts as the model it was.

    Shapes: ``h (B, H, N)``, ``query_logmag (B, n_freq, Nq)`` -> ``(B, H, N)``.
    """

    def __init__(self, hidden: int, n_freq: int, dim: int, heads: int = 4):
        super().__init__()
        self.keys = nn.Sequential(nn.Conv1d(n_freq, dim, 1), nn.GELU(), nn.Conv1d(dim, dim, 3, padding=1))
        self.norm = nn.GroupNorm(1, hidden)
        self.q = nn.Conv1d(hidden, dim, 1)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Conv1d(dim, hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, query_logmag: torch.Tensor) -> torch.Tensor:
        qf = query_logmag - query_logmag.mean(dim=(1, 2), keepdim=True)
        kv = self.keys(qf).transpose(1, 2)             # (B, Nq, D)
        qq = self.q(self.norm(h)).transpose(1, 2)      # (B, N, D)
        a, _ = self.attn(qq, kv, kv, need_weights=False)
        return h + self.out(a.transpose(1, 2))


@capture_init
class QueryNet(nn.Module):
    """Embedder/classifier + query-conditioned mask network.

    Args:
        n_classes: number of classes (the corpus's ``CLASSES``).
        n_mels: log-mel bands of the embedder input.
        n_freq: STFT bins of the mask net (``n_fft // 2 + 1``).
        emb_dim: embedding size (L2-normalised).
        channels: conv widths of the embedder.
        hidden: mask-net width; ``dilations``: one residual block per entry.
        profile_dim: size of the projected query spectral profile added to the condition.
        xattn_dim: 0 (none) or the width of a :class:`QueryCrossAttention` block inserted after mask block
            ``xattn_at`` (mixture frames attend to the query's log-magnitude frames).
        class_names: stored so a checkpoint names its own classes.
    """

    #: What a checkpoint header may ask for (engines.checkpoint refuses anything else).
    CHECKPOINT_BOUNDS = {"n_classes": Int(1, 4096), "n_mels": Int(8, 512), "n_freq": Int(2, 4097),
                         "emb_dim": Int(1, 2048), "channels": Ints(1, 1024, 4, 4), "hidden": Int(1, 2048),
                         "dilations": Ints(1, 1024, 64, 1), "profile_dim": Int(1, 2048),
                         "xattn_dim": Int(0, 1024), "xattn_at": Int(0, 64),
                         "class_names": Strs(4096, 128, none_ok=True)}

    def __init__(self, n_classes: int = 14, n_mels: int = 64, n_freq: int = 257, emb_dim: int = 128,
                 channels: tuple = (24, 48, 96, 128), hidden: int = 160,
                 dilations: tuple = (1, 2, 4, 8, 16, 1, 2, 4), profile_dim: int = 64,
                 class_names: list | None = None, xattn_dim: int = 0, xattn_at: int = 4):
        super().__init__()
        self.class_names = list(class_names or [f"class_{i}" for i in range(n_classes)])
        self.n_mels, self.n_freq, self.emb_dim = n_mels, n_freq, emb_dim
        c = list(channels)
        self.stem = nn.Sequential(_block(1, c[0]), nn.MaxPool2d(2), _block(c[0], c[1]), nn.MaxPool2d(2),
                                  _block(c[1], c[2]), nn.MaxPool2d((2, 1)), _block(c[2], c[3]))
        self.proj = nn.Linear(2 * c[3], emb_dim)
        self.frame_proj = nn.Conv1d(c[3], emb_dim, 1)
        self.classifier = nn.Linear(emb_dim, n_classes)
        self.profile = nn.Linear(n_freq, profile_dim)
        cond = emb_dim + profile_dim
        self.inp = nn.Conv1d(n_freq, hidden, 1)
        self.blocks = nn.ModuleList([FiLMResBlock(hidden, cond, d) for d in dilations])
        self.head = nn.Conv1d(hidden, n_freq, 1)
        self.xattn_at = min(max(int(xattn_at), 0), len(dilations))
        self.xattn = QueryCrossAttention(hidden, n_freq, xattn_dim) if xattn_dim else None

    # ------------------------------------------------------------------ embedder
    def _features(self, logmel: torch.Tensor) -> torch.Tensor:
        """``logmel (B, n_mels, N)`` -> conv map pooled over frequency ``(B, C, N // 4)``."""
        B, M, N = logmel.shape
        x = logmel - logmel.mean(dim=(1, 2), keepdim=True)
        h = self.stem(x.unsqueeze(1))  # (B, C, M/8, N/4)
        return h.mean(dim=2)

    def embed(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``logmel (B, n_mels, N)`` -> ``(embedding (B, emb_dim) unit norm, logits (B, n_classes))``."""
        h = self._features(logmel)
        pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=1)
        z = self.proj(pooled)
        return F.normalize(z, dim=-1), self.classifier(z)

    def frame_embeddings(self, logmel: torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings ``(B, emb_dim, N)`` (unit norm), upsampled to the input frames."""
        N = logmel.shape[-1]
        f = self.frame_proj(self._features(logmel))
        f = F.interpolate(f, size=N, mode="linear", align_corners=False)
        return F.normalize(f, dim=1)

    # ------------------------------------------------------------------ mask net
    def condition(self, emb: torch.Tensor, query_logmag: torch.Tensor) -> torch.Tensor:
        """Condition vector ``(B, emb_dim + profile_dim)`` from the query embedding and log-magnitude
        ``(B, n_freq, Nq)`` (its mean spectral shape)."""
        prof = query_logmag.mean(-1)
        prof = prof - prof.mean(-1, keepdim=True)
        return torch.cat([emb, torch.tanh(self.profile(prof))], dim=1)

    def mask(self, mix_logmag: torch.Tensor, cond: torch.Tensor,
             query_logmag: torch.Tensor | None = None) -> torch.Tensor:
        """``mix_logmag (B, n_freq, N)``, ``cond (B, C)`` -> mask in ``[0, 1]`` ``(B, n_freq, N)``;
        ``query_logmag (B, n_freq, Nq)``: the query's frames, needed when the model has cross-attention."""
        B, Fq, N = mix_logmag.shape
        x = mix_logmag - mix_logmag.mean(dim=(1, 2), keepdim=True)
        h = self.inp(x)
        if self.xattn is not None and query_logmag is None:
            raise ValueError("This query model attends to the query's frames: pass query_logmag.")
        for i, blk in enumerate(self.blocks):
            if self.xattn is not None and i == self.xattn_at:
                h = self.xattn(h, query_logmag)
            h = blk(h, cond)
        if self.xattn is not None and self.xattn_at >= len(self.blocks):
            h = self.xattn(h, query_logmag)
        return torch.sigmoid(self.head(h))

    def forward(self, mix_logmag: torch.Tensor, query_logmel: torch.Tensor,
                query_logmag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(mask (B, n_freq, N), query embedding, query logits)``."""
        emb, logits = self.embed(query_logmel)
        return self.mask(mix_logmag, self.condition(emb, query_logmag), query_logmag), emb, logits

    # ------------------------------------------------------------------ waveform-level inference
    def query_condition(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query clips ``(B, Tq)`` (16 kHz) -> ``(condition (B, C), embedding, logits)``: RMS-normalised, then
        :meth:`embed` on the log-mel and :meth:`condition` with the log-magnitude."""
        qn, _ = rms_normalise(query)
        emb, logits = self.embed(log_mel(qn))
        return self.condition(emb, log_mag(qn)), emb, logits

    def query_frames(self, query: torch.Tensor) -> torch.Tensor | None:
        """Query clips ``(B, Tq)`` -> the log-magnitude frames the cross-attention reads ``(B, n_freq, Nq)``
        (RMS-normalised clip), or ``None`` for a model without cross-attention."""
        if self.xattn is None:
            return None
        return log_mag(rms_normalise(query)[0])

    def mix_mask(self, mix_normalised: torch.Tensor, cond: torch.Tensor,
                 query_logmag: torch.Tensor | None = None) -> torch.Tensor:
        """RMS-normalised mixtures ``(B, T)`` and ``cond (B, C)`` -> mask ``(B, n_freq, T // hop + 1)``."""
        return self.mask(log_mag(mix_normalised), cond, query_logmag)

    def separate(self, mix: torch.Tensor, query: torch.Tensor):
        """``mix (B, T)``, ``query (B, Tq)`` (16 kHz) -> ``(estimate (B, T), mask, query emb, query logits)``:
        the mask of the RMS-normalised mixture applied to its STFT, at the mixture's own level."""
        mixn, g = rms_normalise(mix)
        X = stft(mixn, MODEL_NFFT, MODEL_HOP)
        cond, emb, logits = self.query_condition(query)
        mask = self.mask(torch.log(X.abs() + LOG_EPS), cond, self.query_frames(query))
        est = istft(X * mask, MODEL_NFFT, MODEL_HOP, mix.shape[-1]) / g
        return est, mask, emb, logits
