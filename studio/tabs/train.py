"""Train tab: pick a trainer, a dataset folder (or render a corpus), the main hyper-parameters and
the number of processes; Start runs `launch.py train <model> ...` as a subprocess (torchrun when more
than one process); the log tail and loss curves update live from ``<out_dir>/progress.jsonl``; Stop
sends SIGTERM (the solver checkpoints and exits); exported checkpoints can be used in the engine tabs.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from studio.common import guard, model_choices
from studio import plots, training

TITLE = "Train"

_HELP = {
    "--epochs": "--epochs: passes over the dataset",
    "--max_steps": "--max_steps: stop after this many optimiser steps (empty: no limit)",
    "--batch_size": "--batch_size: examples per step (per process)",
    "--threads": "--threads: torch CPU threads per process",
    "--ckpt_every": "--ckpt_every: write a resumable checkpoint every N steps",
}


def _default_out(model: str) -> str:
    return str(training.runs_root() / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")


def build(ctx) -> None:
    import gradio as gr

    manager = ctx.engines.get("train-manager", training.TrainManager)
    trainers = training.available_trainers()
    if not trainers:
        gr.Markdown("No trainer is in this checkout yet.")
        return
    first = next(iter(trainers))
    spec0 = training.trainer_spec(first)
    has_corpus = training.corpus_spec() is not None

    gr.Markdown("Train a model on your own folder or on a freshly rendered corpus. The run writes "
                "checkpoints, `progress.jsonl`, `train.log` and MLflow runs to its output folder; "
                "Start again on the same folder resumes.")
    with gr.Row():
        model = gr.Dropdown(choices=[(f"{k}: {v}", k) for k, v in trainers.items()], value=first,
                            label="Trainer", info="launch.py train <model>", scale=2, elem_id="train-model")
        nproc = gr.Slider(1, max(2, os.cpu_count() or 1), value=1, step=1, label="Processes",
                          info="more than 1 runs torch.distributed.run --standalone --nproc_per_node N (DDP, gloo)")
    with gr.Row():
        data = gr.Textbox(label="Dataset folder", placeholder="/path/to/data (or the corpus folder to render)",
                          info=_data_info(spec0), scale=3, elem_id="train-data")
        render = gr.Checkbox(value=False, label="Render a corpus into this folder first",
                             info="runs `launch.py corpus --out FOLDER --kinds <the trainer's kind>`, then trains "
                                  "on FOLDER/<kind>" if has_corpus else "the corpus renderer is not in this checkout",
                             interactive=has_corpus)
        corpus_minutes = gr.Number(value=10, label="corpus minutes", info="--minutes of audio to render",
                                   interactive=has_corpus)
    with gr.Accordion("Hyper-parameters", open=True):
        with gr.Row():
            epochs = gr.Number(value=spec0.defaults.get("--epochs"), precision=0, label="epochs", info=_HELP["--epochs"])
            max_steps = gr.Number(value=spec0.defaults.get("--max_steps"), precision=0, label="max steps",
                                  info=_HELP["--max_steps"], elem_id="train-max-steps")
            batch = gr.Number(value=spec0.defaults.get("--batch_size"), precision=0, label="batch size",
                              info=_HELP["--batch_size"], elem_id="train-batch")
        with gr.Row():
            lr = gr.Number(value=spec0.defaults.get(spec0.lr_flag or ""), label="learning rate",
                           info=f"{spec0.lr_flag or '(no learning-rate flag)'}")
            threads = gr.Number(value=1, precision=0, label="threads", info=_HELP["--threads"])
            ckpt_every = gr.Number(value=spec0.defaults.get("--ckpt_every"), precision=0, label="checkpoint every",
                                   info=_HELP["--ckpt_every"])
        extra = gr.Textbox(label="Extra arguments", placeholder="--flag value ...",
                           info="any other flag of the trainer (see `python launch.py train <model> --help`)",
                           elem_id="train-extra")
    out_dir = gr.Textbox(value=_default_out(first), label="Output folder", info="--out_dir", elem_id="train-out")
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        watch = gr.Button("Watch the output folder", elem_id="train-watch")  # a run started elsewhere
    status = gr.Textbox(label="Status", interactive=False, elem_id="train-status")
    command = gr.Code(label="Command", language="shell", interactive=False, elem_id="train-command")
    with gr.Row():
        log = gr.Textbox(label="Log (tail)", lines=14, max_lines=14, autoscroll=True, interactive=False, scale=1,
                         elem_id="train-log")
        curve = gr.Plot(label="Loss", scale=1, elem_id="train-curve")
    with gr.Row():
        ckpts = gr.Dropdown(choices=[], label="Checkpoints in the output folder", scale=3,
                            info="*.safetensors are exported models; checkpoint.pt is the resumable state",
                            elem_id="train-ckpts")
        use = gr.Button("Use in the engine tabs", scale=1, elem_id="train-use")
    use_msg = gr.Markdown(elem_id="train-use-msg")
    job_id = gr.State(None)
    timer = gr.Timer(1.0, active=False)

    def on_model(name):
        spec = training.trainer_spec(name)
        d = spec.defaults
        return (gr.update(info=_data_info(spec)), d.get("--epochs"), d.get("--max_steps"), d.get("--batch_size"),
                gr.update(value=d.get(spec.lr_flag or ""), info=spec.lr_flag or "(no learning-rate flag)"),
                d.get("--ckpt_every"), _default_out(name))

    model.change(on_model, model, [data, epochs, max_steps, batch, lr, ckpt_every, out_dir], api_visibility="private")

    @guard
    def on_start(name, n, data_dir, do_render, minutes, ep, ms, bs, lr_v, th, ck, extra_args, out, current):
        running = manager.get(current)
        if running is not None and running.running():
            raise gr.Error("A run is already going in this tab: stop it first.")
        if not out:
            raise gr.Error("Choose an output folder.")
        data_dir = (data_dir or "").strip() or None
        commands = []
        if do_render:
            if not data_dir:
                raise gr.Error("Give the folder the corpus should be rendered into.")
            kind = training.CORPUS_KIND.get(name, name)
            commands.append(training.corpus_command(data_dir, kind, minutes))
            data_dir = str(Path(data_dir) / kind)
        elif data_dir and not Path(data_dir).exists():
            raise gr.Error(f"The dataset folder '{data_dir}' does not exist.")
        try:
            shlex.split(extra_args or "")
        except ValueError as err:
            raise gr.Error(f"The extra arguments cannot be parsed: {err}.") from None
        params = {"--epochs": ep, "--max_steps": ms, "--batch_size": bs, "lr": lr_v, "--threads": th,
                  "--ckpt_every": ck}
        commands.append(training.build_command(name, out_dir=out, data=data_dir, params=params,
                                               nproc=int(n), extra=extra_args))
        job = training.TrainJob(commands, out, name)
        jid = manager.add(job)
        return (jid, "starting", "\n".join(shlex.join(c) for c in commands), gr.Timer(active=True))

    start.click(on_start, [model, nproc, data, render, corpus_minutes, epochs, max_steps, batch, lr, threads, ckpt_every, extra,
                           out_dir, job_id], [job_id, status, command, timer], concurrency_limit=None, api_visibility="private")

    def on_tick(jid):
        job = manager.get(jid)
        if job is None:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.Timer(active=False)
        recs = job.records()
        files = job.checkpoints()
        alive = job.running()
        return (job.status(), job.log_tail(), plots.loss_figure(recs, title=f"{job.model}: loss"),
                gr.update(choices=files, value=files[0] if files else None), gr.Timer(active=alive))

    @guard
    def on_watch(out, current):
        running = manager.get(current)
        if running is not None and running.running() and isinstance(running, training.TrainJob):
            raise gr.Error("A run started here is still going: stop it first.")
        jid = manager.add(training.RunView(out))
        return (jid, *on_tick(jid))

    watch.click(on_watch, [out_dir, job_id], [job_id, status, log, curve, ckpts, timer], api_visibility="private")

    timer.tick(on_tick, job_id, [status, log, curve, ckpts, timer], show_progress="hidden", concurrency_limit=None,
               api_visibility="private")

    @guard
    def on_stop(jid):
        job = manager.get(jid)
        if job is None or not job.running():
            return "nothing is running"
        job.stop()
        return "stopping (the solver writes a checkpoint, then exits)"

    stop.click(on_stop, job_id, status, concurrency_limit=None, api_visibility="private")

    pickers = [(kind, p) for kind, ps in ctx.model_pickers.items() for p in ps]

    @guard
    def on_use(path, name):
        if not path:
            raise gr.Error("No checkpoint selected: train until one is written, then pick it.")
        if Path(path).name == "checkpoint.pt":
            raise gr.Error("checkpoint.pt is the resumable training state; the engines load exported models "
                           "(*.safetensors), which the trainer writes when the run finishes.")
        from engines.checkpoint import read_header

        read_header(path)  # verified: a readable Audio Studio checkpoint
        kind = training.KIND_OF.get(name, name)
        ctx.add_checkpoint(kind, path)
        updates = [gr.update(choices=model_choices(kind, ctx), value=str(path)) if k == kind else gr.update()
                   for k, _p in pickers]
        tabs = sum(1 for k, _p in pickers if k == kind)
        msg = (f"`{path}` is now selected in the {kind} tab." if tabs else
               f"`{path}` registered for {kind} models, but no engine tab of that kind is open in this studio.")
        return [msg, *updates]

    use.click(on_use, [ckpts, model], [use_msg, *[p for _k, p in pickers]], api_visibility="private")


def _data_info(spec) -> str:
    if spec.data_flag is None:
        return "this trainer takes no dataset folder option (pass its data flags as extra arguments)"
    return f"passed as {spec.data_flag or 'the positional DATA argument'}"
