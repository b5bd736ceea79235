"""Engines found by their folder: every ``engines/<pkg>/cli.py`` that declares ``COMMAND = "<name>"`` and
``HELP = "..."`` at module level becomes a ``launch.py <name>`` command, and (unless the studio has a tab of
its own for it) a generic studio tab built from its ``Config`` and ``Engine``. Read with ``ast``, without
importing anything, so ``launch.py --help`` stays fast. See docs/DEVELOPING.md ("A fifth engine").
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ENGINES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Found:
    package: str      # "engines.<pkg>"
    command: str      # the launch.py command
    help: str         # one line
    title: str        # the studio tab's title

    @property
    def cli(self) -> str:
        return f"{self.package}.cli"


def _constants(path: Path) -> dict[str, str]:
    out = {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out[node.targets[0].id] = node.value.value
    return out


def engines(root: str | Path | None = None, prefix: str = "engines") -> list[Found]:
    """Every engine package under ``root`` (default: this folder) whose ``cli.py`` names its ``COMMAND``."""
    root = Path(root) if root is not None else ENGINES_DIR
    found = []
    for cli in sorted(root.glob("*/cli.py")):
        if not (cli.parent / "__init__.py").is_file():
            continue
        c = _constants(cli)
        if "COMMAND" in c:
            name = cli.parent.name
            found.append(Found(f"{prefix}.{name}", c["COMMAND"], c.get("HELP", c["COMMAND"]),
                               c.get("TITLE", name.replace("_", " ").title())))
    return found
