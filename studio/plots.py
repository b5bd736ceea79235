"""Plotly figures shared by the tabs: mel spectrograms, mask heatmaps, detection timelines,
source-region maps and loss curves.

Inputs are numpy arrays (what the engines' result objects carry); figures are kept light for the
browser (at most ``MAX_COLS`` time columns; longer inputs are averaged down).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_COLS = 600
_LAYOUT = dict(margin=dict(l=50, r=20, t=40, b=40), height=300, template="plotly_white")


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    return a.mean(axis=0) if a.ndim == 2 else a


def _pool_cols(m: np.ndarray, max_cols: int = MAX_COLS) -> tuple[np.ndarray, int]:
    """Average groups of columns so that at most ``max_cols`` remain; returns (matrix, factor)."""
    n = m.shape[-1]
    k = int(np.ceil(n / max_cols)) if n > max_cols else 1
    if k == 1:
        return m, 1
    pad = (-n) % k
    if pad:
        m = np.concatenate([m, np.repeat(m[..., -1:], pad, axis=-1)], axis=-1)
    return m.reshape(*m.shape[:-1], -1, k).mean(-1), k


def mel_db(audio: np.ndarray, sr: int, n_mels: int = 64, n_fft: int = 1024, hop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel spectrogram in dB (``(n_mels, frames)``), frame times (s) and mel centre frequencies (Hz)."""
    import librosa

    y = _mono(audio)
    hop = hop or max(n_fft // 4, int(np.ceil(len(y) / (MAX_COLS * 4))))
    n_fft = min(n_fft, max(256, 1 << int(np.floor(np.log2(max(len(y), 256))))))
    m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0)
    db = librosa.power_to_db(m, ref=1.0, top_db=None)
    db = np.maximum(db, -100.0)
    times = librosa.frames_to_time(np.arange(db.shape[1]), sr=sr, hop_length=hop)
    freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=sr / 2)
    return db, times, freqs


def mel_figure(tracks: Sequence[tuple[str, np.ndarray, int]], title: str = "Mel spectrograms", n_mels: int = 64):
    """One row per ``(name, audio, sr)``, shared time axis and colour scale (dB)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    tracks = [t for t in tracks if t[1] is not None]
    fig = make_subplots(rows=len(tracks), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[t[0] for t in tracks])
    specs = [mel_db(a, sr, n_mels) for _, a, sr in tracks]
    vmax = max((float(s[0].max()) for s in specs), default=0.0)
    for i, (db, times, freqs) in enumerate(specs, start=1):
        db, k = _pool_cols(db)
        fig.add_trace(go.Heatmap(z=db.astype(np.float32), x=times[::k][: db.shape[1]], y=freqs, coloraxis="coloraxis",
                                 hovertemplate="%{x:.2f} s, %{y:.0f} Hz: %{z:.1f} dB<extra></extra>"), row=i, col=1)
        fig.update_yaxes(title_text="Hz", row=i, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(tracks), col=1)
    fig.update_layout(**{**_LAYOUT, "height": 90 + 200 * len(tracks)}, title=title,
                      coloraxis=dict(colorscale="Magma", cmin=vmax - 80, cmax=vmax, colorbar=dict(title="dB")))
    return fig


def heatmap_figure(matrix: np.ndarray, *, times: np.ndarray | None = None, freqs: np.ndarray | None = None,
                   title: str = "Mask", zmin: float = 0.0, zmax: float = 1.0, colorscale: str = "Viridis",
                   ztitle: str = "gain"):
    """A ``(F, N)`` matrix (a mask, a similarity map) over time and frequency."""
    import plotly.graph_objects as go

    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim == 3:
        m = m.mean(axis=0)
    m, k = _pool_cols(m)
    x = None if times is None else np.asarray(times)[::k][: m.shape[1]]
    y = None if freqs is None else np.asarray(freqs)[: m.shape[0]]
    fig = go.Figure(go.Heatmap(z=m, x=x, y=y, zmin=zmin, zmax=zmax, colorscale=colorscale,
                               colorbar=dict(title=ztitle)))
    fig.update_layout(**_LAYOUT, title=title, xaxis_title="time (s)" if x is not None else "frame",
                      yaxis_title="Hz" if y is not None else "bin")
    return fig


def timeline_figure(duration: float, segments: Sequence[dict | Sequence[float]], *,
                    window_times: Sequence[float] | None = None, window_scores: dict[str, Sequence[float]] | None = None,
                    thresholds: dict[str, float] | None = None, title: str = "Detection timeline"):
    """Detected segments as shaded spans plus per-window score curves (e.g. class score, cosine)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for seg in segments:
        s, e = (seg["start"], seg["end"]) if isinstance(seg, dict) else (seg[0], seg[1])
        fig.add_vrect(x0=float(s), x1=float(e), fillcolor="#2ca02c", opacity=0.25, line_width=0,
                      annotation_text=f"{float(s):.2f}-{float(e):.2f} s", annotation_position="top left")
    if window_times is not None:
        for name, scores in (window_scores or {}).items():
            fig.add_trace(go.Scatter(x=list(map(float, window_times)), y=list(map(float, scores)),
                                     mode="lines+markers", name=name))
    for name, value in (thresholds or {}).items():
        if value is not None:  # a legend entry rather than an annotation: close gates do not overlap
            fig.add_trace(go.Scatter(x=[0, float(duration)], y=[float(value)] * 2, mode="lines",
                                     line=dict(dash="dash", width=1.5), name=f"{name} {float(value):.2f}"))
    fig.update_layout(**_LAYOUT, title=title, xaxis=dict(range=[0, float(duration)], title="time (s)"),
                      yaxis_title="score", legend=dict(orientation="h", y=-0.25))
    return fig


def loss_figure(records: Sequence[dict], title: str = "Loss"):
    """Training curves from progress.jsonl records: per-step ``loss`` and per-epoch ``train_*``/``val_*``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    steps = [r for r in records if r.get("event") == "train" and r.get("loss") is not None]
    if steps:
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["loss"] for r in steps],
                                 mode="lines", name="train loss (step)"))
    epochs = [r for r in records if r.get("event") == "epoch"]
    for key in ("train_loss", "val_loss"):
        pts = [(r["step"], r[key]) for r in epochs if r.get(key) is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     name=key.replace("_", " ") + " (epoch)"))
    # validation scores that are not a loss (a trainer that validates by SDR, accuracy...): right-hand axis
    scores = [k for k in dict.fromkeys(k for r in epochs for k in r)
              if k.startswith("val_") and k != "val_loss" and all(isinstance(r.get(k), (int, float, type(None)))
                                                                  and not isinstance(r.get(k), bool) for r in epochs)]
    for key in scores[:4]:
        pts = [(r["step"], r[key]) for r in epochs if r.get(key) is not None]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", yaxis="y2",
                                 line=dict(dash="dot"), name=key.replace("_", " ") + " (epoch, right axis)"))
    extra = dict(yaxis2=dict(title="validation score", overlaying="y", side="right", showgrid=False)) if scores else {}
    fig.update_layout(**_LAYOUT, title=title, xaxis_title="step", yaxis_title="loss",
                      legend=dict(orientation="h", y=-0.25), **extra)
    return fig
