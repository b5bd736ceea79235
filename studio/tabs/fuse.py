"""Fuse tab (A/B fusion): song A + song B -> one arrangement. Calls ``engines.fusion`` only.

The option widgets are generated from :class:`engines.fusion.Config` (their defaults, ranges and help are the
CLI's); a preset picker sets them. The mask-type picker shows only the parameters that type uses; direct
(no network) or learned (the cascade transformer); tempo/key/loudness matching switches; A, B and fusion
players; a map of which source holds which region over time and frequency. Files are written by
``FusionResult.save`` (fusion.wav, fusion.json; a.wav and b_aligned.wav for the players in the same stage).
A batch of more B songs is each fused with song A (same options, format and region) into one zip.
"""
import gradio as gr
import numpy as np

from engines.fusion import Config
from studio import examples, plots
from studio import widgets as W
from studio.common import (batch_panel, check_model, crop_region, estimate_controls, estimator, guard, load_audio,
                           model_picker, output_choice, output_panel, progress_callback, run_batch, run_engine,
                           session_of, stem_file)

TITLE = "Fuse"
KIND = "fusion"

#: which parameter groups each mask type uses
USES = {
    "none": set(),
    "temporal": {"segments"},
    "frequency": {"freq"},
    "spectral": {"channels"},
    "energy": {"energy"},
    "hybrid": {"segments", "freq"},
    "stems": {"stems"},  # one song's vocals (or vocals + other) over the other's accompaniment (or drums + bass)
}

#: the Config options the tab sets, in the order its event receives them (the two songs first, the model
#: picker after ``mode``: the order API clients have always used)
OPTIONS = ("mask_type", "mode", "match_tempo", "match_key", "match_loudness", "crossfade_ms", "segment_unit",
           "segment_length", "mask_temporal_segment", "mask_freq_split", "mask_channel_keep", "seed",
           "mask_energy_threshold", "energy_smoothing_ms")
#: the stem mashup's options: after the batch in the event's inputs (API clients keep their order)
STEM_OPTIONS = ("vocals_from", "stem_split")


