"""Separate tab (query separation): mixture + a short clip of the wanted sound -> target + residual.

Calls ``engines.separation.api.separate`` / ``write_outputs`` only. Every CLI parameter is a slider or
checkbox, grouped (Detection, Mask, Optimisation, Advanced), with the CLI flag in its help text.
"""
import os
import re
from dataclasses import fields

import gradio as gr
import numpy as np

from studio import plots, policy
from studio.common import (_shown, check_model, guard, load_audio, model_picker, progress_callback, session_of)

TITLE = "Separate"
KIND = "query"

#: (name, widget, kwargs, group); widget: slider | check | radio. Defaults come from SeparationConfig.
PARAMS: list[tuple[str, str, dict, str]] = [
    ("window_sec", "slider", dict(minimum=0.25, maximum=3.0, step=0.05), "Detection"),
    ("hop_sec", "slider", dict(minimum=0.1, maximum=2.0, step=0.05), "Detection"),
    ("cls_percentile", "slider", dict(minimum=0, maximum=100, step=1), "Detection"),
    ("use_cosine_gate", "check", {}, "Detection"),
    ("cosine_threshold", "slider", dict(minimum=-1.0, maximum=1.0, step=0.01), "Detection"),
    ("min_dur_ms", "slider", dict(minimum=0, maximum=3000, step=10), "Detection"),
    ("merge_gap_ms", "slider", dict(minimum=0, maximum=2000, step=10), "Detection"),
    ("segment_padding_ms", "slider", dict(minimum=0, maximum=1000, step=5), "Detection"),
    ("time_mask_sharpening", "slider", dict(minimum=0.1, maximum=4.0, step=0.05), "Detection"),
    ("nfft", "radio", dict(choices=[256, 512, 1024, 2048]), "Mask"),
    ("hop", "radio", dict(choices=[64, 128, 256, 512]), "Mask"),
    ("n_mels", "slider", dict(minimum=16, maximum=128, step=8), "Mask"),
    ("gamma_profile", "slider", dict(minimum=0.0, maximum=1.0, step=0.01), "Mask"),
    ("mask_floor", "slider", dict(minimum=0.0, maximum=0.5, step=0.01), "Mask"),
    ("soft_masking", "check", {}, "Mask"),
    ("use_embedding_masking", "check", {}, "Mask"),
    ("use_spectrogram_features", "check", {}, "Mask"),
    ("semantic_blending", "slider", dict(minimum=0.0, maximum=1.0, step=0.05), "Mask"),
    ("similarity_smoothing", "slider", dict(minimum=0.0, maximum=5.0, step=0.1), "Mask"),
    ("opt_steps", "slider", dict(minimum=0, maximum=100, step=1), "Optimisation"),
    ("lr", "slider", dict(minimum=0.01, maximum=1.0, step=0.01), "Optimisation"),
    ("lambda_tv", "slider", dict(minimum=0.0, maximum=0.1, step=0.001), "Optimisation"),
    ("lambda_sat", "slider", dict(minimum=0.0, maximum=0.02, step=0.0005), "Optimisation"),
    ("reference", "radio", dict(choices=["fitted", "stitch"]), "Advanced"),
    ("embedder", "radio", dict(choices=["auto", "ast", "builtin"]), "Advanced"),
    ("ast_model", "text", {}, "Advanced"),
    ("max_query_sec", "slider", dict(minimum=0.5, maximum=10.0, step=0.5), "Advanced"),
    ("threads", "slider", dict(minimum=1, maximum=4, step=1), "Advanced"),
]

