"""Each engine's defaults are defined once: the CLI's flag defaults, the ``Config`` defaults and the studio's
widget values agree, for every engine (issue #14)."""
from __future__ import annotations

import importlib

import pytest

from engines import options

ENGINES = {  # package -> CLI module
    "separation": "engines.separation.cli",
    "vocals": "engines.vocals.cli",
    "fusion": "engines.fusion.cli",
    "timbre": "engines.timbre.cli",
}


def _config(pkg: str):
    return importlib.import_module(f"engines.{pkg}").Config


@pytest.mark.parametrize("pkg", sorted(ENGINES))
def test_cli_defaults_equal_config_defaults(pkg):
    import launch

    Config = _config(pkg)
    parser = launch._command_parser(ENGINES[pkg], pkg, pkg)  # noqa: SLF001 - the parser the CLI uses
    defaults = options.cli_defaults(parser)
    cli_specs = [s for s in options.specs(Config) if s.cli]
    assert cli_specs, f"{pkg}: the Config declares no CLI options"
    for s in cli_specs:
        assert s.name in defaults, f"{pkg}: --{s.name} is not a CLI flag"
        assert defaults[s.name] == s.default, f"{pkg}: --{s.name} defaults to {defaults[s.name]!r}, Config to {s.default!r}"
    if Config.PRESETS:
        assert "preset" in defaults, f"{pkg}: the CLI has no --preset"
        for name in Config.PRESETS:
            Config.preset(name)  # every preset is a valid config


@pytest.fixture(scope="module")
def bound_widgets(tmp_path_factory):
    from studio import widgets
    from studio.app import build_app
    from studio.context import StudioContext

    widgets.BOUND.clear()
    app = build_app(StudioContext(tmp_path_factory.mktemp("outputs")))
    out = [(ref(), cls, name) for ref, cls, name in widgets.BOUND.values() if ref() is not None]
    yield out
    app.close()


@pytest.mark.parametrize("pkg", sorted(ENGINES))
def test_studio_widgets_start_at_the_config_defaults(pkg, bound_widgets):
    Config = _config(pkg)
    mine = [(comp, name) for comp, cls, name in bound_widgets if cls is Config]
    assert mine, f"{pkg}: no studio widget is generated from its Config"
    for comp, name in mine:
        default = options.spec(Config, name).default
        value = comp.value
        if default is None:
            assert value in (None, ""), f"{pkg}: widget {name} starts at {value!r}, Config at None"
        else:
            assert value == default, f"{pkg}: widget {name} starts at {value!r}, Config at {default!r}"
