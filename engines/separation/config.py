"""Every option of the query separation engine, declared once (:mod:`engines.options`): the API validates it,
``launch.py separate`` generates its flags from it and the Separate tab its widgets. No torch import here.

The defaults are the original system's "balanced" settings plus the engine's own options (the fitted
reference, the not-found gate). Presets: ``inclusive`` keeps more of the mixture, ``selective`` less
(the studio's former "more inclusive" / "more selective"), ``fast`` halves the detection windows (hop
= window) and shortens the mask optimisation (stitching reference, ``--refine_net_mask``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engines.audio.limits import Range
from engines.options import ConfigBase, option

#: the AST model ``--embedder auto|ast`` uses (a hub id or a local folder)
DEFAULT_AST = "MIT/ast-finetuned-audioset-10-10-0.4593"


@dataclass(frozen=True)
class Config(ConfigBase):
    """Options of query separation (see the module docstring)."""

    PRESETS: ClassVar[dict[str, dict]] = {
        "inclusive": dict(cls_percentile=85.0, cosine_threshold=0.35, min_dur_ms=300.0, merge_gap_ms=350.0,
                          segment_padding_ms=120.0, time_mask_sharpening=0.9, gamma_profile=0.2, mask_floor=0.12),
        "selective": dict(cls_percentile=96.0, cosine_threshold=0.55, min_dur_ms=700.0, merge_gap_ms=120.0,
                          segment_padding_ms=25.0, time_mask_sharpening=1.6, gamma_profile=0.35, mask_floor=0.04),
        "fast": dict(opt_steps=6, window_sec=1.0, hop_sec=1.0),
    }

    # ---- detection
    window_sec: float = option(1.0, "detection window length (s)", range=Range(0.1, 10.0), group="detection",
                               step=0.05)
    hop_sec: float = option(0.5, "detection window hop (s); at most --window_sec", range=Range(0.05, 10.0),
                            group="detection", step=0.05)
    cls_threshold: float | None = option(None, "class gate, 0-1 (None: use --cls_percentile)",
                                         range=Range(0.0, 1.0), group="detection", studio=False)
    cls_percentile: float = option(92.0, "class gate: windows above this percentile of the query-class score",
                                   range=Range(0, 100), group="detection", step=1)
    use_cosine_gate: bool = option(True, "also require cosine similarity to the query embedding", group="detection")
    cosine_threshold: float = option(0.45, "cosine gate threshold",
                                     range=Range(-2.0, 2.0, note="beyond +-1 the gate always opens or closes"),
                                     group="detection", step=0.01)
    min_dur_ms: float = option(500.0, "drop segments shorter than this (ms)", range=Range(0, 60000),
                               group="detection", step=10)
    merge_gap_ms: float = option(200.0, "merge segments closer than this (ms)", range=Range(0, 60000),
                                 group="detection", step=10)
    segment_padding_ms: float = option(50.0, "pad each segment by this (ms)", range=Range(0, 10000),
                                       group="detection", step=5)
    time_mask_sharpening: float = option(1.2, "power applied to the detection time mask",
                                         range=Range(0, 10, lo_open=True), group="detection", step=0.05)
    # ---- mask
    nfft: int = option(512, "STFT size of the mask (16 kHz analysis)",
                       range=Range(256, 8192, integer=True, power_of_two=True), group="mask")
    hop: int = option(256, "STFT hop of the mask; at most half of --nfft", range=Range(16, 4096, integer=True),
                      group="mask")
    n_mels: int = option(64, "mel bands of the optimisation loss", range=Range(8, 256, integer=True), group="mask")
    gamma_profile: float = option(0.25, "influence of the query's frequency profile", range=Range(0, 10),
                                  group="mask", step=0.01)
    mask_floor: float = option(0.08, "minimum mask value in segments", range=Range(0, 0.99), group="mask",
                               step=0.01)
    soft_masking: bool = option(True, "soft (ratio) mask; off: binary", group="mask")
    use_embedding_masking: bool = option(False, "embedding-aware semantic masking", group="mask")
    use_spectrogram_features: bool = option(False, "2-D masking from AST patches (AST only)", group="mask")
    semantic_blending: float = option(0.7, "weight of the semantic mask", range=Range(0, 1), group="mask", step=0.05)
    similarity_smoothing: float = option(1.0, "Gaussian smoothing of the similarity (frames)", range=Range(0, 100),
                                         group="mask", step=0.1)
    # ---- optimisation
    opt_steps: int = option(18, "mask optimisation steps (Adam)", range=Range(0, 500, integer=True),
                            group="optimisation")
    lr: float = option(0.28, "optimisation learning rate", range=Range(0, 10, lo_open=True), group="optimisation",
                       step=0.01)
    lambda_tv: float = option(0.008, "total-variation weight", range=Range(0, 10), group="optimisation", step=0.001)
    lambda_sat: float = option(0.0010, "saturation weight", range=Range(0, 10), group="optimisation", step=0.0005)
    # ---- models
    embedder: str = option("auto", "auto: AST only if its weights are already on disk (never downloads), else built-in",
                           choices=("auto", "ast", "builtin"), group="models")
    ast_model: str = option(DEFAULT_AST, "AST hub id or local folder (a local folder only when the studio runs for "
                            "its owner)", group="models")
    checkpoint: str | None = option(None, "built-in model: registry name or .safetensors path", group="models",
                                    studio=False)
    reference: str = option("fitted", "fitted: query-conditioned mask net (default); stitch: the original's query "
                            "stitching", choices=("fitted", "stitch"), group="models")
    not_found_db: float = option(-25.0, "fitted, a model without a presence calibration: 'not found' when the "
                                 "estimated target is below this (dB re mixture)", range=Range(-1000, 1000),
                                 group="models", step=1)
    presence_threshold: float | None = option(None, "fitted, a calibrated model: 'not found' when the presence score "
                                              "(0-1) is below this (None: the model's calibrated threshold; 0: never)",
                                              range=Range(0.0, 1.0), group="models", studio=False)
    refine_net_mask: bool = option(False, "fitted: also run the DGMO optimisation (--opt_steps ...) and --mask_floor "
                                   "on the mask net's mask (off by default: on held-out corpus triples they did "
                                   "not help)", group="models")
    max_query_sec: float = option(3.0, "longer queries are trimmed to their most typical part",
                                  range=Range(0.5, 60), group="models", step=0.5)
    threads: int = option(2, "CPU threads (one when the machine is already busy)",
                          range=Range(1, 64, integer=True), group="output")

    def check(self) -> None:
        from engines.audio import limits

        limits.check_threads(self.threads)
        rules = [
            (self.hop_sec <= self.window_sec, f"hop_sec ({self.hop_sec:g}) must not exceed window_sec "
                                              f"({self.window_sec:g})"),
            (self.hop <= self.nfft // 2, f"hop ({self.hop}) must be at most half of nfft ({self.nfft}): "
                                         "the inverse STFT needs overlapping frames"),
        ]
        for ok, msg in rules:
            if not ok:
                raise ValueError(f"Invalid setting: {msg}.")

    def validate(self) -> None:
        """Kept for callers of the former ``SeparationConfig.validate()``: a built config is already valid."""
        from engines.options import validate

        validate(self)
        self.check()


#: the former name
SeparationConfig = Config

__all__ = ["Config", "SeparationConfig", "DEFAULT_AST"]
