"""Where inference runs: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda`` / ``cuda:N``.

Every engine's ``load(device=...)``, the CLI's ``--device`` and the studio (Models tab) use :func:`resolve`.
"""
from __future__ import annotations

import re

#: the choices the CLI and the studio offer
CHOICES = ("auto", "cpu", "cuda")
_CUDA = re.compile(r"^cuda(:\d+)?$")


def resolve(device=None):
    """The ``torch.device`` for ``device`` (``None`` or ``"auto"``: CUDA when available, else CPU).

    Raises:
        ValueError: an unknown name, or CUDA asked for where there is none.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if _CUDA.match(name):
        if not torch.cuda.is_available():
            raise ValueError(f"Device {name!r} was asked for, but this machine has no usable CUDA GPU: "
                             "use --device cpu or auto.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"Device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
        return torch.device(name)
    raise ValueError(f"Unknown device {device!r}: choose auto, cpu or cuda.")


def describe(device) -> str:
    """A few words for people: ``"cpu"`` or ``"cuda:0 (NVIDIA H200)"``."""
    import torch

    d = resolve(device)
    if d.type == "cuda":
        return f"{d} ({torch.cuda.get_device_name(d)})"
    return "cpu"


def add_argument(parser) -> None:
    """``--device auto|cpu|cuda`` on a CLI parser."""
    parser.add_argument("--device", default="auto", type=_device_arg, metavar="{auto,cpu,cuda,cuda:N}",
                        help="where the model runs: auto = CUDA when available, else CPU")


def _device_arg(text: str) -> str:
    import argparse

    name = str(text).strip().lower()
    if name in CHOICES or _CUDA.match(name):
        return name
    raise argparse.ArgumentTypeError(f"unknown device {text!r}: choose auto, cpu or cuda")