HELP = {
    "window_sec": "detection window length (s)", "hop_sec": "detection window hop (s)",
    "cls_percentile": "class gate: windows above this percentile of the query-class score",
    "use_cosine_gate": "also require cosine similarity to the query embedding",
    "cosine_threshold": "cosine gate threshold", "min_dur_ms": "drop segments shorter than this",
    "merge_gap_ms": "merge segments closer than this", "segment_padding_ms": "pad each segment by this",
    "time_mask_sharpening": "power applied to the detection time mask",
    "nfft": "STFT size of the mask", "hop": "STFT hop of the mask", "n_mels": "mel bands of the optimisation loss",
    "gamma_profile": "influence of the query's frequency profile", "mask_floor": "minimum mask value in segments",
    "soft_masking": "soft (ratio) mask; off: binary", "use_embedding_masking": "embedding-aware semantic masking",
    "use_spectrogram_features": "2-D masking from AST patch similarity (AST embedder only)",
    "semantic_blending": "weight of the semantic mask", "similarity_smoothing": "Gaussian smoothing of similarity",
    "opt_steps": "mask optimisation steps (Adam)", "lr": "optimisation learning rate",
    "lambda_tv": "total-variation weight", "lambda_sat": "saturation weight",
    "reference": "fitted: learned query-conditioned reference; stitch: the original's stitched query",
    "embedder": "auto uses AST only when its weights are local", "ast_model": "AST hub id (a local folder only when the studio runs for its owner)",
    "max_query_sec": "longer queries are trimmed to their most typical part", "threads": "CPU threads",
}

#: presets: the balanced CLI defaults, and two directions from it
PRESETS: dict[str, dict] = {
    "balanced": {},
    "more inclusive": dict(cls_percentile=85, cosine_threshold=0.35, min_dur_ms=300, merge_gap_ms=350,
                           segment_padding_ms=120, time_mask_sharpening=0.9, gamma_profile=0.2, mask_floor=0.12),
    "more selective": dict(cls_percentile=96, cosine_threshold=0.55, min_dur_ms=700, merge_gap_ms=120,
                           segment_padding_ms=25, time_mask_sharpening=1.6, gamma_profile=0.35, mask_floor=0.04),
}


def _api():
    from engines.separation import api

    return api


def _defaults() -> dict:
    api = _api()
    return {f.name: f.default for f in fields(api.SeparationConfig)}


def preset_values(name: str) -> dict:
    return {**_defaults(), **PRESETS.get(name, {})}


