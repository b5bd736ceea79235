#!/usr/bin/env python3
"""Audio Studio entry point.

``python launch.py`` opens the studio (Gradio; honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT,
``--port``, ``--share``). ``python launch.py <command> ...`` is the command line; each command
lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``,
imported only when that command runs (so ``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: command -> (module, one-line help). Modules that are not in this checkout are not listed.
COMMANDS: dict[str, tuple[str, str]] = {
    "separate": ("engines.separation.cli", "query separation: mixture + query clip -> target + residual"),
    "vocals": ("engines.vocals.cli", "vocal isolation: song(s) -> vocals + accompaniment"),
    "vocals-dataset": ("trainers.vocals_dataset", "build the sliced vocal training set from song folders"),
    "fuse": ("engines.fusion.cli", "A/B fusion: two songs -> one arrangement"),
    "timbre": ("engines.timbre.cli", "timbre transfer: piano <-> violin"),
    "timbre-stats": ("trainers.timbre_stats", "compute timbre normalisation statistics (.npz) from a dataset"),
    "corpus": ("trainers.corpus.cli", "render the training corpus from music21 scores, soundfonts and voices"),
    "models": ("engines.registry", "list the registered models and their measured scores"),
}
#: `train <model>` -> module
TRAINERS: dict[str, tuple[str, str]] = {
    "query": ("trainers.query_embedder", "the built-in query embedder/classifier"),
    "vocals": ("trainers.vocals", "the vocal mask CNN"),
    "vocals-bs": ("trainers.vocals_bs", "the band-split vocal/four-stem separator"),
    "fusion": ("trainers.fusion", "the A/B fusion cascade transformer"),
    "fusion-beats": ("trainers.fusion_beats", "the fusion engine's beat/downbeat tracker"),
    "fusion-key": ("trainers.fusion_key", "the fusion engine's key finder"),
    "timbre": ("trainers.timbre", "the timbre transfer model"),
    "timbre-synth": ("trainers.timbre_synth", "the synthesis-decoder timbre model (DDSP-style)"),
}


def _with_discovered(table: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """``table`` plus every engine folder that declares its own command (engines/discovery.py)."""
    from engines.discovery import engines

    out = dict(table)
    known = {module for module, _ in table.values()}
    for found in engines():
        if found.cli not in known and found.command not in out:
            out[found.command] = (found.cli, found.help)
    return out


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available(table: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in table.items() if _exists(spec[0])}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py", description="Audio Studio: neural tools for music and sound. "
        "Without a command, opens the studio in the browser.")
    parser.add_argument("--port", type=int, default=None, help="studio port (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--host", default=None, help="studio address (default $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, help_) in available(_with_discovered(COMMANDS)).items():
        p = sub.add_parser(name, help=help_, description=help_, add_help=False)
        p.set_defaults(_module=module)
    trainers = available(TRAINERS)
    if trainers:
        tp = sub.add_parser("train", help="train a model: " + ", ".join(trainers), description="Train a model.")
        tsub = tp.add_subparsers(dest="model", metavar="<model>", required=True)
        for name, (module, help_) in trainers.items():
            p = tsub.add_parser(name, help=help_, description=f"Train {help_}.", add_help=False)
            p.set_defaults(_module=module)
    return parser


def _command_parser(module_name: str, prog: str, description: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    p = argparse.ArgumentParser(prog=prog, description=getattr(module, "HELP", description),
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(p)
    p.set_defaults(_run=module.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = get_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from studio.app import launch

        return launch(host=args.host, port=args.port, share=args.share) or 0
    name = args.command if args.command != "train" else f"train {args.model}"
    cmd = _command_parser(args._module, f"launch.py {name}", name)
    cargs = cmd.parse_args(rest)
    from engines.messages import EXIT_USER_ERROR, user_message

    try:
        return int(cargs._run(cargs) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - every error ends as one readable line (trace with -v)
        logging.getLogger("launch").debug("%s failed", name, exc_info=True)
        if os.environ.get("AUDIO_STUDIO_TRACEBACK") == "1" and not args.verbose:  # the Train tab's train.log
            import traceback

            traceback.print_exc()
        print(f"error: {user_message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
