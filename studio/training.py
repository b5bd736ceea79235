"""Training jobs for the Train tab: build the `launch.py train ...` command from a trainer's own
flags, run it as a subprocess (torchrun when more than one process), tail its log and its
``progress.jsonl``, stop it with SIGTERM (the solver checkpoints and exits), list checkpoints.

Every input of the tab is checked here before anything runs (:func:`prepare_run`): output folders
only under ``AUDIO_STUDIO_RUNS``, dataset folders only under ``AUDIO_STUDIO_DATA`` (both
``os.pathsep``-separated lists, checked after ``os.path.realpath``), extra arguments parsed against
the trainer's own flags (unknown flags, positional values and path values outside those roots
refused), bounded numbers, and at most ``AUDIO_STUDIO_MAX_TRAIN_JOBS`` runs at a time.

No UI code here, so it is testable without a browser.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch.py"
#: trainer -> registry kind of the model it exports
KIND_OF = {"query": "query", "vocals": "vocals", "fusion": "fusion", "timbre": "timbre"}
#: trainer -> the corpus kind (subfolder of `launch.py corpus --out DIR`) it trains on
CORPUS_KIND = {"query": "clips", "vocals": "songs", "fusion": "fusion", "timbre": "timbre"}
#: option names that hold the training data, in the order they are looked for
DATA_FLAGS = ("--data", "--dataset_folder", "--dataset", "--data_dir", "--corpus", "--root")
LR_FLAGS = ("--lr", "--learning_rate", "--fix_learning_rate")
#: the main hyper-parameters the tab shows (when the trainer has the flag)
PROGRESS = "progress.jsonl"
MAIN_FLAGS = ("--epochs", "--max_steps", "--batch_size", "--threads", "--ckpt_every", "--log_every")


#: the bounds of the numbers the tab passes (the processes/threads/workers bounds are the CPU count)
MAX_EPOCHS = 1000
MAX_STEPS = 1_000_000
MAX_BATCH = 256
MAX_LR = 10.0
MAX_CORPUS_MINUTES = 120.0
#: any other integer flag of a trainer (in the extra arguments) lies in 0..MAX_INT_OPTION
MAX_INT_OPTION = 10_000_000
#: any other real-valued flag lies in -MAX_REAL_OPTION..MAX_REAL_OPTION (and is finite)
MAX_REAL_OPTION = 1e6
#: flags the studio sets from its own fields (refused in the extra arguments)
STUDIO_FLAGS = ("--out_dir",)
#: flags whose value is a path the trainer writes (must lie under the runs roots)
OUTPUT_PATH_FLAGS = frozenset({"--export", "--out_dir", "--out", "--output", "--save", "--save_dir"})
#: flags whose value is a path the trainer reads (under the data or the runs roots)
INPUT_PATH_FLAGS = frozenset({"--data", "--extra_data", "--dataset_folder", "--dataset", "--data_dir", "--corpus",
                              "--root", "--triples", "--init", "--stats", "--codec", "--checkpoint", "--resume",
                              "--resume_from", "--soundfont", "--input_only"})
#: words of an option's dest that mark any other string option as a path (``--foo_dir``, ``--bar_file``...)
_PATH_WORDS = frozenset({"path", "dir", "folder", "file", "data", "dataset", "export", "init", "checkpoint",
                         "ckpt", "stats", "resume", "triples", "root", "codec", "corpus", "load", "save", "out",
                         "output", "soundfont"})
_OUTPUT_WORDS = frozenset({"export", "out", "output", "save"})
#: values of a path flag that name something else than a file: --codec builtin / an EnCodec hub id
_CODEC_NAMES = ("builtin", "mdct", "facebook/encodec_24khz", "facebook/encodec_48khz")
_NUMBER = re.compile(r"^-\d|^-\.\d|^-inf$|^-nan$", re.IGNORECASE)


class TrainInputError(ValueError):
    """A Train tab input the studio refuses (the message is written for people)."""


def _env_roots(var: str, default: Path) -> list[Path]:
    raw = os.environ.get(var, "")
    items = [x for x in raw.split(os.pathsep) if x.strip()] or [str(default)]
    return [Path(x).expanduser() for x in items]


def runs_roots() -> list[Path]:
    """Where training runs may write: ``AUDIO_STUDIO_RUNS`` (``os.pathsep`` list), default ``ROOT/runs/studio``."""
    return _env_roots("AUDIO_STUDIO_RUNS", ROOT / "runs" / "studio")


def runs_root() -> Path:
    """The first runs root: new runs and relative output folder names land there."""
    return runs_roots()[0]


def data_roots() -> list[Path]:
    """Where dataset folders may be (and corpora rendered): ``AUDIO_STUDIO_DATA`` (``os.pathsep`` list),
    default the ``data`` folder beside the first runs root (``ROOT/runs/data`` by default)."""
    return _env_roots("AUDIO_STUDIO_DATA", runs_root().parent / "data")


def _real_roots(roots: list[Path], var: str) -> list[str]:
    out = []
    for r in roots:
        real = os.path.realpath(r)
        if real == os.path.realpath(os.sep) or os.path.dirname(real) == real:
            raise TrainInputError(f"{var} must not be the filesystem root ('{r}'): name the folders training "
                                  f"may use.")
        out.append(real)
    return out


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def served_folders() -> list[str]:
    """Folders the studio's web server hands out (Gradio's uploads, the session outputs): never written by a run."""
    from .common import upload_folder
    from .context import outputs_root

    return [str(upload_folder()), os.path.realpath(outputs_root())]


def confine(path: str | os.PathLike | None, roots: list[Path], var: str, what: str, *,
            allow_root: bool = False) -> Path:
    """``path`` resolved (``realpath``: symlinks and ``..``) and checked to lie under one of ``roots``.

    A relative ``path`` is taken relative to the first root. ``allow_root``: the root itself is accepted
    (else only folders below it). Raises :class:`TrainInputError` naming ``what`` and ``var``.
    """
    text = str(path if path is not None else "").strip()
    if not text:
        raise TrainInputError(f"Choose {what}.")
    if "\x00" in text:
        raise TrainInputError(f"{what[0].upper()}{what[1:]} '{text!r}' is not a valid path.")
    real_roots = _real_roots(roots, var)
    p = Path(text).expanduser()
    real = os.path.realpath(p if p.is_absolute() else Path(real_roots[0]) / p)
    for root in real_roots:
        if _inside(real, root) and (allow_root or real != root):
            return Path(real)
    where = " or ".join(f"'{r}'" for r in real_roots)
    below = "" if allow_root else "a folder below "
    if real in real_roots:
        raise TrainInputError(f"{what[0].upper()}{what[1:]} '{text}' is the root {var} names itself: choose "
                              f"{below}{where}.")
    raise TrainInputError(f"{what[0].upper()}{what[1:]} '{text}' is outside the folders training may use: "
                          f"choose {below}{where} (set {var} to allow others).")


def out_folder(text: str | os.PathLike | None) -> Path:
    """The output folder of a run: a name relative to the runs root, or a path below a runs root."""
    out = confine(text, runs_roots(), "AUDIO_STUDIO_RUNS", "an output folder")
    for served in served_folders():
        if _inside(str(out), served) or _inside(served, str(out)):
            raise TrainInputError(f"The output folder '{out}' overlaps a folder this studio serves on the web "
                                  f"('{served}'): choose another folder.")
    return out


def data_folder(text: str | os.PathLike | None, *, must_exist: bool = True) -> Path:
    """A dataset folder (or the folder a corpus is rendered into) below a data root."""
    d = confine(text, data_roots(), "AUDIO_STUDIO_DATA", "a dataset folder", allow_root=True)
    if must_exist and not d.is_dir():
        raise TrainInputError(f"The dataset folder '{text}' does not exist.")
    return d


def run_folder(text: str | os.PathLike | None) -> Path:
    """A run folder to watch: below a runs root."""
    return confine(text, runs_roots(), "AUDIO_STUDIO_RUNS", "a run folder")


def exported_model(path: str | os.PathLike | None) -> Path:
    """An exported model (``*.safetensors``) of a run below a runs root, for the engine tabs."""
    if not path:
        raise TrainInputError("No checkpoint selected: train until one is written, then pick it.")
    if Path(str(path)).name == "checkpoint.pt":
        raise TrainInputError("checkpoint.pt is the resumable training state; the engines load exported models "
                              "(*.safetensors), which the trainer writes when the run finishes.")
    p = confine(path, runs_roots(), "AUDIO_STUDIO_RUNS", "a checkpoint")
    if p.suffix != ".safetensors":
        raise TrainInputError(f"'{Path(str(path)).name}' is not an exported model: only *.safetensors files of a "
                              f"run can be used in the engine tabs.")
    if not p.is_file():
        raise TrainInputError(f"The checkpoint '{path}' does not exist.")
    return p


# ------------------------------------------------------------------------------- numbers
def _number(value, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise TrainInputError(f"{what} must be a number, not {value}.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TrainInputError(f"{what} must be a number, not '{value}'.") from None
    if not math.isfinite(x):
        raise TrainInputError(f"{what} must be a finite number, not {value}.")
    return x


def whole_number(value, what: str, lo: int, hi: int) -> int | None:
    """``value`` (a field or an argument) as an int in ``lo..hi``; ``None`` when empty."""
    x = _number(value, what)
    if x is None:
        return None
    if not x.is_integer():
        raise TrainInputError(f"{what} must be a whole number, not {value}.")
    if not lo <= x <= hi:
        raise TrainInputError(f"{what} must be between {lo} and {hi}, not {int(x)}.")
    return int(x)


def real_number(value, what: str, lo: float, hi: float, *, low_open: bool = False) -> float | None:
    """``value`` as a finite float in ``lo..hi`` (``low_open``: above ``lo``); ``None`` when empty."""
    x = _number(value, what)
    if x is None:
        return None
    if x > hi or x < lo or (low_open and x == lo):
        side = f"above {lo:g}" if low_open else f"at least {lo:g}"
        raise TrainInputError(f"{what} must be {side} and at most {hi:g}, not {value}.")
    return x


def cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


def int_bounds() -> dict[str, tuple[int, int]]:
    """Flag -> (lowest, highest) value the studio passes."""
    cpus = cpu_count()
    return {"--epochs": (1, MAX_EPOCHS), "--max_steps": (1, MAX_STEPS), "--batch_size": (1, MAX_BATCH),
            "--threads": (1, cpus), "--num_workers": (0, cpus), "--workers": (1, cpus),
            "--ckpt_every": (1, MAX_STEPS), "--log_every": (1, MAX_STEPS), "--seed": (0, 2**32 - 1),
            # the flags that size an epoch (with epochs <= MAX_EPOCHS they bound a run's steps)
            "--examples_per_epoch": (1, MAX_STEPS), "--crops_per_pair": (1, 1000), "--synthetic": (0, 100_000)}


def max_train_jobs() -> int:
    """``AUDIO_STUDIO_MAX_TRAIN_JOBS``: training runs this studio may run at once (default 1)."""
    raw = os.environ.get("AUDIO_STUDIO_MAX_TRAIN_JOBS", "1")
    try:
        n = int(raw)
    except ValueError:
        raise TrainInputError(f"AUDIO_STUDIO_MAX_TRAIN_JOBS must be a whole number, not '{raw}'.") from None
    return max(1, n)


def available_trainers() -> dict[str, str]:
    """``train <model>`` names in this checkout -> one-line help."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import launch

    return {name: help_ for name, (_mod, help_) in launch.available(launch.TRAINERS).items()}


