"""``launch.py loudness --input X --out_dir D``: D/normalised.wav and D/loudness.json."""
from __future__ import annotations

COMMAND = "loudness"
HELP = "loudness normalisation to a target LUFS"
TITLE = "Loudness"


def add_arguments(parser) -> None:
    from engines import device, options

    from . import Config

    parser.add_argument("--input", required=True, help="audio file")
    parser.add_argument("--out_dir", required=True, help="output folder")
    options.add_arguments(parser, Config)
    device.add_argument(parser)


def run(args) -> int:
    from engines import options

    from . import Config, Engine

    engine = Engine.load(None, device=args.device)
    result = engine.run(args.input, options.from_args(Config, args))
    files = result.save(args.out_dir, inputs=[args.input])
    print(", ".join(sorted(files)))
    return 0
