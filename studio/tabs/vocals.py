"""Vocals tab: one or several songs -> vocals + accompaniment, with the registry's models or an
uploaded checkpoint. The option widgets come from ``engines.vocals.Config`` (their defaults are the CLI's);
each song goes through ``Engine.run`` and is written by ``VocalsResult.save``."""
import json
from pathlib import Path

import gradio as gr
import numpy as np

from studio import examples, plots
from studio.stem_player import stem_player
from studio import widgets as W
from engines.atomic import safe_name
from studio.common import (check_model, check_uploaded, crop_region, estimate_controls, estimator, guard,
                           load_audio, model_picker, output_choice, output_panel, progress_callback, run_engine,
                           session_of, zip_files)

TITLE = "Vocals"
KIND = "vocals"
#: the Config options this tab shows (chunk_seconds and threads stay server settings)
OPTIONS = ("binary_mask", "sharpen", "stems")


def _api():
    from engines.vocals import api

    return api


def build(ctx) -> None:
    from engines.vocals import Config

    api = _api()
    with gr.Row():
        songs = gr.File(label="Song(s): one or several audio files", file_count="multiple", file_types=["audio"],
                        elem_id="voc-songs", scale=2)
        with gr.Column(scale=1):
            opts = W.widgets(Config, OPTIONS, binary_mask={"elem_id": "voc-binary"},
                             sharpen={"elem_id": "voc-sharpen"}, stems={"elem_id": "voc-stems"})
            W.preset_picker(Config, opts, elem_id="voc-preset")
            model = model_picker(KIND, ctx, label="Model", info="--model: a registered model")
            ckpt = gr.File(label="...or upload a checkpoint (--checkpoint, .safetensors)", file_types=[".safetensors"],
                           elem_id="voc-ckpt")
            run = gr.Button("Isolate vocals", variant="primary", elem_id="voc-run")
            est, est_text = estimate_controls("voc")
    out_opts = output_panel("voc")
    examples_slot = gr.Column()
    summary = gr.Markdown(elem_id="voc-summary")
    show = gr.Dropdown(choices=[], label="Show song", elem_id="voc-show", interactive=True)
    with gr.Row():
        vocals_out = gr.Audio(label="Vocals", type="filepath", interactive=False, elem_id="voc-vocals")
        acc_out = gr.Audio(label="Accompaniment", type="filepath", interactive=False, elem_id="voc-acc")
    stem_player([("Vocals", "voc-vocals"), ("Accompaniment", "voc-acc")], elem_id="voc-stems")
    mel_plot = gr.Plot(label="Spectrograms", elem_id="voc-mel")
    mask_plot = gr.Plot(label="Vocal mask", elem_id="voc-mask")
    files = gr.File(label="Download every song's stems (zip); each player has its own download button", file_count="multiple", interactive=False,
                    elem_id="voc-files")
    results = gr.State({})

    @guard
    def on_run(paths, binary, sharp, model_name, ckpt_path, n_stems=2, out_format="wav", out_subtype="auto",
               out_bitrate=192, start=0, end=0, request: gr.Request = None, progress=gr.Progress()):
        if not paths:
            raise gr.Error("Upload at least one song.")
        if len(paths) > ctx.max_files:
            raise gr.Error(f"{len(paths)} songs in one batch; the studio takes at most {ctx.max_files} at a time "
                           f"(the command line has no such limit).", print_exception=False)
        cfg = W.to_config(Config, OPTIONS, [binary, sharp, n_stems])  # refused here, before any work
        out_values = [out_format, out_subtype, out_bitrate, start, end]
        output_choice(out_values)  # bad output options are refused before any work
        paths = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in paths]
        session = session_of(request)
        uploaded = check_uploaded(ckpt_path, "The checkpoint")
        picked = check_model(KIND, model_name, ctx, session)
        source = uploaded or picked
        # an uploaded (or this session's trained) checkpoint is this session's own engine
        own = uploaded is not None or (picked is not None and ctx.owns_checkpoint(session, KIND, picked))
        progress(0.0, desc="loading the model")
        eng = ctx.engines.get(("vocals", str(source), ctx.device), lambda: api.Engine.load(source, device=ctx.device),
                              session=session if own else None)
        out = ctx.job_dir(session, "vocals")
        done: dict[str, dict] = {}
        failed: list[tuple[str, str]] = []
        stems: list[str] = []
        for i, p in enumerate(paths):
            name = _unique(safe_name(Path(p).stem, "song"), done)
            sub = progress_callback(progress, i / len(paths), (i + 1) / len(paths))
            try:
                fmt, region = output_choice(out_values, like=p)  # each song's own rate, channels and depth
                audio, sr = crop_region(load_audio(p, "The song", ctx), region, "The song")
                res = run_engine(eng, (audio, sr), cfg, progress=lambda f, m, n=name: sub(f, f"{n}: {m}"))
            except (gr.Error, ValueError) as err:
                failed.append((Path(p).name, str(err) or type(err).__name__))
                continue
            d = out / name
            info = json.dumps({"mask_frame_rate": res.mask_frame_rate, "input": Path(p).name, "model": res.model_name,
                               "binary": res.binary_mask, "model_sr": eng.hp.sample_rate,
                               "duration_s": res.duration_s, "elapsed_s": res.elapsed_s})
            # the stems and the studio's own files, published together and never over an input
            saved = res.save(d, inputs=[p], fmt=fmt, extra={
                "mask.npy": lambda f, m=np.asarray(res.mask): np.save(f, m, allow_pickle=False),
                "info.json": lambda f, t=info: f.write_text(t), **_four_stem_extras(res)})
            done[name] = {"vocals": str(saved["vocals"]),
                          "accompaniment": str(saved.get("accompaniment") or saved["accompaniment.wav"]),
                          "mixture": str(p), "dir": str(d), "rtf": res.rtf, "duration_s": res.duration_s,
                          "model": res.model_name, "binary": res.binary_mask}
            stems += [str(saved[k]) for k in res.audio]  # vocals + accompaniment, or the four stems
        if not done:
            raise gr.Error("No song could be processed: " + "; ".join(f"{n}: {e}" for n, e in failed))
        zipped = zip_files(stems, out / "stems.zip", root=out)
        lines = [f"**{len(done)} song(s) done** with model `{next(iter(done.values()))['model']}` "
                 f"({'binary' if next(iter(done.values()))['binary'] else 'soft'} mask)."]
        lines += [f"- {n}: {r['duration_s']:.1f} s in {r['rtf'] * r['duration_s']:.2f} s (RTF {r['rtf']:.3f})"
                  for n, r in done.items()]
        lines += [f"- ⚠ {n}: {e}" for n, e in failed]
        first = next(iter(done))
        return (done, "\n".join(lines), gr.update(choices=list(done), value=first), *_view(done[first]),
                [zipped])

    run_inputs = [songs, opts["binary_mask"], opts["sharpen"], model, ckpt, opts["stems"], *out_opts]
    run_outputs = [results, summary, show, vocals_out, acc_out, mel_plot, mask_plot, files]
    run.click(on_run, run_inputs, run_outputs, api_name="vocals")
    est.click(estimator(on_run), run_inputs, est_text, api_visibility="private")
    with examples_slot:
        examples.attach("vocals", [songs], on_run, run_inputs, run_outputs)

    def on_show(state, name):
        if not state or name not in state:
            return gr.update(), gr.update(), gr.update(), gr.update()
        return _view(state[name])

    show.input(on_show, [results, show], [vocals_out, acc_out, mel_plot, mask_plot], api_visibility="private")


