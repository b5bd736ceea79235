"""Separate tab (query separation): mixture + a short clip of the wanted sound -> target + residual.

The option widgets are generated from :class:`engines.separation.Config` (:mod:`studio.widgets`: their
defaults, ranges and help ARE the CLI's), grouped (Detection, Mask, Optimisation, Advanced), with a preset
picker (``Config.PRESETS``). The engine comes from the studio's engine cache (``ctx.engines``) on
``ctx.device``; the results are written by ``result.save`` into the job folder.
"""
import os
import re

import gradio as gr
import numpy as np

from studio import examples, plots, policy
from studio.stem_player import stem_player
from studio import widgets as W
from studio.common import (_shown, check_model, crop_region, estimate_controls, estimator, guard, load_audio,
                           model_picker, output_choice, output_panel, progress_callback, run_engine, run_batch,
                           batch_panel, session_of, stem_file)

TITLE = "Separate"
KIND = "query"

#: the accordion of each Config group
GROUPS = {"detection": "Detection", "mask": "Mask", "optimisation": "Optimisation", "models": "Advanced",
          "output": "Advanced"}
#: options shown as a Radio rather than a Dropdown
RADIO = ("reference", "embedder")


def _config():
    from engines.separation import Config

    return Config


def _params() -> list[tuple[str, str]]:
    """``(option, accordion)`` of every generated widget, in the Config's order (the /separate endpoint's
    inputs after the files, the model and the class threshold)."""
    from engines.options import specs

    return [(s.name, GROUPS.get(s.group, "Advanced")) for s in specs(_config()) if s.studio]


PARAMS: list[tuple[str, str]] = _params()


def preset_values(name: str | None) -> dict:
    """Every option's value in preset ``name`` (``None``, ``"default"`` or ``"balanced"``: the defaults)."""
    Config = _config()
    return Config.preset(None if name in (None, "default", "balanced") else name).to_dict()


def _engine_key(cfg, device: str) -> tuple:
    return ("separation", cfg.embedder, cfg.ast_model, cfg.checkpoint, cfg.reference == "fitted", device)


