"""Detection: sliding windows -> class and cosine gates -> segments -> a sharpened time mask."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .features import SR


@dataclass
class Detection:
    """What detection found. Times in seconds; per-window arrays have one value per window."""

    starts: np.ndarray            # window start times
    class_scores: np.ndarray      # probability of the query's class per window
    cosine: np.ndarray            # cosine similarity with the query embedding per window
    active: np.ndarray            # bool, windows that passed the gates
    class_threshold: float
    segments: list[dict] = field(default_factory=list)  # {"start", "end", "score", "cosine"}
    window_sec: float = 1.0


def frame_windows(audio: torch.Tensor, window_sec: float, hop_sec: float, sr: int = SR) -> tuple[torch.Tensor, np.ndarray]:
    """Cut ``audio (T,)`` into windows ``(W, win)`` (the last one zero-padded); returns their start times."""
    win = max(1, int(round(window_sec * sr)))
    hop = max(1, int(round(hop_sec * sr)))
    T = audio.shape[-1]
    n = 1 if T <= win else 1 + int(np.ceil((T - win) / hop))
    pad = (n - 1) * hop + win - T
    x = torch.nn.functional.pad(audio.reshape(1, -1), (0, max(pad, 0)))[0]
    w = x.unfold(0, win, hop)[:n]
    return w, np.arange(n) * hop / sr


def embed_windows(embedder, windows: torch.Tensor, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed ``windows (W, T)`` in batches -> ``(emb (W, D), probs (W, K))``."""
    embs, probs = [], []
    for i in range(0, windows.shape[0], batch):
        e, p = embedder.embed(windows[i:i + batch])
        embs.append(e)
        probs.append(p)
    return torch.cat(embs), torch.cat(probs)


def segments_from_active(active: np.ndarray, starts: np.ndarray, window_sec: float, duration: float, *,
                         min_dur_ms: float, merge_gap_ms: float, padding_ms: float) -> list[tuple[float, float]]:
    """Runs of active windows -> ``[(start, end)]`` merged across gaps <= ``merge_gap_ms``, padded,
    clipped to ``[0, duration]``, shorter than ``min_dur_ms`` dropped."""
    raw = [(float(s), float(min(s + window_sec, duration))) for s, a in zip(starts, active) if a]
    merged: list[list[float]] = []
    for s, e in raw:
        if merged and s - merged[-1][1] <= merge_gap_ms / 1000:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    pad = padding_ms / 1000
    out = []
    for s, e in merged:
        s, e = max(0.0, s - pad), min(duration, e + pad)
        if (e - s) * 1000 >= min_dur_ms:
            out.append((s, e))
    return out


def detect(embedder, audio: torch.Tensor, query_emb: torch.Tensor, query_class: int, *, window_sec: float = 1.0,
           hop_sec: float = 0.5, cls_threshold: float | None = None, cls_percentile: float = 92,
           use_cosine_gate: bool = True, cosine_threshold: float = 0.45, min_dur_ms: float = 500,
           merge_gap_ms: float = 200, segment_padding_ms: float = 50,
           negative_emb: torch.Tensor | None = None) -> Detection:
    """Run the gates over ``audio (T,)`` at 16 kHz.

    A window is active when its probability of ``query_class`` reaches ``cls_threshold`` (or, when
    that is ``None``, the ``cls_percentile``-th percentile of the windows' scores) and, with the cosine
    gate, its cosine similarity with the query embedding reaches ``cosine_threshold`` (and exceeds its
    similarity with the negative query, when one is given).
    """
    windows, starts = frame_windows(audio, window_sec, hop_sec)
    emb, probs = embed_windows(embedder, windows)
    cls_scores = probs[:, query_class].numpy().astype(np.float64)
    cos = (emb @ query_emb.reshape(-1)).numpy().astype(np.float64)
    thr = float(cls_threshold) if cls_threshold is not None else float(np.percentile(cls_scores, cls_percentile))
    active = cls_scores >= thr
    if use_cosine_gate:
        active &= cos >= cosine_threshold
    if negative_emb is not None:
        neg = (emb @ negative_emb.reshape(-1)).numpy()
        active &= cos > neg
    duration = audio.shape[-1] / SR
    det = Detection(starts=starts, class_scores=cls_scores, cosine=cos, active=active, class_threshold=thr,
                    window_sec=window_sec)
    for s, e in segments_from_active(active, starts, window_sec, duration, min_dur_ms=min_dur_ms,
                                     merge_gap_ms=merge_gap_ms, padding_ms=segment_padding_ms):
        inside = (starts + window_sec > s) & (starts < e)
        det.segments.append({"start": round(s, 3), "end": round(e, 3),
                             "score": round(float(cls_scores[inside].max()), 4) if inside.any() else 0.0,
                             "cosine": round(float(cos[inside].max()), 4) if inside.any() else 0.0})
    return det


def time_mask(segments: list[dict], n_frames: int, hop: int, sr: int = SR, *, sharpening: float = 1.2,
              ramp_ms: float = 50.0) -> np.ndarray:
    """Per-frame weights ``(n_frames,)`` in [0, 1]: 1 inside segments, raised-cosine ramps of
    ``ramp_ms`` at the edges, sharpened by the power ``sharpening``."""
    t = np.arange(n_frames) * hop / sr
    m = np.zeros(n_frames)
    ramp = max(ramp_ms / 1000, 1e-6)
    for seg in segments:
        s, e = seg["start"], seg["end"]
        up = np.clip((t - (s - ramp)) / ramp, 0, 1)
        down = np.clip(((e + ramp) - t) / ramp, 0, 1)
        w = np.minimum(up, down)
        m = np.maximum(m, 0.5 - 0.5 * np.cos(np.pi * w))
    return np.power(m, sharpening)