def build(ctx) -> None:
    api = _api()
    defaults = _defaults()
    comps: dict[str, gr.components.Component] = {}

    def make(name, widget, kw):
        label = name
        info = f"--{name}: {HELP.get(name, '')}"
        v = defaults[name]
        if widget == "slider":
            return gr.Slider(value=v, label=label, info=info, **kw)
        if widget == "check":
            return gr.Checkbox(value=bool(v), label=label, info=info)
        if widget == "radio":
            return gr.Radio(value=v, label=label, info=info, **kw)
        return gr.Textbox(value=v, label=label, info=info)

    with gr.Row():
        mix = gr.Audio(label="Mixture", type="filepath", sources=["upload", "microphone"], elem_id="sep-mix")
        query = gr.Audio(label="Query (a short clip of the wanted sound)", type="filepath",
                         sources=["upload", "microphone"], elem_id="sep-query")
        gt = gr.Audio(label="Ground truth (optional: adds metrics)", type="filepath", sources=["upload"],
                      elem_id="sep-gt")
    with gr.Row():
        preset = gr.Radio(list(PRESETS), value="balanced", label="Preset", scale=2,
                          info="balanced = the CLI defaults; inclusive keeps more, selective keeps less")
        run = gr.Button("Separate", variant="primary", scale=1, elem_id="sep-run")
    groups: dict[str, list] = {}
    for name, widget, kw, group in PARAMS:
        groups.setdefault(group, []).append((name, widget, kw))
    for group in ("Detection", "Mask", "Optimisation", "Advanced"):
        with gr.Accordion(group, open=False):
            if group == "Detection":
                with gr.Row():
                    use_cls_thr = gr.Checkbox(value=defaults["cls_threshold"] is not None,
                                              label="fixed class threshold",
                                              info="--cls_threshold: off = None (use --cls_percentile)")
                    cls_thr = gr.Slider(0.0, 1.0, value=defaults["cls_threshold"] or 0.5, step=0.01,
                                        label="cls_threshold", info="--cls_threshold: class-probability gate")
            with gr.Row(equal_height=False):
                for i, (name, widget, kw) in enumerate(groups[group]):
                    comps[name] = make(name, widget, kw)
            if group == "Advanced":
                with gr.Row():
                    model = model_picker(KIND, ctx, label="Built-in model",
                                         info="--checkpoint: a registered model (the Train tab can add yours)")
                    negative = gr.Audio(label="Negative query (optional: a sound to keep out)", type="filepath",
                                        sources=["upload"])
                with gr.Row():
                    save_vis = gr.Checkbox(value=False, label="save_visualizations",
                                           info="--save_visualizations: also the CLI's comparison and timeline PNGs")
                    save_trim = gr.Checkbox(value=False, label="save_trimmed_query",
                                            info="--save_trimmed_query: the trimmed query, when it was trimmed")

    with gr.Row():
        target_out = gr.Audio(label="Target", type="filepath", interactive=False, elem_id="sep-target")
        residual_out = gr.Audio(label="Residual (mixture - target)", type="filepath", interactive=False,
                                elem_id="sep-residual")
    summary = gr.Markdown(elem_id="sep-summary")
    metrics = gr.JSON(label="Metrics (against the ground truth, when given)", elem_id="sep-metrics")
    mel_plot = gr.Plot(label="Mel spectrograms", elem_id="sep-mel")
    with gr.Row():
        mask_plot = gr.Plot(label="Mask", elem_id="sep-mask")
        timeline_plot = gr.Plot(label="Detection timeline", elem_id="sep-timeline")
    files = gr.File(label="Downloads (target.wav, residual.wav, event.json, renamed query)", file_count="multiple",
                    interactive=False, elem_id="sep-files")

    names = [p[0] for p in PARAMS]

    def on_preset(p):
        vals = preset_values(p)
        return [vals[n] for n in names]

    preset.change(on_preset, preset, [comps[n] for n in names], api_visibility="private")

    @guard
    def on_run(mix_path, query_path, gt_path, neg_path, model_name, use_thr, thr,
               request: gr.Request, progress=gr.Progress(), *values):
        session = session_of(request)
        params = dict(zip(names, values[:len(names)]))
        want_vis, want_trim = (list(values[len(names):]) + [False, False])[:2]
        for k in ("nfft", "hop", "n_mels", "opt_steps", "threads"):
            params[k] = int(params[k])
        params["cls_threshold"] = float(thr) if use_thr else None
        # what names a model is checked before anything else is read
        params["checkpoint"] = check_model(KIND, model_name, ctx, session)
        params["ast_model"] = check_ast_model(params.get("ast_model"), ctx, defaults["ast_model"])
        cfg = api.SeparationConfig(**{**defaults, **params})
        cfg.validate()
        mix_a = load_audio(mix_path, "The mixture", ctx)
        q_a = load_audio(query_path, "The query", ctx)
        gt_a = load_audio(gt_path, "The ground truth", ctx, required=False)
        neg_a = load_audio(neg_path, "The negative query", ctx, required=False)
        need_net = cfg.reference == "fitted"
        progress(0.02, desc="loading models")
        own = cfg.checkpoint is not None and ctx.owns_checkpoint(session, KIND, cfg.checkpoint)
        models = ctx.engines.get(("separation", cfg.embedder, cfg.ast_model, cfg.checkpoint, need_net),
                                 lambda: api.get_models(cfg.embedder, cfg.ast_model, cfg.checkpoint, need_net=need_net),
                                 session=session if own else None)
        res = api.separate(mix_a, q_a, config=cfg, gt=gt_a, negative=neg_a, models=models,
                           progress=progress_callback(progress, 0.05, 0.9))
        progress(0.92, desc="writing files")
        out = ctx.job_dir(session, "separate")
        written = api.write_outputs(res, out, save_visualizations=bool(want_vis), save_trimmed_query=bool(want_trim))
        return _outputs(res, written)

    run.click(on_run, [mix, query, gt, negative, model, use_cls_thr, cls_thr, *[comps[n] for n in names], save_vis,
                       save_trim],
              [target_out, residual_out, summary, metrics, mel_plot, mask_plot, timeline_plot, files],
              api_name="separate")


