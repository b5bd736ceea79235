"""The "not found" decision: a calibrated presence score from the mask net and the detection stage.

:func:`features` reads, for one mixture and query, what both stages already computed: the mask net's
estimated target energy re the mixture (whole clip and its loudest 10 % of frames), the detection
windows' cosine similarity with the query embedding (maximum and mean of the top three) and the
classifier's probability of the query's class (maximum), and what the embedder says of the mask net's
estimate itself (:func:`estimate_features`: does the extracted sound resemble the query?). :func:`score` maps them through a logistic
model to a probability that the query occurs; the model's coefficients and its threshold come from a
calibration set of corpus mixtures with their own query (present) and with a query of a class that
cannot occur in them (absent), never the bench (``benchmarks/query_calibrate.py``), and are stored in the
model's registry entry (``"presence"``). A checkpoint without one falls back to the former rule (the
estimated target energy against ``--not_found_db``, -25 dB).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

#: the features, in the order of a calibration's ``weights``
FEATURES = ("est_db", "peak_db", "max_cos", "top3_cos", "max_cls", "est_cos", "est_cos_max", "est_cls")
#: the former rule's threshold, used when a model has no calibration
LEGACY_DB = -25.0


def estimate_features(est_cos, est_cls, energy) -> dict:
    """What the embedder says of the mask net's *estimate*, per detection window: its cosine with the query
    embedding and its probability of the query's class, weighted by the estimate's energy in the window
    (``est_cos``, ``est_cls``), and the best cosine among the windows holding at least 10 % of the loudest's
    energy (``est_cos_max``). A present query's estimate sounds like the query; an absent one's does not."""
    c, k, e = (np.asarray(v, dtype=np.float64) for v in (est_cos, est_cls, energy))
    if e.size == 0 or e.sum() <= 0:
        return {"est_cos": 0.0, "est_cos_max": 0.0, "est_cls": 0.0}
    w = e / e.sum()
    loud = e >= 0.1 * e.max()
    return {"est_cos": round(float((w * c).sum()), 4), "est_cos_max": round(float(c[loud].max()), 4),
            "est_cls": round(float((w * k).sum()), 4)}


def features(mask, mag, cosine, class_scores, estimate: dict | None = None) -> dict:
    """``mask``, ``mag`` ``(F, N)`` torch tensors (the mask net's mask and the mixture's magnitude on one grid),
    the detection windows' ``cosine`` and ``class_scores`` ``(W,)`` and ``estimate`` (:func:`estimate_features`)
    -> ``{name: float}`` (:data:`FEATURES`)."""
    e_t = (mask * mag).pow(2).sum(0).double().numpy()
    e_m = mag.pow(2).sum(0).double().numpy()
    est = 10 * math.log10(e_t.sum() / max(e_m.sum(), 1e-12) + 1e-12)
    k = max(1, int(round(0.1 * e_t.size)))
    loud = np.argsort(e_t)[-k:]
    peak = 10 * math.log10(e_t[loud].sum() / max(e_m[loud].sum(), 1e-12) + 1e-12)
    cos = np.sort(np.asarray(cosine, dtype=np.float64))[::-1]
    cls = np.asarray(class_scores, dtype=np.float64)
    return {"est_db": round(est, 3), "peak_db": round(peak, 3),
            "max_cos": round(float(cos[0]) if cos.size else 0.0, 4),
            "top3_cos": round(float(cos[:3].mean()) if cos.size else 0.0, 4),
            "max_cls": round(float(cls.max()) if cls.size else 0.0, 4),
            **(estimate or {"est_cos": 0.0, "est_cos_max": 0.0, "est_cls": 0.0})}


def score(feats: dict, calibration: dict) -> float:
    """The presence probability in [0, 1]: ``sigmoid(bias + sum_i w_i (x_i - mean_i) / scale_i)``."""
    z = float(calibration["bias"])
    for name, w, mu, sd in zip(calibration["features"], calibration["weights"], calibration["mean"],
                               calibration["scale"]):
        z += float(w) * (float(feats[name]) - float(mu)) / max(float(sd), 1e-9)
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


def fit(x: np.ndarray, y: np.ndarray, names=FEATURES, c: float = 1.0) -> dict:
    """A logistic model of ``y`` (1 present, 0 absent) on the feature rows ``x (n, len(names))`` (standardised,
    L2 ``c``; scikit-learn) as a calibration dict (no threshold yet)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-9
    lr = LogisticRegression(C=c, max_iter=1000).fit((x - mu) / sd, y)
    return {"features": list(names), "weights": [round(float(v), 6) for v in lr.coef_[0]],
            "bias": round(float(lr.intercept_[0]), 6), "mean": [round(float(v), 6) for v in mu],
            "scale": [round(float(v), 6) for v in sd]}


def choose_threshold(p_present: np.ndarray, max_miss: float = 0.025) -> float:
    """The highest threshold that declares at most ``max_miss`` of the present scores absent."""
    p = np.sort(np.asarray(p_present, dtype=np.float64))
    k = int(math.floor(max_miss * p.size))  # this many may fall below
    return float(p[k]) if p.size else 0.5


def calibration_for(path: str | os.PathLike | None) -> dict | None:
    """The ``presence`` calibration of the registry entry whose file is ``path`` (None when there is none)."""
    if path is None:
        return None
    from engines import registry

    try:
        target = Path(path).resolve()
        for e in registry.entries("query"):
            f = registry._dir(None) / e.get("file", "")
            if f.is_file() and f.resolve() == target and isinstance(e.get("presence"), dict):
                return e["presence"]
    except (OSError, ValueError):
        return None
    return None


__all__ = ["FEATURES", "LEGACY_DB", "features", "estimate_features", "score", "fit", "choose_threshold", "calibration_for"]
