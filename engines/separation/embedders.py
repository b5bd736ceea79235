"""Two embedders behind one interface.

``Embedder.embed(windows (B, T) float32 at 16 kHz) -> (embeddings (B, D) unit norm, probs (B, K))``
plus ``class_names`` (K names) and ``name``. :class:`BuiltinEmbedder` wraps the shipped
:class:`~engines.separation.model.QueryNet`; :class:`ASTEmbedder` wraps
``transformers.ASTForAudioClassification`` (AudioSet classes for the hub model). ``load_embedder``
picks one; ``auto`` takes AST only when its weights are already on disk and never touches the network.
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from .features import SR, log_mel, rms_normalise

logger = logging.getLogger(__name__)

from .config import DEFAULT_AST  # noqa: E402 - one definition (the Config default)
KIND = "query"


class Embedder(ABC):
    """Window embedder + classifier; see the module docstring."""

    name: str = "embedder"
    class_names: list[str]
    #: whether :meth:`patch_similarity` (2-D masking) is available
    has_patches: bool = False

    @abstractmethod
    def embed(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``windows (B, T)`` 16 kHz -> ``(emb (B, D) unit norm, probs (B, K))``."""

    def frame_similarity(self, audio: torch.Tensor, query_emb: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Cosine similarity ``(n_frames,)`` of the audio's per-frame features with ``query_emb``."""
        raise NotImplementedError(f"{self.name} has no per-frame embeddings")

    def patch_similarity(self, audio: torch.Tensor, query_emb: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """2-D similarity map ``shape=(F, N)`` of spectrogram patches with the query."""
        raise NotImplementedError(f"{self.name} has no patch embeddings")


class BuiltinEmbedder(Embedder):
    """The project's own log-mel conv embedder (and mask net) from ``assets/models``."""

    def __init__(self, net):
        self.net = net.eval()
        self.class_names = list(net.class_names)
        self.name = "builtin"

    @classmethod
    def load(cls, checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> "BuiltinEmbedder":
        from engines.checkpoint import load_model
        from engines.registry import resolve

        from .model import QueryNet

        from .presence import calibration_for

        path = resolve(checkpoint, KIND)
        emb = cls(load_model(path, expected=QueryNet).to(device))
        emb.net.presence = calibration_for(path)  # the registry entry's not-found calibration (or None)
        emb.path = str(path)
        emb.name = f"builtin:{Path(path).stem}"
        return emb

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def embed(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs on the model's device; returns CPU tensors."""
        x, _ = rms_normalise(windows.to(self.device))
        e, logits = self.net.embed(log_mel(x))
        return e.cpu(), torch.softmax(logits, -1).cpu()

    @torch.no_grad()
    def frame_similarity(self, audio: torch.Tensor, query_emb: torch.Tensor, n_frames: int) -> torch.Tensor:
        x, _ = rms_normalise(audio.reshape(1, -1).to(self.device))
        f = self.net.frame_embeddings(log_mel(x))[0].cpu()  # (D, N)
        sim = (query_emb.reshape(-1, 1) * f).sum(0)
        return torch.nn.functional.interpolate(sim[None, None], size=n_frames, mode="linear")[0, 0]


class ASTEmbedder(Embedder):
    """Audio Spectrogram Transformer through ``transformers`` (a hub id or a local folder).

    The embedding is the pooled (CLS + distillation) hidden state; probabilities are the model's
    sigmoid outputs (AudioSet is multi-label). ``patch_similarity`` maps the 16x16 patch tokens of the
    last layer back onto the spectrogram grid.
    """

    has_patches = True

    def __init__(self, model_id: str = DEFAULT_AST, *, local_only: bool = True, max_length: int | None = None):
        if local_only:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import ASTFeatureExtractor, ASTForAudioClassification

        kw = {"local_files_only": True} if local_only else {}
        self.model = ASTForAudioClassification.from_pretrained(model_id, **kw).eval()
        cfg = self.model.config
        try:
            self.extractor = ASTFeatureExtractor.from_pretrained(model_id, **kw)
        except Exception:  # noqa: BLE001 - a folder with only the model: build the matching extractor
            self.extractor = ASTFeatureExtractor(max_length=cfg.max_length, num_mel_bins=cfg.num_mel_bins)
        if max_length is not None:
            self.extractor.max_length = max_length
        labels = cfg.id2label or {}
        self.class_names = [str(labels.get(i, f"class_{i}")) for i in range(cfg.num_labels)]
        self.name = f"ast:{model_id}"

    @classmethod
    def from_model(cls, model, extractor=None, name: str = "ast:custom") -> "ASTEmbedder":
        """Wrap an in-memory ``ASTForAudioClassification`` (e.g. a randomly initialised one)."""
        from transformers import ASTFeatureExtractor

        self = cls.__new__(cls)
        self.model = model.eval()
        cfg = model.config
        self.extractor = extractor or ASTFeatureExtractor(max_length=cfg.max_length, num_mel_bins=cfg.num_mel_bins)
        labels = cfg.id2label or {}
        self.class_names = [str(labels.get(i, f"class_{i}")) for i in range(cfg.num_labels)]
        self.name = name
        return self

    def _inputs(self, windows: torch.Tensor) -> torch.Tensor:
        arrs = [w.detach().cpu().numpy().astype(np.float32) for w in windows]
        feats = self.extractor(arrs, sampling_rate=SR, return_tensors="pt")
        return feats["input_values"].to(next(self.model.parameters()).device)

    @torch.no_grad()
    def _run(self, windows: torch.Tensor):
        out = self.model(input_values=self._inputs(windows), output_hidden_states=True)
        return out.logits.cpu(), out.hidden_states[-1].cpu()

    @torch.no_grad()
    def embed(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, hidden = self._run(windows)
        pooled = (hidden[:, 0] + hidden[:, 1]) / 2
        return torch.nn.functional.normalize(pooled, dim=-1), torch.sigmoid(logits)

    @torch.no_grad()
    def patch_similarity(self, audio: torch.Tensor, query_emb: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """Similarity of each patch token with the query, on the (frequency, time) grid ``shape``."""
        cfg = self.model.config
        _, hidden = self._run(audio.reshape(1, -1))
        tokens = torch.nn.functional.normalize(hidden[0, 2:], dim=-1)  # (P, D)
        f_dim = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
        t_dim = (self.extractor.max_length - cfg.patch_size) // cfg.time_stride + 1
        sim = (tokens @ query_emb.reshape(-1)).reshape(f_dim, t_dim)
        # AST frames are 10 ms over the padded window; keep the part that covers the audio
        covered = min(t_dim, max(1, int(round(audio.numel() / SR * 100 / cfg.time_stride))))
        sim = sim[:, :covered]
        return torch.nn.functional.interpolate(sim[None, None], size=shape, mode="bilinear",
                                               align_corners=False)[0, 0]


def ast_available_locally(model_id: str = DEFAULT_AST) -> bool:
    """True when the AST weights are on disk (a folder, or the Hugging Face cache), without network."""
    p = Path(model_id)
    if p.is_dir():
        return (p / "config.json").is_file()
    # the Hugging Face cache layout, read directly (importing huggingface_hub costs ~0.3 s per CLI call)
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")
    snaps = Path(cache) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    return any((d / "config.json").is_file() for d in snaps.glob("*")) if snaps.is_dir() else False


def load_embedder(kind: str = "auto", *, ast_model: str = DEFAULT_AST, checkpoint: str | None = None,
                  ast_max_length: int | None = None, device: str | torch.device = "cpu") -> Embedder:
    """``kind``: ``auto`` (AST when its weights are local, else built-in), ``ast`` or ``builtin``; the model
    on ``device`` (a resolved device: ``cpu``, ``cuda``)."""
    if kind not in ("auto", "ast", "builtin"):
        raise ValueError(f"Unknown embedder '{kind}'; use auto, ast or builtin.")
    if kind == "ast" or (kind == "auto" and ast_available_locally(ast_model)):
        try:
            emb = ASTEmbedder(ast_model, local_only=True, max_length=ast_max_length)
            emb.model.to(device)
            return emb
        except Exception as err:  # noqa: BLE001
            if kind == "ast":
                raise ValueError(f"Cannot load the AST model '{ast_model}' from local files "
                                 f"(weights cannot be downloaded here): {err}") from err
            logger.warning("AST not usable (%s); using the built-in embedder", err)
    return BuiltinEmbedder.load(checkpoint, device=device)