def build(ctx) -> None:
    from engines.fusion.masking import DESCRIPTIONS

    default_type = Config().mask_type
    with gr.Row():
        a_in = gr.Audio(label="Song A (leads: its tempo, length and bars)", type="filepath",
                        sources=["upload", "microphone"], elem_id="fuse-a")
        b_in = gr.Audio(label="Song B", type="filepath", sources=["upload", "microphone"], elem_id="fuse-b")
    examples_slot = gr.Column()
    opts: dict = {}
    with gr.Row():
        with gr.Column():
            opts["mask_type"] = W.widget(Config, "mask_type", radio=True, elem_id="fuse-mask-type",
                                         info="--mask_type: " + DESCRIPTIONS[default_type])
            opts["mode"] = W.widget(Config, "mode", radio=True, info="--mode: direct = masked sum, no network; "
                                                                      "learned = the cascade transformer")
            model = model_picker(KIND, ctx, visible=Config().mode == "learned", label="model",
                                 info="--model / --checkpoint (learned mode): a registered model")
        with gr.Column():
            with gr.Row():
                opts.update(W.widgets(Config, ("match_tempo", "match_key", "match_loudness"),
                                      match_tempo={"elem_id": "fuse-match-tempo"}))
            opts["crossfade_ms"] = W.widget(Config, "crossfade_ms")
    with gr.Group(visible="segments" in USES[default_type]) as seg_group:
        with gr.Row():
            opts["segment_unit"] = W.widget(Config, "segment_unit", radio=True)
            opts["segment_length"] = W.widget(Config, "segment_length")
            opts["mask_temporal_segment"] = W.widget(Config, "mask_temporal_segment", number=True)
    with gr.Group(visible="freq" in USES[default_type]) as freq_group:
        opts["mask_freq_split"] = W.widget(Config, "mask_freq_split", info=_split_info(Config().mask_freq_split))
    with gr.Group(visible="channels" in USES[default_type]) as chan_group:
        with gr.Row():
            opts["mask_channel_keep"] = W.widget(Config, "mask_channel_keep")
            opts["seed"] = W.widget(Config, "seed", number=True)
    with gr.Group(visible="energy" in USES[default_type]) as energy_group:
        with gr.Row():
            opts.update(W.widgets(Config, ("mask_energy_threshold", "energy_smoothing_ms")))
    with gr.Group(visible="stems" in USES[default_type]) as stems_group:
        with gr.Row():
            opts["vocals_from"] = W.widget(Config, "vocals_from", radio=True, elem_id="fuse-vocals-from",
                                           info="--vocals_from: the song whose vocals (rhythm split: vocals + other) "
                                                "lead")
            opts["stem_split"] = W.widget(Config, "stem_split", radio=True, elem_id="fuse-stem-split",
                                          info="--stem_split: vocals over the other song's accompaniment, or "
                                               "rhythm (the other song keeps drums + bass; needs a four-stem "
                                               "vocal model such as vocals-bs)")
    W.preset_picker(Config, opts, elem_id="fuse-preset")
    out_opts = output_panel("fuse")
    batch = batch_panel("fuse", "B songs (each fused with song A)")
    run = gr.Button("Fuse", variant="primary", elem_id="fuse-run")
    est, est_text = estimate_controls("fuse")
    summary = gr.Markdown(elem_id="fuse-summary")
    with gr.Row():
        a_out = gr.Audio(label="A (as fused)", type="filepath", interactive=False, elem_id="fuse-a-out")
        b_out = gr.Audio(label="B (aligned to A)", type="filepath", interactive=False, elem_id="fuse-b-out")
        f_out = gr.Audio(label="Fusion", type="filepath", interactive=False, elem_id="fuse-out")
    regions = gr.Plot(label="Which source holds which region", elem_id="fuse-regions")
    mel = gr.Plot(label="Spectrograms", elem_id="fuse-mel")
    files = gr.File(label="Downloads (fusion.wav, fusion.json)", file_count="multiple", interactive=False,
                    elem_id="fuse-files")
    batch_zip = gr.File(label="Batch results (zip)", interactive=False, elem_id="fuse-batch-zip")

    def on_type(t):
        uses = USES.get(t, set())
        return (gr.update(info="--mask_type: " + DESCRIPTIONS.get(t, "")),
                gr.update(visible="segments" in uses), gr.update(visible="freq" in uses),
                gr.update(visible="channels" in uses), gr.update(visible="energy" in uses),
                gr.update(visible="stems" in uses))

    mask_type = opts["mask_type"]
    mask_type.change(on_type, mask_type, [mask_type, seg_group, freq_group, chan_group, energy_group, stems_group],
                     api_visibility="private")
    opts["mode"].change(lambda m: gr.update(visible=m == "learned"), opts["mode"], model, api_visibility="private")
    opts["mask_freq_split"].change(lambda s: gr.update(info=_split_info(s)), opts["mask_freq_split"],
                                   opts["mask_freq_split"], api_visibility="private")

    @guard
    def on_run(a_path, b_path, mtype, md, model_name, mt, mk, ml, xfade, unit, length, frames, fsplit, keep, sd,
               ethr, esmooth, out_format, out_subtype, out_bitrate, start, end, batch_files=None, vfrom="a",
               split="vocals", request: gr.Request = None, progress=gr.Progress()):
        from engines.fusion import Engine

        session = session_of(request)
        values = (mtype, md, mt, mk, ml, xfade, unit, length, frames, fsplit, keep, sd, ethr, esmooth)
        cfg = W.to_config(Config, OPTIONS + STEM_OPTIONS, values + (vfrom, split),
                          max_seconds=ctx.max_seconds)  # refused here, before any work
        picked = check_model(KIND, model_name, ctx, session) if cfg.mode == "learned" else None
        fmt, region = output_choice([out_format, out_subtype, out_bitrate, start, end], like=a_path)
        a = crop_region(load_audio(a_path, "Song A", ctx), region, "Song A")
        b = load_audio(b_path, "Song B", ctx)
        own = picked is not None and ctx.owns_checkpoint(session, KIND, picked)
        progress(0.0, desc="loading the codec" + (" and model" if cfg.mode == "learned" else ""))
        engine = ctx.engines.get(("fusion", picked), lambda: Engine.load(picked, device=ctx.device),
                                 session=session if own else None)
        if cfg.mode == "learned":
            engine.load_model(engine.codec_for(cfg.codec))
        res = run_engine(engine, {"a": (a[0], a[1]), "b": (b[0], b[1])}, cfg,
                         progress=progress_callback(progress, 0.05, 0.9))
        # every file of the run (fusion.wav, fusion.json, the two players' sources), all-or-nothing, never
        # over an input
        job = ctx.job_dir(session, "fuse")
        written = {n: str(p) for n, p in res.save(job, inputs=[a_path, b_path], extra=res.source_files(),
                                                  fmt=fmt).items()}
        f_path, a_path2, b_path2 = stem_file(written, "fusion"), written.get("a.wav"), written.get("b_aligned.wav")

        def one(path, folder):  # a batch B: fused with the same song A, options, format and region
            other = load_audio(path, "Song B", ctx)
            return run_engine(engine, {"a": (a[0], a[1]), "b": other}, cfg).save(folder, inputs=[a_path, path],
                                                                                  fmt=fmt)

        zipped, batch_lines = run_batch(batch_files, ctx, job, one, progress,
                                        first={"fusion": f_path, "fusion.json": written["fusion.json"]})
        info = res.to_json()
        share = res.share()
        p = res.params
        tempo = p.get("tempo") or {}
        lines = [f"**{res.mask_type}** ({info['description']}), **{res.mode}** mode · {res.duration:.1f} s in "
                 f"{res.timings.get('total', 0):.2f} s",
                 "**Share of the grid:** " + ", ".join(f"{k} {v:.0%}" for k, v in share.items() if v)]
        if tempo:
            lines.append(f"**Tempo:** A {tempo.get('a_bpm')} BPM, B {tempo.get('b_bpm')} BPM, stretch {tempo.get('rate')}")
        lines += _mashability_lines(p.get("mashability") or {})
        if batch_lines:
            lines.append("**Batch** (each B fused with song A; every result in the zip):\n" + "\n".join(batch_lines))
        fig = _region_figure(res)
        sr = res.sample_rate
        mel_fig = plots.mel_figure([(n, y, sr) for n, y in (("A", res.a), ("B (aligned)", res.b), ("Fusion", res.fusion))
                                    if y is not None], title="Mel spectrograms (dB)")
        return ("\n\n".join(lines), a_path2, b_path2, f_path, fig, mel_fig, [f_path, written["fusion.json"]],
                zipped)

    # the batch at the end of the inputs and its zip at the end of the outputs: API clients keep their order
    run_inputs = [a_in, b_in, opts["mask_type"], opts["mode"], model, *(opts[n] for n in OPTIONS[2:]), *out_opts,
                  batch, *(opts[n] for n in STEM_OPTIONS)]
    run_outputs = [summary, a_out, b_out, f_out, regions, mel, files, batch_zip]
    run.click(on_run, run_inputs, run_outputs, api_name="fuse")
    est.click(estimator(on_run), run_inputs, est_text, api_visibility="private")
    with examples_slot:
        examples.attach("fuse", [a_in, b_in], on_run, run_inputs, run_outputs)