def _command_parser(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    p = argparse.ArgumentParser(add_help=False)
    module.add_arguments(p)
    return p


@dataclass
class TrainerSpec:
    """What the tab needs to know about one trainer's command line."""

    name: str
    options: dict[str, argparse.Action]
    data_flag: str | None = None  # an option such as --data, or "" for a positional argument
    lr_flag: str | None = None
    defaults: dict[str, object] = field(default_factory=dict)

    def has(self, flag: str) -> bool:
        return flag in self.options


def trainer_spec(name: str) -> TrainerSpec:
    import launch

    module, _ = launch.TRAINERS[name]
    parser = _command_parser(module)
    options: dict[str, argparse.Action] = {}
    positional = None
    for a in parser._actions:  # noqa: SLF001 - argparse has no public introspection
        for s in a.option_strings:
            options[s] = a
        if not a.option_strings and positional is None:
            positional = a
    data_flag = next((f for f in DATA_FLAGS if f in options), None)
    if data_flag is None and positional is not None:
        data_flag = ""
    lr_flag = next((f for f in LR_FLAGS if f in options), None)
    defaults = {f: options[f].default for f in (*MAIN_FLAGS, *(LR_FLAGS)) if f in options}
    return TrainerSpec(name, options, data_flag, lr_flag, defaults)


def corpus_spec() -> dict[str, str] | None:
    """How to call the `corpus` command: its output flag and kind flag (None when absent)."""
    import launch

    if "corpus" not in launch.available(launch.COMMANDS):
        return None
    p = _command_parser(launch.COMMANDS["corpus"][0])
    opts = {s: a for a in p._actions for s in a.option_strings}  # noqa: SLF001
    pos = [a for a in p._actions if not a.option_strings]  # noqa: SLF001
    out = next((f for f in ("--out", "--out_dir", "--output", "--root") if f in opts), "" if pos else None)
    kinds = next((f for f in ("--kinds", "--kind", "--only") if f in opts), None)
    return {"out": out, "kinds": kinds, "kinds_nargs": getattr(opts.get(kinds), "nargs", None) if kinds else None}


def build_command(name: str, *, out_dir: str | os.PathLike, data: str | None = None, params: dict | None = None,
                  nproc: int = 1, extra: str = "") -> list[str]:
    """The argv that trains ``name`` (``python launch.py train name ...``, via torchrun when nproc > 1)."""
    spec = trainer_spec(name)
    args: list[str] = []
    if data:
        if spec.data_flag == "":
            args.append(str(data))
        elif spec.data_flag:
            args += [spec.data_flag, str(data)]
        else:
            raise ValueError(f"The {name} trainer takes no dataset folder option; use the extra arguments.")
    args += ["--out_dir", str(out_dir)]
    for flag, value in (params or {}).items():
        if value is None or value == "":
            continue
        if flag == "lr":
            flag = spec.lr_flag
            if flag is None:
                continue
        if not spec.has(flag):
            continue
        if isinstance(value, float) and value.is_integer() and spec.options[flag].type is int:
            value = int(value)
        args += [flag, str(value)]
    extra_args = shlex.split(extra or "")
    if spec.has("--export") and not any(a == "--export" or a.startswith("--export=") for a in extra_args):
        args += ["--export", str(Path(out_dir) / f"{name}.safetensors")]  # the engines load exported models
    args += extra_args
    if nproc > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
                str(LAUNCH)]
    else:
        head = [sys.executable, str(LAUNCH)]
    return head + ["train", name] + args