def build(ctx) -> None:
    Config = _config()
    defaults = Config().to_dict()
    comps: dict[str, gr.components.Component] = {}

    with gr.Row():
        mix = gr.Audio(label="Mixture", type="filepath", sources=["upload", "microphone"], elem_id="sep-mix")
        query = gr.Audio(label="Query (a short clip of the wanted sound)", type="filepath",
                         sources=["upload", "microphone"], elem_id="sep-query")
        gt = gr.Audio(label="Ground truth (optional: adds metrics)", type="filepath", sources=["upload"],
                      elem_id="sep-gt")
    more_q = gr.File(label="More query clips (optional: several examples of the wanted sound, like the CLI's "
                           "--query_wav A B C)", file_count="multiple", file_types=["audio"], elem_id="sep-more-queries",
                     height=120, value=[])  # a value: API clients may leave it out
    with gr.Row():
        q_from = gr.Number(value=0, minimum=0, label="query from the mixture: from (s)", elem_id="sep-qfrom",
                           info="take a query clip from the mixture itself (with 'to'; 0 and 0: off); added to "
                                "the query clips, or the only one when no query is uploaded")
        q_to = gr.Number(value=0, minimum=0, label="to (s)", elem_id="sep-qto",
                         info="the end of that clip, e.g. a bar where the wanted sound plays alone")
    batch = batch_panel("sep", "mixtures (the same query clips)")
    examples_slot = gr.Column()
    with gr.Row():
        preset_slot = gr.Column(scale=2)
        with gr.Column(scale=1):
            run = gr.Button("Separate", variant="primary", elem_id="sep-run")
            est, est_text = estimate_controls("sep")
    groups: dict[str, list] = {}
    for name, group in PARAMS:
        groups.setdefault(group, []).append(name)
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
                for name in groups.get(group, []):
                    comps[name] = W.widget(Config, name, radio=name in RADIO)
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
    out_opts = output_panel("sep")
    with preset_slot:
        W.preset_picker(Config, comps, elem_id="sep-preset",
                        info="--preset: default = the CLI defaults; inclusive keeps more, selective keeps less, "
                             "fast detects with fewer windows")

    with gr.Row():
        target_out = gr.Audio(label="Target", type="filepath", interactive=False, elem_id="sep-target")
        residual_out = gr.Audio(label="Residual (mixture - target)", type="filepath", interactive=False,
                                elem_id="sep-residual")
    stem_player([("Target", "sep-target"), ("Residual", "sep-residual")], elem_id="sep-stems")
    summary = gr.Markdown(elem_id="sep-summary")
    metrics = gr.JSON(label="Metrics (against the ground truth, when given)", elem_id="sep-metrics")
    mel_plot = gr.Plot(label="Mel spectrograms", elem_id="sep-mel")
    with gr.Row():
        mask_plot = gr.Plot(label="Mask", elem_id="sep-mask")
        timeline_plot = gr.Plot(label="Detection timeline", elem_id="sep-timeline")
    files = gr.File(label="Downloads (target.wav, residual.wav, event.json, renamed query)", file_count="multiple",
                    interactive=False, elem_id="sep-files")

    names = [n for n, _ in PARAMS]

    @guard
    def on_run(mix_path, query_path, gt_path, neg_path, model_name, use_thr, thr,
               request: gr.Request, progress=gr.Progress(), *values):
        from engines.separation import Engine

        session = session_of(request)
        want_vis, want_trim = (list(values[len(names):]) + [False, False])[:2]
        tail = list(values[len(names) + 2:])
        fmt, region = output_choice(tail[:len(out_opts)], like=mix_path)
        more = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (tail[len(out_opts):] or [None])[0] or []]
        batch_files = (tail[len(out_opts) + 1:] or [None])[0] or []
        q_span = [float(v or 0) for v in (tail[len(out_opts) + 2:len(out_opts) + 4] + [0, 0])[:2]]
        params = dict(zip(names, values[:len(names)]))
        # what names a model is checked before anything else is read
        checkpoint = check_model(KIND, model_name, ctx, session)
        params["ast_model"] = check_ast_model(params.get("ast_model"), ctx, defaults["ast_model"])
        cfg = W.to_config(Config, list(params), list(params.values()),
                          cls_threshold=float(thr) if use_thr else None, checkpoint=checkpoint)
        mix_full = load_audio(mix_path, "The mixture", ctx)
        mix_a = crop_region(mix_full, region, "The mixture")
        from_mix = None
        if q_span[1] > 0 or q_span[0] > 0:  # a clip of the mixture itself as a query
            from_mix = crop_region(mix_full, (q_span[0] or None, q_span[1] or None), "The mixture")
        q_a = load_audio(query_path, "The query", ctx, required=from_mix is None) or from_mix
        if len(more) > ctx.max_files:
            raise gr.Error(f"{len(more)} extra query clips; the studio takes at most {ctx.max_files}.",
                           print_exception=False)
        q_all = [q_a] + [load_audio(p, f"Query clip {i + 2}", ctx) for i, p in enumerate(more)]
        if from_mix is not None and q_a is not from_mix:
            q_all.append(from_mix)
        q_a = q_all[0]
        gt_a = crop_region(load_audio(gt_path, "The ground truth", ctx, required=False), region, "The ground truth")
        neg_a = load_audio(neg_path, "The negative query", ctx, required=False)
        progress(0.02, desc="loading models")
        own = cfg.checkpoint is not None and ctx.owns_checkpoint(session, KIND, cfg.checkpoint)
        engine = ctx.engines.get(_engine_key(cfg, ctx.device), lambda: Engine.load(config=cfg, device=ctx.device),
                                 session=session if own else None)
        res = run_engine(engine, {"mix": mix_a, "query": q_all if len(q_all) > 1 else q_a, "gt": gt_a,
                                  "negative": neg_a}, cfg, progress=progress_callback(progress, 0.05, 0.9))
        progress(0.92, desc="writing files")
        out = ctx.job_dir(session, "separate")
        written = res.save(out, save_visualizations=bool(want_vis), save_trimmed_query=bool(want_trim), fmt=fmt)

        def one(path, folder):  # a batch mixture: the same queries, options, format and region
            fmt_p, _ = output_choice(tail[:len(out_opts)], like=path)
            m = crop_region(load_audio(path, "The mixture", ctx), region, "The mixture")
            r = run_engine(engine, {"mix": m, "query": q_all if len(q_all) > 1 else q_a, "negative": neg_a}, cfg)
            return r.save(folder, save_visualizations=False, fmt=fmt_p)

        zipped, batch_lines = run_batch(batch_files, ctx, out, one, progress, first=written)
        return _outputs(res, written, zipped, batch_lines)

    run_inputs = [mix, query, gt, negative, model, use_cls_thr, cls_thr, *[comps[n] for n in names], save_vis,
                  save_trim, *out_opts, more_q, batch, q_from, q_to]
    run_outputs = [target_out, residual_out, summary, metrics, mel_plot, mask_plot, timeline_plot, files]
    run.click(on_run, run_inputs, run_outputs, api_name="separate")
    est.click(estimator(on_run), run_inputs, est_text, api_visibility="private")
    with examples_slot:
        examples.attach("separate", [mix, query, gt], on_run, run_inputs, run_outputs)


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


def _outputs(res, written: dict, zipped: str | None = None, batch_lines=()):
    sr16 = 16000
    hop = int(res.params.get("hop", 256))
    nfft = int(res.params.get("nfft", 512))
    pres = res.presence_text() if hasattr(res, "presence_text") else ""
    status = (f"found ({pres})" if pres else "found") if res.found else \
        f"**not found** ({pres + '; ' if pres else ''}target is silent, residual = mixture)"
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
    if batch_lines:
        lines.append("**Batch** (every result in results.zip):\n" + "\n".join(batch_lines))
    files = [str(p) for p in written.values()] + ([zipped] if zipped else [])
    return (stem_file(written, "target"), stem_file(written, "residual"), "\n\n".join(lines),
            metrics, mel, mask,
            timeline, files)