def _split_info(split) -> str:
    """The frequency split in Hz (log axis of the built-in codec, 24 kHz), for the slider's info line."""
    from engines.fusion.config import split_label

    return (f"--mask_freq_split {float(split):.2f} = {split_label(float(split))}: A below, B above "
            "(log axis: 0.2 = 200 Hz, 0.3 = 334 Hz, 0.5 = 930 Hz, 1 = 12 kHz)")


def _mashability_lines(m: dict) -> list[str]:
    """The mashability readout of ``fusion.json`` as Markdown lines."""
    lines = []
    t = m.get("tempo")
    if t:
        alts = ", ".join(f"x{a['rate']:.2f}" for a in t.get("alternatives", []))
        lines.append(f"**Tempo:** A {t['a_bpm']} BPM, B {t['b_bpm']} BPM, stretch x{t['rate']:.3f} "
                     f"({t['stretch_pct']:.0f} %{'' if t.get('applied') else ', not applied'}); alternatives {alts}")
    k = m.get("key")
    if k:
        shift = f", B shifted {k['b_semitones']:+d} semitones" if k.get("b_semitones") else ""
        lines.append(f"**Key:** A {k['a']} ({k['camelot_a']}), B {k['b']} ({k['camelot_b']}): Camelot distance "
                     f"{k['camelot_distance']}{shift}")
    if "loudness_difference_db" in m:
        lines.append(f"**Loudness:** B was {abs(m['loudness_difference_db']):.1f} dB "
                     f"{'quieter' if m['loudness_difference_db'] < 0 else 'louder'} than A (matched)")
    parts = m.get("parts")
    if parts:
        lines.append("**Parts:** " + "; ".join(f"{who}: {what}" for who, what in parts.items())
                     + (f" (A holds {m['energy_share_a']:.0%} of the energy)" if "energy_share_a" in m else ""))
    if m.get("warning"):
        lines.append(f"**Note:** {m['warning']}")
    return lines


def _region_figure(res):
    """Region map (A / B / both / neither) over time and frequency, with the segments on top."""
    import plotly.graph_objects as go

    m = np.asarray(res.region_map, dtype=np.float32)
    m, k = plots._pool_cols(m)  # noqa: SLF001 - shared helper
    m = np.round(m * 2) / 2  # keep the classes readable after pooling
    times = np.asarray(res.region_times)[::k][: m.shape[1]]
    scale = [[0.0, "#bbbbbb"], [0.2, "#bbbbbb"], [0.2, "#1f77b4"], [0.45, "#1f77b4"], [0.45, "#ff7f0e"],
             [0.7, "#ff7f0e"], [0.7, "#2ca02c"], [1.0, "#2ca02c"]]
    fig = go.Figure(go.Heatmap(z=m, x=times, y=np.asarray(res.region_freqs)[: m.shape[0]], zmin=-1, zmax=2,
                               colorscale=scale,
                               colorbar=dict(tickvals=[-0.6, 0.3, 1.1, 1.8], ticktext=["neither", "A", "B", "both"])))
    for seg in res.segments:
        fig.add_vline(x=float(seg["start"]), line_width=1, line_color="white", opacity=0.6)
    fig.update_layout(margin=dict(l=50, r=20, t=40, b=40), height=320, template="plotly_white",
                      title=f"Regions ({res.mask_type}): blue = A, orange = B", xaxis_title="time (s)",
                      yaxis_title="Hz" if res.params.get("codec") == "builtin" else "latent channel")
    return fig
