"""Complementary masks on codec latents (the original's ``complementary_masking.py``).

``apply_complementary_mask(encoded_input, encoded_target, mask_type, ...)`` returns
``masked_input, masked_target``: two latents whose masks never overlap. For ``temporal``,
``frequency``, ``spectral`` and ``energy`` the two masks also cover everything (``m_in + m_tgt == 1``);
``hybrid`` gives the input the low band on odd segments and the target the high band on even
segments, so the other two quarters are silent (as in the original); ``none`` keeps both whole.

Segments are counted from 1 as in the original ("beats 1, 3, 5..."): the input holds segments
1, 3, 5... (indices 0, 2, 4...), the target 2, 4, 6.... They are ``temporal_segment`` frames long,
or follow explicit ``segments`` boundaries (frame indices, e.g. bars from the beat tracker).
Frequency splits assume channels ordered from low to high frequency (true for the built-in
codec; for EnCodec the "band" is a channel range, not a frequency range).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from .config import MASK_TYPES

logger = logging.getLogger(__name__)


DESCRIPTIONS = {
    "none": "No masking (full overlap: simple blending baseline)",
    "temporal": "Alternating time segments (Input: beats 1,3,5... | Target: beats 2,4,6...)",
    "frequency": "Frequency split (Input: low frequencies | Target: high frequencies)",
    "spectral": "Spectral dropout (Input: random channels | Target: the complementary channels)",
    "energy": "Energy split (Input: high-energy frames | Target: low-energy frames)",
    "hybrid": "Temporal + frequency (Input: low band on odd segments | Target: high band on even segments)",
    "stems": "Stems (the vocals of one song over the accompaniment of the other, from the vocal engine)",
}


def segment_ids(num_frames: int, temporal_segment: int = 150, segments: Sequence[int] | torch.Tensor | None = None,
                device=None) -> torch.Tensor:
    """Segment index of every frame ``(num_frames,)``: fixed ``temporal_segment`` frames, or the
    intervals between the sorted boundary frames ``segments`` (frames before the first boundary
    form segment 0)."""
    t = torch.arange(num_frames, device=device)
    if segments is not None and len(segments):
        b = torch.as_tensor(segments, dtype=torch.long, device=device).flatten().sort().values
        b = b[(b > 0) & (b < num_frames)]
        return torch.searchsorted(b, t, right=True)
    if temporal_segment < 1:
        raise ValueError(f"mask_temporal_segment must be at least 1 frame; got {temporal_segment}.")
    return t // int(temporal_segment)


def complementary_masks(encoded_input: torch.Tensor, mask_type: str = "temporal", *, temporal_segment: int = 150,
                        freq_split: float = 0.3, channel_keep: float = 0.5, energy_threshold: float = 0.7,
                        segments: Sequence[int] | torch.Tensor | None = None,
                        generator: torch.Generator | None = None,
                        energy_smoothing: int = 1, split_channels: int | None = None,
                        channel_groups: Sequence[int] | None = None,
                        energy_segments: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The two binary masks ``(m_in, m_tgt)``, each ``(B, C, N)`` float, for latents like ``encoded_input``.

    Args:
        encoded_input: ``(B, C, N)`` latent of the input (the energy mask reads its frame energies).
        mask_type: one of :data:`MASK_TYPES`.
        temporal_segment: frames per segment (``temporal``/``hybrid``) unless ``segments`` is given.
        freq_split: share of channels (from the low end) in the input's band.
        channel_keep: share of channels the input gets (``spectral``), drawn at random.
        energy_threshold: percentile (0-1) of the input's frame energies; frames at or above it go
            to the input.
        segments: optional segment boundaries in frames (beat/bar-aligned segments).
        energy_smoothing: frames of a moving average over the frame energies before thresholding
            (1 = per frame, the original; larger values give fewer, longer energy regions).
        split_channels: channels in the input's low band (overrides ``freq_split * C``: the engine maps the
            split on its log-frequency axis to channels, :func:`engines.fusion.config.split_hz`).
        channel_groups: ``(C,)`` group index of every channel (``spectral``): whole groups (octave bands) are
            drawn instead of single channels, ``channel_keep`` of them for the input.
        energy_segments: ``energy`` with ``segments``: whole segments (bars, beats) whose mean energy is at or
            above the percentile of the segments' energies go to the input (instead of single frames).
    """
    if encoded_input.dim() != 3:
        raise ValueError(f"Latents must be (B, C, N); got {tuple(encoded_input.shape)}.")
    if mask_type not in MASK_TYPES:
        raise ValueError(f"Unknown mask_type '{mask_type}'; choose one of {', '.join(MASK_TYPES)}.")
    B, C, N = encoded_input.shape
    dev, dt = encoded_input.device, encoded_input.dtype
    ones = torch.ones(B, C, N, device=dev, dtype=dt)
    if mask_type in ("none", "stems"):  # stems: the latents are already one stem of each song
        return ones, ones.clone()
    if not 0.0 <= freq_split <= 1.0 or not 0.0 <= channel_keep <= 1.0 or not 0.0 <= energy_threshold <= 1.0:
        raise ValueError("mask_freq_split, mask_channel_keep and mask_energy_threshold must lie in [0, 1].")
    odd = (segment_ids(N, temporal_segment, segments, dev) % 2 == 0).to(dt)  # segments 1, 3, 5...
    split = int(round(freq_split * C)) if split_channels is None else int(min(max(split_channels, 0), C))
    low = torch.zeros(C, device=dev, dtype=dt)
    low[:split] = 1.0
    if mask_type == "temporal":
        m_in = odd[None, None, :].expand(B, C, N)
    elif mask_type == "frequency":
        m_in = low[None, :, None].expand(B, C, N)
    elif mask_type == "spectral":
        m = torch.zeros(B, C, device=dev, dtype=dt)
        if channel_groups is not None:
            gid = torch.as_tensor(channel_groups, dtype=torch.long).flatten()
            if gid.numel() != C:
                raise ValueError(f"channel_groups needs one group per channel ({C}); got {gid.numel()}.")
            _, gid = torch.unique(gid, return_inverse=True)
            G = int(gid.max()) + 1
            keep = int(round(channel_keep * G))
            for b in range(B):
                chosen = torch.zeros(G, dtype=torch.bool)
                chosen[torch.randperm(G, generator=generator)[:keep]] = True
                m[b] = chosen[gid].to(dev, dt)
        else:
            keep = int(round(channel_keep * C))
            for b in range(B):
                m[b, torch.randperm(C, generator=generator)[:keep].to(dev)] = 1.0
        m_in = m[:, :, None].expand(B, C, N)
    elif mask_type == "energy":
        e = encoded_input.detach().float().pow(2).mean(1)  # (B, N)
        if energy_segments and segments is not None and len(segments):
            sid = segment_ids(N, temporal_segment, segments, dev)
            S = int(sid.max()) + 1
            seg_e = torch.zeros(B, S, device=dev).index_add_(1, sid, e) / torch.bincount(sid, minlength=S).clamp(min=1)
            thr = torch.quantile(seg_e, energy_threshold, dim=1, keepdim=True)
            m_in = (seg_e >= thr).to(dt)[:, sid][:, None, :].expand(B, C, N)
            m_in = m_in.contiguous()
            return m_in, 1.0 - m_in
        if energy_smoothing > 1:
            k = int(energy_smoothing)
            e = torch.nn.functional.avg_pool1d(e[:, None], k, 1, padding=k // 2, count_include_pad=False)[:, 0, :N]
        thr = torch.quantile(e, energy_threshold, dim=1, keepdim=True)
        m_in = (e >= thr).to(dt)[:, None, :].expand(B, C, N)
    else:  # hybrid
        m_in = (low[:, None] * odd[None, :])[None].expand(B, C, N)
        m_tgt = ((1 - low)[:, None] * (1 - odd)[None, :])[None].expand(B, C, N)
        return m_in.contiguous(), m_tgt.contiguous()
    m_in = m_in.contiguous()
    return m_in, 1.0 - m_in


def describe(mask_type: str, *, temporal_segment: int = 150, freq_split: float = 0.3, channel_keep: float = 0.5,
             energy_threshold: float = 0.7, frame_rate: float | None = None, segments=None,
             split_label: str | None = None) -> list[str]:
    """The original's log block, as lines."""
    lines = ["🎭 Complementary Masking Applied:", f"  Type: {mask_type}",
             f"  Description: {DESCRIPTIONS.get(mask_type, '?')}"]
    if mask_type in ("temporal", "hybrid"):
        if segments is not None and len(segments):
            lines.append(f"  Segment length: {len(segments) + 1} beat-aligned segments")
        else:
            secs = f" (~{temporal_segment / frame_rate:.1f}s)" if frame_rate else ""
            lines.append(f"  Segment length: {temporal_segment} frames{secs}")
    if mask_type in ("frequency", "hybrid"):
        if split_label:
            lines.append(f"  Frequency split: {freq_split:.2f} = {split_label} (input: below | target: above)")
        else:
            lines.append(f"  Frequency split: {freq_split:.2f} (input: low {freq_split:.0%} | target: high "
                         f"{1 - freq_split:.0%})")
    if mask_type == "spectral":
        lines.append(f"  Channel keep: {channel_keep:.2f}")
    if mask_type == "energy":
        lines.append(f"  Energy threshold: {energy_threshold:.2f} (percentile)")
    return lines


def apply_complementary_mask(encoded_input: torch.Tensor, encoded_target: torch.Tensor, mask_type: str = "temporal",
                             *, temporal_segment: int = 150, freq_split: float = 0.3, channel_keep: float = 0.5,
                             energy_threshold: float = 0.7, segments=None, generator: torch.Generator | None = None,
                             frame_rate: float | None = None, verbose: bool = False, return_masks: bool = False,
                             energy_smoothing: int = 1):
    """Mask both latents complementarily; returns ``masked_input, masked_target`` (+ ``(m_in, m_tgt)``).

    Args:
        encoded_input, encoded_target: ``(B, C, N)`` latents of the same shape.
        verbose: log the original's "Complementary Masking Applied" block (trainers do it once).
        Other arguments: see :func:`complementary_masks`.
    """
    if encoded_input.shape != encoded_target.shape:
        raise ValueError(f"Input and target latents differ in shape: {tuple(encoded_input.shape)} vs "
                         f"{tuple(encoded_target.shape)}.")
    m_in, m_tgt = complementary_masks(encoded_input, mask_type, temporal_segment=temporal_segment,
                                      freq_split=freq_split, channel_keep=channel_keep,
                                      energy_threshold=energy_threshold, segments=segments, generator=generator,
                                      energy_smoothing=energy_smoothing)
    if verbose:
        for line in describe(mask_type, temporal_segment=temporal_segment, freq_split=freq_split,
                             channel_keep=channel_keep, energy_threshold=energy_threshold,
                             frame_rate=frame_rate, segments=segments):
            logger.info(line)
    out = (encoded_input * m_in, encoded_target * m_tgt)
    return (*out, (m_in, m_tgt)) if return_masks else out