#: an AST model id on the Hugging Face hub: ``owner/name``, nothing that reads as a local path
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def _is_hub_id(value: str) -> bool:
    return bool(_HUB_ID.fullmatch(value)) and ".." not in value and not value.endswith(".")


def allowed_ast_models(default: str) -> list[str]:
    """The AST ids a public studio accepts: the default plus ``AUDIO_STUDIO_AST_MODELS`` (comma-separated
    ``owner/name`` hub ids; entries that are not hub ids are ignored)."""
    extra = [x.strip() for x in os.environ.get("AUDIO_STUDIO_AST_MODELS", "").split(",") if x.strip()]
    return [default] + [x for x in extra if _is_hub_id(x) and x != default]


def check_ast_model(value, ctx, default: str) -> str:
    """``--ast_model``: anything for the owner (a hub id or a local folder); on a public studio
    (``policy.current(ctx).server_paths`` off) only an allowed hub id, never a server path."""
    v = str(value or "").strip() or default
    if policy.current(ctx).server_paths:
        return v
    allowed = allowed_ast_models(default)
    if v in allowed and _is_hub_id(v):
        return v
    raise gr.Error(f"The AST model '{_shown(v)}' is not available on this studio: use "
                   f"{' or '.join(allowed)}.", print_exception=False)


def _outputs(res, written: dict):
    sr16 = 16000
    hop = int(res.params.get("hop", 256))
    nfft = int(res.params.get("nfft", 512))
    status = "found" if res.found else "**not found** (target is silent, residual = mixture)"
    seg_txt = ", ".join(f"{s['start']:.2f}-{s['end']:.2f} s" for s in res.segments) or "none"
    probs = ", ".join(f"{k} {v:.2f}" for k, v in list(res.class_probs.items())[:3])
    lines = [f"**Detected class:** {res.query_class} ({probs}) · **{status}** · embedder `{res.embedder}`, "
             f"reference `{res.reference}`",
             f"**Segments:** {seg_txt} · processing {res.timings.get('total', 0):.2f} s for "
             f"{res.duration:.1f} s of audio"]
    if res.query_trimmed:
        lines.append("The query was longer than --max_query_sec and was trimmed to its most typical part.")
    for w in res.warnings:
        lines.append(f"⚠ {w}")
    metrics = None
    if res.metrics:
        metrics = dict(res.metrics)
        label = metrics.get("quality_label") or metrics.get("quality")
        if label:
            lines.append(f"**Quality:** {label} (SI-SDR {metrics.get('si_sdr', float('nan')):.2f} dB)")
    mel = plots.mel_figure([("Mixture", res.mixture, res.sr), ("Target", res.target, res.sr),
                            ("Residual", res.residual, res.sr)], title="Mel spectrograms (dB)")
    n_frames = res.mask.shape[-1]
    mask = plots.heatmap_figure(res.mask, times=np.arange(n_frames) * hop / sr16,
                                freqs=np.arange(res.mask.shape[0]) * sr16 / nfft, title="Final mask")
    w = res.windows
    starts = np.asarray(w.get("starts", []), dtype=float)
    centres = starts + float(w.get("window_sec", 1.0)) / 2
    scores = {}
    if len(starts):
        scores["class score"] = np.asarray(w["class_scores"], dtype=float)
        scores["cosine"] = np.asarray(w["cosine"], dtype=float)
    timeline = plots.timeline_figure(res.duration, res.segments, window_times=centres, window_scores=scores,
                                     thresholds={"class gate": w.get("class_threshold"),
                                                 "cosine gate": res.params.get("cosine_threshold")
                                                 if res.params.get("use_cosine_gate") else None},
                                     title=f"Detection timeline: {res.query_class}")
    files = [str(p) for p in written.values()]
    return (str(written["target.wav"]), str(written["residual.wav"]), "\n\n".join(lines),
            metrics, mel, mask,
            timeline, files)
