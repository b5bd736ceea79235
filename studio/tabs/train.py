"""Train tab: pick a trainer, a dataset folder (or render a corpus), the main hyper-parameters and
the number of processes; Start runs `launch.py train <model> ...` as a subprocess (torchrun when more
than one process); the log tail and loss curves update live from ``<out_dir>/progress.jsonl``; Stop
sends SIGTERM (the solver checkpoints and exits); exported checkpoints can be used in the engine tabs.

Training runs programs and reads and writes server folders, so it is for the studio's owner only
(:mod:`studio.policy`): where the policy is off (a Space, ``--share``, a public address,
``AUDIO_STUDIO_ALLOW_TRAINING=0``) the tab shows why, and every one of its events refuses on the
server. Where it is on, :func:`studio.training.prepare_run` confines folders and bounds numbers.
"""
import shlex
import time

from studio import training
from studio.common import guard, model_choices, session_of
from studio.policy import current as current_policy

TITLE = "Train"

_HELP = {
    "--epochs": f"--epochs: passes over the dataset (1..{training.MAX_EPOCHS}; empty or 0: the trainer's default)",
    "--max_steps": f"--max_steps: stop after this many optimiser steps (at most {training.MAX_STEPS}; empty or 0: "
                   f"no limit)",
    "--batch_size": f"--batch_size: examples per step (per process, 1..{training.MAX_BATCH})",
    "--threads": "--threads: torch CPU threads per process (1..the CPU count)",
    "--ckpt_every": "--ckpt_every: write a resumable checkpoint every N steps",
}


