"""Fuse tab (A/B fusion): song A + song B -> one arrangement. Calls ``engines.fusion.api`` only.

The mask-type picker shows only the parameters that type uses; direct (no network) or learned (the
cascade transformer); tempo/key/loudness matching switches; A, B and fusion players; a map of which
source holds which region over time and frequency.
"""
import json

import gradio as gr
import numpy as np

from studio import plots
from engines.atomic import OutputStage
from engines.audio import io
from studio.common import check_model, guard, load_audio, model_picker, progress_callback, session_of

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
}


def _api():
    from engines.fusion import api

    return api


def build(ctx) -> None:
    api = _api()
    from engines.fusion.masking import DESCRIPTIONS, MASK_TYPES

    with gr.Row():
        a_in = gr.Audio(label="Song A (leads: its tempo, length and bars)", type="filepath",
                        sources=["upload", "microphone"], elem_id="fuse-a")
        b_in = gr.Audio(label="Song B", type="filepath", sources=["upload", "microphone"], elem_id="fuse-b")
    with gr.Row():
        with gr.Column():
            mask_type = gr.Radio(list(MASK_TYPES), value="temporal", label="mask type",
                                 info="--mask_type: " + DESCRIPTIONS["temporal"], elem_id="fuse-mask-type")
            mode = gr.Radio(["direct", "learned"], value="direct", label="mode",
                            info="--mode: direct = masked sum, no network; learned = the cascade transformer")
            model = model_picker(KIND, ctx, visible=False, label="model",
                                 info="--model / --checkpoint (learned mode): a registered model")
        with gr.Column():
            with gr.Row():
                match_tempo = gr.Checkbox(value=True, label="match tempo", info="B stretched to A's tempo, bars aligned")
                match_key = gr.Checkbox(value=False, label="match key", info="B pitch-shifted to a compatible key")
                match_loud = gr.Checkbox(value=True, label="match loudness", info="B's LUFS matched to A's")
            crossfade = gr.Slider(0, 200, value=20, step=5, label="crossfade_ms",
                                  info="--crossfade_ms: crossfade at segment edges (0 = hard switches)")
    with gr.Group(visible=True) as seg_group:
        with gr.Row():
            seg_unit = gr.Radio(["bars", "beats", "frames"], value="bars", label="segment_unit",
                                info="--segment_unit: segments follow A's bars or beats, or fixed frames")
            seg_len = gr.Slider(1, 16, value=1, step=1, label="segment_length",
                                info="--segment_length: bars or beats per segment")
            seg_frames = gr.Slider(10, 600, value=150, step=10, label="mask_temporal_segment",
                                   info="--mask_temporal_segment: frames per segment (segment_unit frames)")
    with gr.Group(visible=False) as freq_group:
        freq_split = gr.Slider(0.05, 0.95, value=0.3, step=0.05, label="mask_freq_split",
                               info="--mask_freq_split: share of the band given to A (low part)")
    with gr.Group(visible=False) as chan_group:
        with gr.Row():
            chan_keep = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="mask_channel_keep",
                                  info="--mask_channel_keep: share of channels given to A (random)")
            seed = gr.Number(value=0, precision=0, label="seed", info="--seed: which random channels")
    with gr.Group(visible=False) as energy_group:
        with gr.Row():
            energy_thr = gr.Slider(0.05, 0.95, value=0.7, step=0.05, label="mask_energy_threshold",
                                   info="--mask_energy_threshold: energy percentile; frames above go to A")
            energy_smooth = gr.Slider(0, 1000, value=100, step=10, label="energy_smoothing_ms",
                                      info="--energy_smoothing_ms: moving average before the threshold")
    run = gr.Button("Fuse", variant="primary", elem_id="fuse-run")
    summary = gr.Markdown(elem_id="fuse-summary")
    with gr.Row():
        a_out = gr.Audio(label="A (as fused)", type="filepath", interactive=False, elem_id="fuse-a-out")
        b_out = gr.Audio(label="B (aligned to A)", type="filepath", interactive=False, elem_id="fuse-b-out")
        f_out = gr.Audio(label="Fusion", type="filepath", interactive=False, elem_id="fuse-out")
    regions = gr.Plot(label="Which source holds which region", elem_id="fuse-regions")
    mel = gr.Plot(label="Spectrograms", elem_id="fuse-mel")
    files = gr.File(label="Downloads (fusion.wav, fusion.json)", file_count="multiple", interactive=False,
                    elem_id="fuse-files")

    def on_type(t):
        uses = USES.get(t, set())
        return (gr.update(info="--mask_type: " + DESCRIPTIONS.get(t, "")),
                gr.update(visible="segments" in uses), gr.update(visible="freq" in uses),
                gr.update(visible="channels" in uses), gr.update(visible="energy" in uses))

    mask_type.change(on_type, mask_type, [mask_type, seg_group, freq_group, chan_group, energy_group], api_visibility="private")
    mode.change(lambda m: gr.update(visible=m == "learned"), mode, model, api_visibility="private")

    @guard
    def on_run(a_path, b_path, mtype, md, model_name, mt, mk, ml, xfade, unit, length, frames, fsplit, keep, sd,
               ethr, esmooth, request: gr.Request, progress=gr.Progress()):
        session = session_of(request)
        picked = check_model(KIND, model_name, ctx, session) if md == "learned" else None
        a = load_audio(a_path, "Song A", ctx)
        b = load_audio(b_path, "Song B", ctx)
        own = picked is not None and ctx.owns_checkpoint(session, KIND, picked)
        progress(0.0, desc="loading the codec" + (" and model" if md == "learned" else ""))
        engine = ctx.engines.get(("fusion", picked), lambda: api.FusionEngine(model=picked),
                                 session=session if own else None)
        if md == "learned":
            engine.load_model()
        res = engine.fuse((a[0], a[1]), (b[0], b[1]), mask_type=mtype, mode=md, segment_unit=unit,
                          segment_length=int(length), mask_temporal_segment=int(frames), mask_freq_split=float(fsplit),
                          mask_channel_keep=float(keep), mask_energy_threshold=float(ethr),
                          match_tempo=bool(mt), match_key=bool(mk), match_loudness=bool(ml),
                          crossfade_ms=float(xfade), energy_smoothing_ms=float(esmooth), seed=int(sd or 0),
                          max_seconds=ctx.max_seconds, progress=progress_callback(progress, 0.05, 0.9))
        out = ctx.job_dir(session, "fuse")
        sr = res.sample_rate
        info = res.to_json()
        stems = [(n, y) for n, y in (("fusion.wav", res.audio), ("a.wav", res.a), ("b_aligned.wav", res.b))
                 if y is not None]
        # every file of the run, all-or-nothing and never over an input
        with OutputStage(out, inputs=[a_path, b_path], names=[n for n, _ in stems] + ["fusion.json"]) as stage:
            for n, y in stems:
                io.save(stage.path(n), np.asarray(y, dtype=np.float32), int(sr), subtype="PCM_16")
            stage.write_text("fusion.json", json.dumps(info, indent=2, default=str))
        written = {n: str(p) for n, p in stage.published.items()}
        f_path, a_path2, b_path2 = written["fusion.wav"], written.get("a.wav"), written.get("b_aligned.wav")
        share = res.share()
        p = res.params
        tempo = p.get("tempo") or {}
        lines = [f"**{res.mask_type}** ({info['description']}), **{res.mode}** mode · {res.duration:.1f} s in "
                 f"{res.timings.get('total', 0):.2f} s",
                 "**Share of the grid:** " + ", ".join(f"{k} {v:.0%}" for k, v in share.items() if v)]
        if tempo:
            lines.append(f"**Tempo:** A {tempo.get('a_bpm')} BPM, B {tempo.get('b_bpm')} BPM, stretch {tempo.get('rate')}")
        if p.get("key"):
            lines.append(f"**Key:** {p['key']}")
        fig = _region_figure(res)
        mel_fig = plots.mel_figure([(n, y, sr) for n, y in (("A", res.a), ("B (aligned)", res.b), ("Fusion", res.audio))
                                    if y is not None], title="Mel spectrograms (dB)")
        return ("\n\n".join(lines), a_path2, b_path2, f_path, fig, mel_fig, [f_path, written["fusion.json"]])

    run.click(on_run, [a_in, b_in, mask_type, mode, model, match_tempo, match_key, match_loud, crossfade, seg_unit,
                       seg_len, seg_frames, freq_split, chan_keep, seed, energy_thr, energy_smooth],
              [summary, a_out, b_out, f_out, regions, mel, files], api_name="fuse")


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