def corpus_command(out: str | os.PathLike, kind: str | None = None, minutes: float | None = None) -> list[str]:
    """``launch.py corpus --out OUT [--kinds KIND] [--minutes M]``; the kind lands in ``OUT/KIND``."""
    spec = corpus_spec()
    if spec is None:
        raise ValueError("The corpus renderer (`launch.py corpus`) is not in this checkout.")
    cmd = [sys.executable, str(LAUNCH), "corpus"]
    cmd += [str(out)] if spec["out"] == "" else [spec["out"], str(out)]
    if kind and spec["kinds"]:
        cmd += [spec["kinds"], kind]
    if minutes:
        cmd += ["--minutes", f"{float(minutes):g}"]
    return cmd


# ------------------------------------------------------------------------- extra arguments
def _is_flag(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _NUMBER.match(token)


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _path_role(flag: str, action: argparse.Action) -> str | None:
    """``"output"``, ``"input"`` or ``None`` (not a path) for a flag that takes a value."""
    if action.type in (int, float) or action.choices is not None:
        return None
    if flag in OUTPUT_PATH_FLAGS:
        return "output"
    if flag in INPUT_PATH_FLAGS:
        return "input"
    words = set(str(action.dest).lower().split("_"))
    if words & _PATH_WORDS:
        return "output" if words & _OUTPUT_WORDS else "input"
    return None


def _named_value(trainer: str, flag: str, value: str) -> bool:
    """A path flag's value that names something else than a file (a registry model, the builtin codec)."""
    if flag == "--codec":
        return value.lower() in _CODEC_NAMES
    if flag == "--init" and os.sep not in value and not value.endswith(".safetensors"):
        try:
            from engines import registry

            return value in {e["name"] for e in registry.entries(KIND_OF.get(trainer, trainer))}
        except Exception:  # noqa: BLE001 - no registry: not a name
            return False
    return False


def _check_value(trainer: str, flag: str, action: argparse.Action, value: str) -> str:
    """One value of an extra flag, checked (numbers bounded, paths confined); paths come back absolute."""
    if action.type is int:
        lo, hi = int_bounds().get(flag, (0, MAX_INT_OPTION))
        return str(whole_number(value, flag, lo, hi))
    if action.type is float:
        if flag in LR_FLAGS:
            return repr(real_number(value, flag, 0.0, MAX_LR, low_open=True))
        return repr(real_number(value, flag, -MAX_REAL_OPTION, MAX_REAL_OPTION))
    role = _path_role(flag, action)
    if role is None or _named_value(trainer, flag, value):
        return value
    if role == "output":
        return str(out_folder(value) if flag == "--out_dir" else confine(value, runs_roots(), "AUDIO_STUDIO_RUNS",
                                                                         f"the {flag} path"))
    try:  # inputs: a dataset (data roots) or a model / statistics of an earlier run (runs roots)
        return str(confine(value, data_roots(), "AUDIO_STUDIO_DATA", f"the {flag} path", allow_root=True))
    except TrainInputError:
        try:
            return str(confine(value, runs_roots(), "AUDIO_STUDIO_RUNS", f"the {flag} path"))
        except TrainInputError:
            pass
        roots = ", ".join(f"'{r}'" for r in [*data_roots(), *runs_roots()])
        raise TrainInputError(f"The {flag} path '{value}' is outside the folders training may use ({roots}; set "
                              f"AUDIO_STUDIO_DATA or AUDIO_STUDIO_RUNS to allow others).") from None


def check_extra(name: str, extra: str | None, spec: TrainerSpec | None = None) -> list[str]:
    """The "Extra arguments" text parsed against trainer ``name``'s own flags.

    Refused (:class:`TrainInputError`): text shlex cannot split, unknown (or abbreviated) flags, flags
    the studio sets itself (``--out_dir``), values without a flag, numbers out of bounds, NaN or
    infinite numbers, and path values (``--export``, ``--init``, ``--data``...) outside the data and
    runs roots. Returns the arguments with every path made absolute (the trainer runs in the checkout).
    """
    try:
        tokens = shlex.split(extra or "")
    except ValueError as err:
        raise TrainInputError(f"The extra arguments cannot be parsed: {err}.") from None
    spec = spec or trainer_spec(name)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_flag(token):
            raise TrainInputError(f"'{token}' in the extra arguments is not a --flag: give each value after its "
                                  f"flag (the dataset goes in the Dataset folder field).")
        flag, eq, inline = token.partition("=")
        action = spec.options.get(flag)
        if action is None:
            close = difflib.get_close_matches(flag, list(spec.options), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise TrainInputError(f"The {name} trainer has no flag {flag}{hint}; see `python launch.py train "
                                  f"{name} --help`.")
        if flag in STUDIO_FLAGS:
            raise TrainInputError(f"{flag} is set by the Output folder field, not in the extra arguments.")
        i += 1
        if not _takes_value(action):
            if eq:
                raise TrainInputError(f"{flag} takes no value.")
            out.append(flag)
            continue
        nargs = action.nargs
        if nargs in (argparse.REMAINDER, argparse.PARSER):
            raise TrainInputError(f"{flag} cannot be given in the extra arguments.")
        if eq:
            values = [inline]
        else:
            most = {None: 1, "?": 1}.get(nargs, nargs if isinstance(nargs, int) else len(tokens))
            values = []
            while i < len(tokens) and len(values) < most and not _is_flag(tokens[i]):
                values.append(tokens[i])
                i += 1
        least = {None: 1, "?": 0, "*": 0, "+": 1}.get(nargs, nargs if isinstance(nargs, int) else 1)
        if len(values) < least:
            raise TrainInputError(f"{flag} needs {'a value' if least == 1 else f'{least} values'}.")
        checked = [_check_value(name, flag, action, v) for v in values]
        out += [f"{flag}={checked[0]}"] if eq else [flag, *checked]
    return out


def prepare_run(name: str, *, out: str | None, data: str | None = None, render: bool = False,
                minutes=None, params: dict | None = None, nproc=1,
                extra: str | None = "") -> tuple[list[list[str]], Path]:
    """Check every input of the Train tab and build the commands of one run: ``(commands, out_dir)``.

    ``params``: ``--epochs``, ``--max_steps``, ``--batch_size``, ``--threads``, ``--ckpt_every`` (ints)
    and ``lr``. Raises :class:`TrainInputError` with a readable message; nothing is created or started.
    """
    if name not in available_trainers():
        raise TrainInputError(f"There is no trainer '{name}' in this checkout.")
    spec = trainer_spec(name)
    out_dir = out_folder(out)
    n = whole_number(nproc if nproc not in (None, "") else 1, "Processes", 1, cpu_count())
    bounds = int_bounds()
    checked: dict[str, object] = {}
    for flag, value in (params or {}).items():
        if flag == "lr":
            checked[flag] = real_number(value, "The learning rate", 0.0, MAX_LR, low_open=True)
        else:
            lo, hi = bounds.get(flag, (0, MAX_INT_OPTION))
            if flag in ("--epochs", "--max_steps") and value in (0, 0.0, "0"):
                value = None  # an empty number field arrives as 0: the trainer's default / no step limit
            checked[flag] = whole_number(value, flag.lstrip("-").replace("_", " ").capitalize(), lo, hi)
    extra_args = check_extra(name, extra, spec)
    data_text = (data or "").strip() or None
    commands = []
    data_dir = None
    if render:
        if not data_text:
            raise TrainInputError("Give the folder the corpus should be rendered into.")
        mins = real_number(minutes, "The corpus minutes", 0.0, MAX_CORPUS_MINUTES, low_open=True)
        if mins is None:
            raise TrainInputError("Give the corpus minutes to render.")
        root = data_folder(data_text, must_exist=False)
        kind = CORPUS_KIND.get(name, name)
        commands.append(corpus_command(root, kind, mins))
        data_dir = str(root / kind)
    elif data_text:
        data_dir = str(data_folder(data_text))
    commands.append(build_command(name, out_dir=out_dir, data=data_dir, params=checked, nproc=n,
                                  extra=shlex.join(extra_args)))
    return commands, out_dir


class TrainJob:
    """One training subprocess (and optionally the corpus rendering before it)."""

    def __init__(self, commands: list[list[str]], out_dir: str | os.PathLike, model: str):
        self.commands = commands
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.log_path = self.out_dir / "train.log"
        self.started = time.time()
        self.stopping = False
        script = " && ".join(shlex.join(c) for c in commands)
        # AUDIO_STUDIO_TRACEBACK: launch.py writes a failing command's full traceback to train.log (the
        # tab's log tail hides it and keeps the one-line `error: ...`)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_ALLOW_FILE_STORE": "true", "AUDIO_STUDIO_TRACEBACK": "1"}
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"$ {script}\n".encode())
            log.flush()
            # exec: a single command becomes the process itself (signals reach it directly)
            self.proc = subprocess.Popen(["bash", "-c", ("exec " if len(commands) == 1 else "") + script],
                                         cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    @property
    def progress_path(self) -> Path:
        return self.out_dir / "progress.jsonl"

    def running(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> str:
        rc = self.proc.poll()
        recs = self.records()
        last = recs[-1] if recs else {}
        if rc is None:
            if self.stopping:
                return "stopping (writing a checkpoint)"
            if last.get("event") == "train":
                eta = last.get("eta_s")
                eta_s = f", about {eta:.0f} s left" if isinstance(eta, (int, float)) else ""
                return (f"running: step {last.get('step')}/{last.get('total_steps', '?')}, "
                        f"loss {last.get('loss', float('nan')):.4g}{eta_s}")
            return f"running ({time.time() - self.started:.0f} s)"
        if last.get("event") == "stopped":
            return f"stopped at step {last.get('step')} (checkpoint saved; Start again resumes)"
        if rc == 0:
            return f"done: step {last.get('step', '?')}" if last else "finished"
        if rc < 0 or rc in (143, 130):
            return f"stopped by signal (exit {rc})"
        error = next((ln for ln in reversed(self.log_tail(200).splitlines()) if ln.startswith("error: ")), None)
        if error:
            return f"failed (exit code {rc}): {error[len('error: '):]}"
        return f"failed (exit code {rc}); see the log"

    def stop(self, timeout: float = 0.0) -> None:
        """SIGTERM the whole process group: every rank checkpoints and exits."""
        if not self.running():
            return
        self.stopping = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if timeout:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        # a tqdm bar rewrites its line with \r: keep the last state of each line; the solver's JSON
        # progress records (plotted anyway) are shortened to one readable line each
        out = [_compact(ln.rsplit("\r", 1)[-1]) for ln in text.splitlines()]
        return "\n".join(hide_tracebacks(out)[-lines:])

    def records(self) -> list[dict]:
        return read_progress(self.progress_path)

    def checkpoints(self) -> list[str]:
        return list_checkpoints(self.out_dir)


class RunView:
    """A run folder the studio did not start (a CLI run, or one from before a page reload):
    the same read-only view as :class:`TrainJob` (status, log, curves, checkpoints), no Stop."""

    def __init__(self, out_dir: str | os.PathLike, model: str = "run"):
        self.out_dir = Path(out_dir)
        if not (self.out_dir / PROGRESS).exists():
            raise ValueError(f"'{self.out_dir}' holds no progress.jsonl: not a training run folder.")
        self.model = model if model != "run" else self.out_dir.name
        self.log_path = self.out_dir / "train.log"
        self.started = (self.out_dir / PROGRESS).stat().st_mtime

    progress_path = property(lambda self: self.out_dir / PROGRESS)
    records = TrainJob.records
    checkpoints = TrainJob.checkpoints

    def running(self) -> bool:
        recs = self.records()
        fresh = time.time() - self.progress_path.stat().st_mtime < 600
        return bool(recs) and recs[-1].get("event") not in ("done", "stopped") and fresh

    def status(self) -> str:
        recs = self.records()
        last = recs[-1] if recs else {}
        state = "running" if self.running() else (last.get("event") or "no records")
        loss = last.get("loss", last.get("train_loss"))
        loss_s = f", loss {loss:.4g}" if isinstance(loss, (int, float)) else ""
        return (f"watching (started outside this tab): {state} at step {last.get('step')}/"
                f"{last.get('total_steps', '?')}{loss_s}")

    def stop(self, timeout: float = 0.0) -> None:
        raise ValueError("This run was not started from this tab: stop it where it runs (Ctrl-C or SIGTERM).")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path.exists():
            return TrainJob.log_tail(self, lines)
        with open(self.progress_path) as f:
            tail = f.readlines()[-lines:]
        return "\n".join(_compact(ln.strip()) for ln in tail)


TRACEBACK_START = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")
TRACEBACK_NOTE = "(traceback hidden: the full trace is in train.log)"


def hide_tracebacks(lines: list[str]) -> list[str]:
    """``lines`` without Python traceback blocks (from ``Traceback (most recent call last):`` through the
    exception line, chained tracebacks included); each block becomes one note. The trainer's own
    one-line ``error: ...`` stays."""
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if line.strip() != TRACEBACK_START:
            out.append(line)
            i += 1
            continue
        # one block: indented frames, then the unindented exception line; chained blocks follow after
        # a blank line and a "During handling ..." / "The above exception ..." line
        prefix = line[: len(line) - len(line.lstrip())]  # torchrun indents a child's trace
        while i < n:
            i += 1
            while i < n and (lines[i].startswith(prefix + " ") or lines[i].startswith(prefix + "\t")
                             or not lines[i].strip()):
                i += 1
            i += 1  # the exception line
            j = i
            while j < n and not lines[j].strip():
                j += 1
            if j < n and lines[j].strip() in _CHAINED:
                j += 1
                while j < n and not lines[j].strip():
                    j += 1
                if j < n and lines[j].strip() == TRACEBACK_START:
                    i = j
                    continue
            break
        out.append(prefix + TRACEBACK_NOTE)
    return out


def _compact(line: str) -> str:
    if not line.startswith('{"event"'):
        return line
    try:
        r = json.loads(line)
    except json.JSONDecodeError:
        return line
    skip = {"event", "time", "step", "epoch", "total_steps", "steps_per_epoch"}
    vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                    if k not in skip and v is not None)
    return f"[{r['event']}] epoch {r.get('epoch')} step {r.get('step')}/{r.get('total_steps', '?')} {vals}".rstrip()


def read_progress(path: str | os.PathLike) -> list[dict]:
    """The JSON records of a progress.jsonl (a half-written last line is skipped)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    except FileNotFoundError:
        pass
    return out


def list_checkpoints(out_dir: str | os.PathLike) -> list[str]:
    """Exported models (``*.safetensors``) and the resumable ``checkpoint.pt`` of a run folder."""
    d = Path(out_dir)
    if not d.is_dir():
        return []
    files = sorted(d.rglob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    res = [str(p) for p in files]
    if (d / "checkpoint.pt").exists():
        res.append(str(d / "checkpoint.pt"))
    return res


class TrainManager:
    """The jobs of this studio process, by id (one object in the context, no module globals)."""

    def __init__(self) -> None:
        self.jobs: dict[str, TrainJob] = {}
        self._lock = threading.Lock()

    def running_jobs(self) -> list[TrainJob]:
        return [j for j in self.jobs.values() if isinstance(j, TrainJob) and j.running()]

    def start(self, commands: list[list[str]], out_dir: str | os.PathLike, model: str,
              limit: int | None = None) -> str:
        """Start a :class:`TrainJob` unless ``limit`` (default :func:`max_train_jobs`) runs are going, or one
        writes to ``out_dir`` already; returns its id. The check and the start hold one lock."""
        limit = max_train_jobs() if limit is None else limit
        with self._lock:
            running = self.running_jobs()
            if any(os.path.realpath(j.out_dir) == os.path.realpath(out_dir) for j in running):
                raise TrainInputError(f"A run is already writing to '{out_dir}': stop it first or choose another "
                                      f"output folder.")
            if len(running) >= limit:
                raise TrainInputError(f"{len(running)} training run(s) already going in this studio, the limit "
                                      f"(AUDIO_STUDIO_MAX_TRAIN_JOBS) is {limit}: stop one or wait until it ends.")
            job = TrainJob(commands, out_dir, model)
            job_id = f"{job.model}-{len(self.jobs) + 1}-{int(job.started)}"
            self.jobs[job_id] = job
            return job_id

    def add(self, job: "TrainJob | RunView") -> str:
        with self._lock:
            job_id = f"{job.model}-{len(self.jobs) + 1}-{int(job.started)}"
            self.jobs[job_id] = job
            return job_id

    def get(self, job_id: str | None) -> TrainJob | None:
        return self.jobs.get(job_id or "")

    def latest_running(self) -> tuple[str | None, TrainJob | None]:
        """``(id, job)`` of the most recently started run that is still going (``(None, None)``: none)."""
        with self._lock:
            running = [(k, j) for k, j in self.jobs.items() if isinstance(j, TrainJob) and j.running()]
        if not running:
            return None, None
        return max(running, key=lambda kv: kv[1].started)

    def stop_all(self) -> None:
        for job in self.jobs.values():
            job.stop()


def register_model(path: str | os.PathLike | None, kind: str, name: str | None,
                   models_dir: str | os.PathLike | None = None) -> dict:
    """Copy an exported ``*.safetensors`` (below a runs root, verified) into the model registry as ``name``
    and write its entry; returns the entry. Refuses a name the registry already holds (nothing is replaced)."""
    import shutil

    from engines import registry
    from engines.atomic import atomic_path, safe_name
    from engines.checkpoint import read_header

    src = exported_model(path)  # a *.safetensors below a runs root
    header = read_header(src)  # a readable Audio Studio checkpoint
    clean = safe_name(str(name or "").strip(), "")
    if not clean or clean != str(name).strip():
        raise TrainInputError("Give the model a name of letters, digits, '-', '_' or '.' (e.g. my-vocals).")
    if any(e["name"] == clean for e in registry.entries(models_dir=models_dir)):
        raise TrainInputError(f"The registry already has a model named '{clean}': choose another name.")
    d = registry._dir(models_dir)  # noqa: SLF001 - the registry's own folder rule
    dest = d / f"{clean}.safetensors"
    if dest.exists():
        raise TrainInputError(f"'{dest.name}' already exists in the registry folder: choose another name.")
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    meta = header.get("metadata") or {}
    entry = {"name": clean, "kind": kind, "file": dest.name, "default": False,
             "description": f"trained in the studio ({src.parent.name}/{src.name})",
             "trained_on": str(meta.get("data") or meta.get("dataset") or "see the run's train.log"),
             "config": {}, "scores": {}}
    rate = meta.get("sample_rate")
    if isinstance(rate, (int, float)) and rate > 0:
        entry["sample_rate"] = int(rate)
    registry.register(entry, models_dir=models_dir)
    return entry
