"""The CLI's PNGs (matplotlib, Agg backend, imported lazily); ``path`` is a file name or a binary file object."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _out(path):
    """``path`` as a :class:`Path` (a file object, e.g. ``io.BytesIO``, is returned as it is)."""
    return Path(path) if isinstance(path, (str, os.PathLike)) else path


def _db(m: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(m, 1e-5))


def comparison_png(result, path) -> Path:
    """Mixture mel, reference mel, final mask (mel-averaged) and target mel, side by side."""
    plt = _plt()
    sec = result.mix_mel.shape[-1] * result.params["hop"] / 16000
    ext = [0, sec, 0, result.mix_mel.shape[0]]
    vmax = float(_db(result.mix_mel).max())
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), constrained_layout=True)
    panels = [("mixture (mel dB)", _db(result.mix_mel)), (f"reference ({result.reference})", _db(result.ref_mel)),
              ("mask (linear bins)", result.mask), ("target (mel dB)", _db(result.target_mel))]
    for ax, (title, img) in zip(axes, panels):
        if title.startswith("mask"):
            ax.imshow(img, origin="lower", aspect="auto", extent=[0, sec, 0, 8000], vmin=0, vmax=1, cmap="viridis")
            ax.set_ylabel("Hz")
        else:
            ax.imshow(img, origin="lower", aspect="auto", extent=ext, vmin=vmax - 80, vmax=vmax, cmap="magma")
            ax.set_ylabel("mel band")
        ax.set_title(title)
        ax.set_xlabel("s")
    fig.suptitle(f"query class: {result.query_class}  ({result.embedder})")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return _out(path)


def timeline_png(result, path) -> Path:
    """Per-window class score and cosine similarity with the gates and the detected segments."""
    plt = _plt()
    w = result.windows
    centres = np.asarray(w["starts"]) + w["window_sec"] / 2
    fig, ax = plt.subplots(figsize=(10, 3), constrained_layout=True)
    for s in result.segments:
        ax.axvspan(s["start"], s["end"], color="tab:green", alpha=0.2)
    ax.plot(centres, w["class_scores"], "o-", label=f"p({result.query_class})")
    ax.plot(centres, w["cosine"], "s-", label="cosine to query")
    ax.axhline(w["class_threshold"], color="tab:blue", ls="--", lw=0.8, label="class gate")
    if result.params.get("use_cosine_gate"):
        ax.axhline(result.params["cosine_threshold"], color="tab:orange", ls="--", lw=0.8, label="cosine gate")
    t = np.arange(result.mask.shape[-1]) * result.params["hop"] / 16000
    ax.plot(t, result.mask.mean(0) if result.mask.size else t * 0, color="0.4", lw=0.8, label="mean mask")
    ax.set_xlim(0, result.mixture.shape[-1] / result.sr)
    ax.set_xlabel("s")
    ax.set_title("found" if result.found else "not found")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return _out(path)