def _four_stem_extras(res) -> dict:
    """With four stems, the accompaniment (drums + bass + other) for the player, written with the stems."""
    if "accompaniment" in res.audio:
        return {}
    from engines.audio import io

    return {"accompaniment.wav": lambda f, a=res.accompaniment, sr=res.sample_rate: io.save(f, a, sr, "FLOAT")}


def _unique(name: str, used: dict) -> str:
    out, k = name, 1
    while out in used:
        k += 1
        out = f"{name}_{k}"
    return out


def _view(r: dict):
    """Players and plots of one processed song (read back from its output folder)."""
    from engines.audio import io

    d = Path(r["dir"])
    voc, sr = io.load(r["vocals"])
    acc, _ = io.load(r["accompaniment"])
    mix = voc + acc
    mel = plots.mel_figure([("Mixture", mix, sr), ("Vocals", voc, sr), ("Accompaniment", acc, sr)],
                           title="Mel spectrograms (dB)")
    mask = np.load(d / "mask.npy", allow_pickle=False)
    info = json.loads((d / "info.json").read_text())
    rate = float(info["mask_frame_rate"])
    n_bins = mask.shape[0]
    fig = plots.heatmap_figure(mask, times=np.arange(mask.shape[1]) / rate,
                               freqs=np.linspace(0, info.get("model_sr", 22050) / 2, n_bins), title="Vocal mask (channel mean)")
    return r["vocals"], r["accompaniment"], mel, fig
