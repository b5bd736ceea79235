"""Timbre tab: play a recording as another instrument (piano <-> violin). Calls ``engines.timbre`` only: the
option widgets come from :class:`engines.timbre.Config` (their defaults are the CLI's), the result is written by
``TimbreResult.save``."""
import gradio as gr
import numpy as np

from studio import examples, plots
from studio.common import (check_model, crop_region, estimate_controls, estimator, guard, load_audio, model_picker,
                           output_choice, output_panel, progress_callback, run_engine, run_batch, batch_panel,
                           session_of, stem_file)
from studio.widgets import preset_picker, to_config, widget

TITLE = "Timbre"
KIND = "timbre"
#: the Config options this tab shows, in the order on_run receives them
OPTIONS = ("target", "phase", "gl_iters")


def build(ctx) -> None:
    from engines.timbre import Config

    with gr.Row():
        src = gr.Audio(label="Input (e.g. a piano recording)", type="filepath", sources=["upload", "microphone"],
                       elem_id="tim-input")
        ref = gr.Audio(label="Style reference (optional: a clip of the target instrument)", type="filepath",
                       sources=["upload"], elem_id="tim-ref")
    examples_slot = gr.Column()
    with gr.Row():
        target = widget(Config, "target", radio=True, info="--target: the instrument to play it on")
        phase = widget(Config, "phase", radio=True,
                       info="--phase: input = the input's phase as is; griffinlim = the input's phase refined by "
                            "Griffin-Lim")
        gl_iters = widget(Config, "gl_iters", info="--gl_iters: Griffin-Lim iterations (phase griffinlim)")
        model = model_picker(KIND, ctx, label="model", info="--model / --checkpoint: a registered model")
    preset_picker(Config, {"phase": phase, "gl_iters": gl_iters}, elem_id="tim-preset")
    out_opts = output_panel("tim")
    batch = batch_panel("tim", "inputs")
    run = gr.Button("Transfer", variant="primary", elem_id="tim-run")
    est, est_text = estimate_controls("tim")
    summary = gr.Markdown(elem_id="tim-summary")
    with gr.Row():
        in_play = gr.Audio(label="Input", type="filepath", interactive=False, elem_id="tim-in-play")
        out_play = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="tim-out")
    compare = gr.Plot(label="Spectrogram comparison", elem_id="tim-compare")
    batch_zip = gr.File(label="Batch results (zip)", interactive=False, elem_id="tim-batch-zip")

    @guard
    def on_run(src_path, ref_path, tgt, ph, iters, model_name, out_format="wav", out_subtype="auto", out_bitrate=192,
               start=0, end=0, batch_files=None, request: gr.Request = None, progress=gr.Progress()):
        from engines.timbre.api import TimbreEngine

        session = session_of(request)
        picked = check_model(KIND, model_name, ctx, session)
        cfg = to_config(Config, OPTIONS, (tgt, ph, iters))
        fmt, region = output_choice([out_format, out_subtype, out_bitrate, start, end], like=src_path)
        audio, sr = crop_region(load_audio(src_path, "The input", ctx), region, "The input")
        style = load_audio(ref_path, "The style reference", ctx, required=False)
        own = picked is not None and ctx.owns_checkpoint(session, KIND, picked)
        progress(0.0, desc="loading the model")
        engine = ctx.engines.get(("timbre", picked, ctx.device), lambda: TimbreEngine.load(picked, device=ctx.device),
                                 session=session if own else None)
        res = run_engine(engine, {"input": (audio, sr), "style_ref": style}, cfg,
                         progress=progress_callback(progress, 0.05, 0.95))
        job = ctx.job_dir(session, "timbre")
        saved = res.save(job, fmt=fmt)

        def one(path, folder):  # a batch input: the same options, style, format and region
            fmt_p, _ = output_choice([out_format, out_subtype, out_bitrate, start, end], like=path)
            x = crop_region(load_audio(path, "The input", ctx), region, "The input")
            return run_engine(engine, {"input": x, "style_ref": style}, cfg).save(folder, fmt=fmt_p)

        zipped, batch_lines = run_batch(batch_files, ctx, job, one, progress, first=saved)
        out_path = stem_file(saved, res.target)
        probs = ", ".join(f"{k} {v:.2f}" for k, v in res.source_probs.items())
        text = (f"**{res.target}** from the input (the model hears: {probs}) · style: {res.style} · model "
                f"`{res.model}` · {res.duration:.1f} s in {res.seconds:.2f} s (RTF {res.rtf:.2f})")
        if res.warning:  # a synthesis model is monophonic: say so when the input holds chords
            text += f"\n\n**Warning:** {res.warning}"
        if batch_lines:
            text += "\n\n**Batch** (every result in the zip):\n" + "\n".join(batch_lines)
        return text, src_path, out_path, _compare(res), zipped

    run_inputs = [src, ref, target, phase, gl_iters, model, *out_opts, batch]
    run_outputs = [summary, in_play, out_play, compare, batch_zip]
    run.click(on_run, run_inputs, run_outputs, api_name="timbre")
    est.click(estimator(on_run), run_inputs, est_text, api_visibility="private")
    with examples_slot:
        examples.attach("timbre", [src, ref], on_run, run_inputs, run_outputs)


def _compare(res):
    """Input and output dB spectrograms side by side (the engine's own analysis grid)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=["Input", f"Result ({res.target})"],
                        horizontal_spacing=0.04)
    n_bins = res.input_db.shape[0]
    freqs = np.linspace(0, 22050 / 2, n_bins)
    keep = freqs <= 8000  # the musically useful part, and a lighter figure
    vmax = float(max(res.input_db.max(), res.output_db.max()))
    for col, m in ((1, res.input_db), (2, res.output_db)):
        m, k = plots._pool_cols(m[keep])  # noqa: SLF001 - shared helper
        fig.add_trace(go.Heatmap(z=m, x=np.asarray(res.frame_times)[::k][: m.shape[1]], y=freqs[keep],
                                 coloraxis="coloraxis"), row=1, col=col)
        fig.update_xaxes(title_text="time (s)", row=1, col=col)
    fig.update_yaxes(title_text="Hz", row=1, col=1)
    fig.update_layout(margin=dict(l=50, r=20, t=40, b=40), height=340, template="plotly_white",
                      coloraxis=dict(colorscale="Magma", cmin=vmax - 80, cmax=vmax, colorbar=dict(title="dB")))
    return fig
