"""One chunked runner for every engine (like demucs' ``apply_model`` with ``split=True``): long inputs are
processed in pieces along the last axis, in bounded memory, and put back together.

Two ways to join the pieces:

* **context** (``overlap=0``): each piece ``[s, e)`` is processed with ``context`` extra samples on both
  sides and only its own span of the output is kept (no seams as long as the model's receptive field fits
  in the context). The output may run at a coarser rate: with ``hop > 1`` the function returns STFT-style
  frames (``frame j`` centred on sample ``j * hop``; ``T // hop + 1`` frames for ``T`` samples).
* **cross-fade** (``overlap > 0``): windows of ``chunk`` with ``overlap`` in common, the last one aligned
  with the end; the function's outputs are overlap-added with linear ramps and divided by the summed
  weights. ``batch=True`` runs all windows in one call, stacked on the first axis.

The function gets ``x[..., a:b]`` and must return the same leading shape with the processed piece along the
last axis (``b - a`` samples, or ``(b - a) // hop + 1`` frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Span:
    """A piece: keep ``[start, end)`` of the output computed on the input ``[lo, hi)``."""

    start: int
    end: int
    lo: int
    hi: int


def context_spans(n: int, chunk: int, context: int = 0, align: int = 1) -> list[Span]:
    """Pieces of ``chunk`` samples (a multiple of ``align``) with ``context`` on each side; one piece when the
    whole input fits in ``chunk + context``."""
    chunk = max(align, chunk // align * align)
    context = -(-context // align) * align if context else 0
    if n <= chunk + context:
        return [Span(0, n, 0, n)]
    return [Span(s, min(n, s + chunk), max(0, s - context), min(n, s + chunk + context)) for s in range(0, n, chunk)]


def window_starts(n: int, window: int, overlap: int) -> list[int]:
    """Starts of windows of ``window`` covering ``n`` with ``overlap`` in common, the last aligned with the end."""
    if n <= window:
        return [0]
    hop = window - overlap
    return list(range(0, n - window, hop)) + [n - window]


def ramp_weights(n: int, window: int, overlap: int, starts: list[int], dtype=torch.float32) -> list[torch.Tensor]:
    """The linear cross-fade weight of each window (ramps only where a neighbour overlaps)."""
    ramp = torch.linspace(0, 1, overlap + 2, dtype=dtype)[1:-1]
    out = []
    for s in starts:
        w = torch.ones(min(window, n), dtype=dtype)
        if overlap and s > 0:
            w[:overlap] = ramp
        if overlap and s + window < n:
            w[-overlap:] = ramp.flip(0)
        out.append(w)
    return out


def run_chunked(fn: Callable[..., torch.Tensor], x: torch.Tensor, chunk: int, *, context: int = 0,
                overlap: int = 0, hop: int = 1, batch: bool = False, progress: Progress | None = None,
                with_offset: bool = False) -> torch.Tensor:
    """``fn`` over ``x (..., T)`` in pieces (see the module docstring); returns ``(..., T)`` (``hop == 1``) or
    ``(..., T // hop + 1)`` frames.

    Args:
        chunk: piece length in samples (context mode) or the window length (cross-fade mode).
        context: extra samples each side (context mode).
        overlap: samples two windows share (> 0 selects cross-fade mode; must be < ``chunk``).
        hop: samples per output frame (context mode only).
        batch: cross-fade mode: all windows in one ``fn`` call, stacked on the first axis.
        progress: ``progress(fraction, message)`` after each piece.
        with_offset: context mode: call ``fn(piece, lo)`` with the piece's first input sample ``lo`` (for a
            function whose work depends on where the piece sits, e.g. a mask given for the whole input).
    """
    n = x.shape[-1]
    if overlap:
        if hop != 1:
            raise ValueError("cross-fade chunking works at one output per input sample (hop 1)")
        if not 0 < overlap < chunk:
            raise ValueError(f"overlap ({overlap}) must be between 0 and the window ({chunk})")
        if n <= chunk:
            return fn(x)
        starts = window_starts(n, chunk, overlap)
        weights = ramp_weights(n, chunk, overlap, starts, dtype=x.dtype if x.is_floating_point() else torch.float32)
        if batch:
            lead = x.shape[0]
            ys = fn(torch.cat([x[..., s:s + chunk] for s in starts], 0))
            pieces = [ys[i * lead:(i + 1) * lead] for i in range(len(starts))]
        else:
            pieces = []
            for k, s in enumerate(starts):
                pieces.append(fn(x[..., s:s + chunk]))
                if progress is not None:
                    progress((k + 1) / len(starts), f"chunk {k + 1}/{len(starts)}")
        out = torch.zeros(*pieces[0].shape[:-1], n, dtype=pieces[0].dtype, device=pieces[0].device)
        total = torch.zeros(n, dtype=out.dtype, device=out.device)
        for s, y, w in zip(starts, pieces, weights):
            w = w.to(out.device, out.dtype)
            out[..., s:s + chunk] += y * w
            total[s:s + chunk] += w
        return out / total.clamp_min(1e-6)
    spans = context_spans(n, chunk, context, align=hop)
    n_out = n if hop == 1 else n // hop + 1
    out = None
    for k, sp in enumerate(spans):
        y = fn(x[..., sp.lo:sp.hi], sp.lo) if with_offset else fn(x[..., sp.lo:sp.hi])
        if out is None:
            out = torch.zeros(*y.shape[:-1], n_out, dtype=y.dtype, device=y.device)
        g0 = sp.start // hop
        g1 = n_out if sp.end == n else sp.end // hop
        out[..., g0:g1] = y[..., g0 - sp.lo // hop: g1 - sp.lo // hop]
        if progress is not None:
            progress((k + 1) / len(spans), f"chunk {k + 1}/{len(spans)}")
    return out