def _default_out(model: str) -> str:
    return str(training.runs_root() / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")


def _roots(roots) -> str:
    return ", ".join(f"`{r}`" for r in roots)


def off_message(pol) -> str:
    """Why training is off here and how its owner turns it on (Markdown)."""
    return (f"**Training is turned off on this studio:** {pol.reason}. A training run executes programs and reads "
            "and writes folders on the server, so only the studio's owner may start one. To train, run the studio "
            "on your own machine (`python launch.py`, bound to 127.0.0.1, without `--share`); the owner of this "
            "server can also set `AUDIO_STUDIO_ALLOW_TRAINING=1` and restart it (runs are then confined to "
            "`AUDIO_STUDIO_RUNS` and datasets to `AUDIO_STUDIO_DATA`).")


def build(ctx) -> None:
    import gradio as gr

    manager = ctx.engines.get("train-manager", training.TrainManager)
    trainers = training.available_trainers()
    if not trainers:
        gr.Markdown("No trainer is in this checkout yet.")
        return
    allowed = current_policy(ctx).training
    first = next(iter(trainers))
    spec0 = training.trainer_spec(first)
    has_corpus = training.corpus_spec() is not None

    def require_owner():
        """Every event of this tab starts here: the server refuses when the policy is off."""
        current_policy(ctx).require_owner("Training")

    gr.Markdown(off_message(current_policy(ctx)), visible=not allowed, elem_id="train-off")
    # the controls: not shown where the policy is off (and every event below refuses on the server)
    with gr.Column(visible=allowed, elem_id="train-panel"):
        if allowed:
            try:
                where = (f" Output folders lie under {_roots(training.runs_roots())} (a plain name is a folder there); "
                         f"dataset folders under {_roots(training.data_roots())}; at most "
                         f"{training.max_train_jobs()} run(s) at a time.")
            except ValueError as err:  # a misconfigured root: say so, every Start refuses with the same words
                where = f" **{err}**"
        else:
            where = ""
        gr.Markdown("Train a model on your own folder or on a freshly rendered corpus. The run writes "
                    "checkpoints, `progress.jsonl`, `train.log` and MLflow runs to its output folder; "
                    "Start again on the same folder resumes." + where)
        with gr.Row():
            model = gr.Dropdown(choices=[(f"{k}: {v}", k) for k, v in trainers.items()], value=first,
                                label="Trainer", info="launch.py train <model>", scale=2, elem_id="train-model")
            nproc = gr.Slider(1, max(2, training.cpu_count()), value=1, step=1, label="Processes",
                              info="more than 1 runs torch.distributed.run --standalone --nproc_per_node N (DDP, gloo)")
        with gr.Row():
            data = gr.Textbox(label="Dataset folder", placeholder="a folder under AUDIO_STUDIO_DATA (or the corpus "
                              "folder to render)", info=_data_info(spec0), scale=3, elem_id="train-data")
            render = gr.Checkbox(value=False, label="Render a corpus into this folder first",
                                 info="runs `launch.py corpus --out FOLDER --kinds <the trainer's kind>`, then "
                                      "trains on FOLDER/<kind>" if has_corpus
                                 else "the corpus renderer is not in this checkout",
                                 interactive=has_corpus)
            corpus_minutes = gr.Number(value=10, label="corpus minutes",
                                       info=f"--minutes of audio to render (at most {training.MAX_CORPUS_MINUTES:g})",
                                       interactive=has_corpus)
        with gr.Accordion("Hyper-parameters", open=True):
            with gr.Row():
                epochs = gr.Number(value=spec0.defaults.get("--epochs"), precision=0, label="epochs",
                                   info=_HELP["--epochs"])
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
                               info="any other flag of the trainer (see `python launch.py train <model> --help`); "
                                    "paths must lie under the data or runs folders",
                               elem_id="train-extra")
        out_dir = gr.Textbox(value=_default_out(first) if allowed else "", label="Output folder",
                             info="--out_dir: a folder under AUDIO_STUDIO_RUNS, or a plain name for one there",
                             elem_id="train-out")
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
        with gr.Row():
            reg_name = gr.Textbox(label="Register as", placeholder="a model name, e.g. my-vocals", scale=3,
                                  info="copies the exported model into the registry (AUDIO_STUDIO_MODELS) under this "
                                       "name: every tab's picker and the Models tab list it, also after a restart",
                                  elem_id="train-reg-name")
            register = gr.Button("Register in the model registry", scale=1, elem_id="train-register")
        use_msg = gr.Markdown(elem_id="train-use-msg")
        job_id = gr.State(None)
        timer = gr.Timer(1.0, active=False)

    @guard
    def on_model(name):
        require_owner()
        if name not in trainers:
            raise gr.Error(f"There is no trainer '{name}' in this checkout.")
        spec = training.trainer_spec(name)
        return gr.update(info=_data_info(spec)), gr.update(info=spec.lr_flag or "(no learning-rate flag)")

    # A pick resets the form to the trainer's defaults in the page itself (form_reset_js: no round trip, so a value
    # typed right after the pick is never overwritten by a late answer); the server only updates the help texts
    # (their values untouched). .input (a visitor's pick), not .change: reattaching after a reload sets the trainer
    # without resetting the form.
    form = [epochs, max_steps, batch, lr, ckpt_every, out_dir]
    model.input(None, [model, *form], form, js=form_reset_js(trainers if allowed else {}), api_visibility="private")
    model.input(on_model, model, [data, lr], api_visibility="private")

    @guard
    def on_start(name, n, data_dir, do_render, minutes, ep, ms, bs, lr_v, th, ck, extra_args, out, current):
        require_owner()
        running = manager.get(current)
        if running is not None and running.running():
            raise gr.Error("A run is already going in this tab: stop it first.")
        params = {"--epochs": ep, "--max_steps": ms, "--batch_size": bs, "lr": lr_v, "--threads": th,
                  "--ckpt_every": ck}
        commands, out_path = training.prepare_run(name, out=out, data=data_dir, render=bool(do_render),
                                                  minutes=minutes, params=params, nproc=n, extra=extra_args)
        jid = manager.start(commands, out_path, name)
        return (jid, "starting", "\n".join(shlex.join(c) for c in commands), gr.Timer(active=True))

    start.click(on_start, [model, nproc, data, render, corpus_minutes, epochs, max_steps, batch, lr, threads, ckpt_every, extra,
                           out_dir, job_id], [job_id, status, command, timer], concurrency_limit=None, api_visibility="private")

    @guard
    def on_tick(jid):
        require_owner()
        job = manager.get(jid)
        if job is None:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.Timer(active=False)
        recs = job.records()
        files = job.checkpoints()
        alive = job.running()
        return (job.status(), job.log_tail(), curve_figure(recs, title=f"{job.model}: training"),
                gr.update(choices=files, value=files[0] if files else None), gr.Timer(active=alive))

    @guard
    def on_watch(out, current):
        require_owner()
        running = manager.get(current)
        if running is not None and running.running() and isinstance(running, training.TrainJob):
            raise gr.Error("A run started here is still going: stop it first.")
        jid = manager.add(training.RunView(training.run_folder(out)))
        return (jid, *on_tick(jid))

    watch.click(on_watch, [out_dir, job_id], [job_id, status, log, curve, ckpts, timer], api_visibility="private")

    timer.tick(on_tick, job_id, [status, log, curve, ckpts, timer], show_progress="hidden", concurrency_limit=None,
               api_visibility="private")

    @guard
    def on_stop(jid):
        require_owner()
        job = manager.get(jid)
        if job is None or not job.running():
            return "nothing is running"
        job.stop()
        return "stopping (the solver writes a checkpoint, then exits)"

    stop.click(on_stop, job_id, status, concurrency_limit=None, api_visibility="private")

    pickers = [(kind, p) for kind, ps in ctx.model_pickers.items() for p in ps]

    @guard
    def on_use(path, name, request: gr.Request):
        require_owner()
        if name not in trainers:
            raise gr.Error(f"There is no trainer '{name}' in this checkout.")
        path = str(training.exported_model(path))  # a *.safetensors below a runs root
        from engines.checkpoint import read_header

        read_header(path)  # verified: a readable Audio Studio checkpoint
        kind = training.KIND_OF.get(name, name)
        session = session_of(request)
        ctx.add_checkpoint(session, kind, path)  # this browser session's pickers only
        updates = [gr.update(choices=model_choices(kind, ctx, session), value=path) if k == kind else gr.update()
                   for k, _p in pickers]
        tabs = sum(1 for k, _p in pickers if k == kind)
        msg = (f"`{path}` is now selected in the {kind} tab." if tabs else
               f"`{path}` registered for {kind} models, but no engine tab of that kind is open in this studio.")
        return [msg, *updates]

    use.click(on_use, [ckpts, model], [use_msg, *[p for _k, p in pickers]], api_visibility="private")

    @guard
    def on_register(path, name, new_name, request: gr.Request):
        require_owner()
        if name not in trainers:
            raise gr.Error(f"There is no trainer '{name}' in this checkout.")
        kind = training.KIND_OF.get(name, name)
        entry = training.register_model(path, kind, new_name)
        session = session_of(request)
        updates = [gr.update(choices=model_choices(k, ctx, session), value=entry["name"]) if k == kind else gr.update()
                   for k, _p in pickers]
        return [f"Registered `{entry['name']}` ({kind}, {entry['file']}): it is selected in the {kind} tab and listed "
                f"in the Models tab.", *updates]

    register.click(on_register, [ckpts, model, reg_name], [use_msg, *[p for _k, p in pickers]],
                   api_visibility="private")

    def on_load():
        """After a page reload (a new session): reattach to the run this studio is running, so its status, log,
        curves and Stop work again. Owner only; nothing happens where training is off."""
        keep = (gr.update(),) * 6 + (gr.Timer(active=False),)
        if not current_policy(ctx).training:
            return keep
        job_id_, job = manager.latest_running()
        if job is None:
            return keep
        return (job_id_, f"reattached to the running job: {job.status()}",
                "\n".join(shlex.join(c) for c in job.commands),
                gr.update(value=job.model) if job.model in trainers else gr.update(), str(job.out_dir),
                gr.update(), gr.Timer(active=True))

    root = gr.context.Context.root_block  # the studio's Blocks (this tab is built inside it)
    if root is not None:
        root.load(on_load, None, [job_id, status, command, model, out_dir, use_msg, timer], api_visibility="private")


def form_reset_js(trainers) -> str:
    """The browser function that resets the form to a picked trainer's defaults: ``(name, epochs, max_steps,
    batch, lr, ckpt_every, out_dir) -> the same six values``; an unknown name keeps them. The output folder is
    ``<runs root>/<trainer>-<local time>`` like :func:`_default_out`."""
    import json

    table = {}
    root = ""
    if trainers:
        root = str(training.runs_root())
        for name in trainers:
            spec = training.trainer_spec(name)
            d = spec.defaults
            table[name] = [d.get("--epochs"), d.get("--max_steps"), d.get("--batch_size"),
                           d.get(spec.lr_flag) if spec.lr_flag else None, d.get("--ckpt_every")]
    return ("(name, e, m, b, l, c, o) => { const D = " + json.dumps(table) + "; const root = " + json.dumps(root) + ";"
            " const d = D[name]; if (!d) return [e, m, b, l, c, o];"
            " const t = new Date(); const p = (v) => String(v).padStart(2, '0');"
            " const stamp = `${t.getFullYear()}${p(t.getMonth() + 1)}${p(t.getDate())}-${p(t.getHours())}"
            "${p(t.getMinutes())}${p(t.getSeconds())}`;"
            " return [...d, `${root}/${name}-${stamp}`]; }")


def _data_info(spec) -> str:
    if spec.data_flag is None:
        return "this trainer takes no dataset folder option (pass its data flags as extra arguments)"
    return f"passed as {spec.data_flag or 'the positional DATA argument'}"


def curve_figure(records, title: str = "training"):
    """Live curves from ``progress.jsonl``: the per-step train loss, the per-epoch train loss and every
    validation figure the trainer reports (``val_*``: a loss on the left axis, metrics such as SI-SDRi on
    a right axis)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    steps = [r for r in records if r.get("event") == "train" and r.get("loss") is not None]
    if steps:
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["loss"] for r in steps], mode="lines",
                                 name="train loss (step)"))
    epochs = [r for r in records if r.get("event") == "epoch"]
    keys = ["train_loss"] + sorted({k for r in epochs for k, v in r.items() if k.startswith("val_")
                                    and isinstance(v, (int, float)) and not isinstance(v, bool) and k != "val_n"})
    right = False
    for key in keys:
        pts = [(r["step"], r[key]) for r in epochs if isinstance(r.get(key), (int, float))]
        if not pts:
            continue
        is_loss = "loss" in key
        right = right or not is_loss
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                 name=key.replace("_", " ") + " (epoch)", yaxis="y" if is_loss else "y2"))
    layout = dict(margin=dict(l=50, r=50, t=40, b=40), height=300, template="plotly_white", title=title,
                  xaxis_title="step", yaxis_title="loss", legend=dict(orientation="h", y=-0.25))
    if right:
        layout["yaxis2"] = dict(title="validation metric", overlaying="y", side="right", showgrid=False)
    fig.update_layout(**layout)
    return fig
