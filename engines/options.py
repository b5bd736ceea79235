"""Engine options: one frozen ``Config`` dataclass per engine drives the API, the CLI and the studio.

Each field is declared with :func:`option`, which stores its help, bounds (:class:`engines.audio.limits.Range`),
choices, group and studio hints in the field's metadata. From that one declaration:

* the API validates (:meth:`ConfigBase.__post_init__` -> :func:`validate`): a bad value raises
  ``ValueError("Invalid setting: ...")`` when the config is built, before any work;
* the CLI gets its flags (:func:`add_arguments`: same names as the fields, the config's defaults, ``--preset``)
  and builds the config back (:func:`from_args`: preset values under explicitly given flags);
* the studio gets its widgets (``studio/widgets.py`` reads :func:`specs`).

Presets are named partial configs in the class attribute ``PRESETS`` (``{"fast": {"opt_steps": 0}, ...}``);
``Config.preset("fast", **overrides)`` builds one. Nothing here imports torch: parsers stay fast.

Example::

    @dataclass(frozen=True)
    class Config(ConfigBase):
        PRESETS: ClassVar[dict] = {"hard": {"sharpen": 4.0}}
        sharpen: float = option(1.0, "mask sharpening", range=Range(0, 100, lo_open=True), group="mask")
        binary_mask: bool = option(False, "0/1 mask instead of a soft one", group="mask")
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from engines.audio.limits import Range

_KEY = "audio_studio_option"
_KINDS = (bool, int, float, str)


def option(default: Any, help: str = "", *, range: Range | None = None, choices: tuple | list | None = None,
           group: str = "options", label: str | None = None, step: float | None = None, cli: bool = True,
           studio: bool = True, flag: str | None = None, metavar: str | None = None):
    """A config field with its help and bounds.

    Args:
        default: the default value (``None`` allowed when the annotation is ``X | None``).
        help: one line for ``--help`` and the studio's ``info``.
        range: allowed numeric range (``None``: any finite number for numeric fields).
        choices: allowed values (strings or numbers).
        group: CLI argument group and studio section.
        label: studio label (default: the field name, as the CLI flag spells it).
        step: studio slider step (default: 1 for integers, else the range / 100).
        cli / studio: whether the field is a CLI flag / a studio widget.
        flag: the CLI flag when it differs from ``--<name>``.
        metavar: argparse metavar.
    """
    meta = {"help": help, "range": range, "choices": tuple(choices) if choices is not None else None,
            "group": group, "label": label, "step": step, "cli": cli, "studio": studio, "flag": flag,
            "metavar": metavar}
    return dataclasses.field(default=default, metadata={_KEY: meta})


@dataclass(frozen=True)
class Spec:
    """One option as the CLI and the studio see it."""

    name: str
    kind: type          # bool | int | float | str
    optional: bool      # None is allowed ("use the engine's default / auto")
    default: Any
    help: str
    range: Range | None
    choices: tuple | None
    group: str
    label: str
    step: float | None
    cli: bool
    studio: bool
    flag: str
    metavar: str | None

    def problem(self, value) -> str | None:
        """``None`` when ``value`` is allowed, else what was expected."""
        if value is None:
            return None if self.optional else f"expected {self._expected()}, not None"
        if self.choices is not None:
            return None if value in self.choices else f"expected one of {', '.join(map(str, self.choices))}"
        if self.kind is bool:
            return None if isinstance(value, bool) else "expected True or False"
        if self.kind is str:
            return None if isinstance(value, str) else "expected text"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {self._expected()}"
        if self.kind is int and (not math.isfinite(float(value)) or float(value) != int(value)):
            return f"expected {self._expected()}"
        return (self.range or Range(integer=self.kind is int)).problem(value)

    def _expected(self) -> str:
        if self.range is not None:
            return self.range.describe()
        return {bool: "True or False", int: "an integer", float: "a number", str: "text"}[self.kind]


def _kind(hint) -> tuple[type, bool]:
    """``(base type, None allowed)`` of an annotation such as ``float | None``."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else str
    if typing.get_origin(hint) is typing.Literal:
        vals = typing.get_args(hint)
        hint = type(vals[0])
    if hint not in _KINDS:
        raise TypeError(f"option type {hint!r} is not one of bool, int, float, str (or X | None)")
    return hint, optional


def specs(config_cls) -> list[Spec]:
    """The :class:`Spec` of every :func:`option` field of ``config_cls`` (a class or an instance), in order."""
    cls = config_cls if isinstance(config_cls, type) else type(config_cls)
    cached = cls.__dict__.get("_specs_cache")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None:
            continue
        kind, optional = _kind(hints[f.name])
        out.append(Spec(name=f.name, kind=kind, optional=optional or f.default is None, default=f.default,
                        help=meta["help"], range=meta["range"], choices=meta["choices"], group=meta["group"],
                        label=meta["label"] or f.name, step=meta["step"], cli=meta["cli"], studio=meta["studio"],
                        flag=meta["flag"] or f"--{f.name}", metavar=meta["metavar"]))
    setattr(cls, "_specs_cache", out)
    return out


def spec(config_cls, name: str) -> Spec:
    for s in specs(config_cls):
        if s.name == name:
            return s
    raise KeyError(f"{getattr(config_cls, '__name__', config_cls)!s} has no option {name!r}")


def validate(cfg) -> None:
    """Refuse any field of ``cfg`` outside its declared bounds.

    Raises:
        ValueError: ``"Invalid setting: <name> = <value>; expected ..."`` for the first bad field.
    """
    for s in specs(cfg):
        value = getattr(cfg, s.name)
        msg = s.problem(value)
        if msg:
            raise ValueError(f"Invalid setting: {s.name} = {value!r}; {msg}.")


class ConfigBase:
    """Mixin for an engine's frozen config dataclass: validation on construction, presets, dict round trip.

    Subclasses may override :meth:`check` for rules between fields (raise ``ValueError("Invalid setting: ...")``).
    """

    PRESETS: ClassVar[dict[str, dict]] = {}

    def __post_init__(self) -> None:
        # ints given as floats that are whole (a studio slider sends 18.0) become ints
        for s in specs(self):
            v = getattr(self, s.name)
            if s.kind is int and isinstance(v, float) and math.isfinite(v) and v == int(v):
                object.__setattr__(self, s.name, int(v))
            elif s.kind is float and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, s.name, float(v))
        validate(self)
        self.check()

    def check(self) -> None:
        """Rules between fields; the default has none."""

    @classmethod
    def preset(cls, name: str | None = None, **overrides):
        """The config of preset ``name`` (``None``: the defaults) with ``overrides`` on top."""
        values = dict(cls.preset_values(name))
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def preset_values(cls, name: str | None) -> dict:
        if name is None:
            return {}
        if name not in cls.PRESETS:
            raise ValueError(f"Unknown preset {name!r}: choose one of {', '.join(cls.PRESETS) or '(none)'}.")
        return cls.PRESETS[name]

    @classmethod
    def from_dict(cls, values: dict, *, strict: bool = True):
        """Build from a mapping; an unknown key is refused when ``strict`` (else ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown and strict:
            raise ValueError(f"Unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
        return cls(**{k: v for k, v in values.items() if k in names})

    def replace(self, **changes):
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ------------------------------------------------------------------------------------------------ CLI
def str2bool(v) -> bool:
    """argparse ``type`` for booleans: true/false, yes/no, 1/0, on/off."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got '{v}'")


_EXPLICIT = "_explicit_options"


class _Recorded(argparse.Action):
    """Stores the value and remembers that the flag was given (so a preset does not override it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if values is None else values)
        seen = set(getattr(namespace, _EXPLICIT, ()))
        seen.add(self.dest)
        setattr(namespace, _EXPLICIT, seen)


def _arg_type(s: Spec):
    if s.kind is bool:
        return str2bool
    if s.kind is str:
        return str
    r = s.range or Range(integer=s.kind is int)
    if s.kind is int and not r.integer:
        r = dataclasses.replace(r, integer=True)
    return r.optional_arg if s.optional else r.arg


def add_arguments(parser: argparse.ArgumentParser, config_cls, *, skip: tuple[str, ...] = (),
                  groups: dict[str, argparse._ArgumentGroup] | None = None) -> dict[str, argparse._ArgumentGroup]:
    """Add one flag per CLI option of ``config_cls`` (and ``--preset`` when it has presets).

    Flags default to the config's defaults, so ``--help`` shows them. Returns the argument groups by name
    (pass them back in ``groups`` to add more options to the same sections).
    """
    groups = {} if groups is None else groups
    if config_cls.PRESETS and "preset" not in skip:
        parser.add_argument("--preset", choices=list(config_cls.PRESETS), default=None,
                            help="start from a named preset; flags given explicitly override it ("
                                 + "; ".join(f"{k}: " + ", ".join(f"{n}={v}" for n, v in p.items())
                                             for k, p in config_cls.PRESETS.items()) + ")")
    for s in specs(config_cls):
        if not s.cli or s.name in skip:
            continue
        g = groups.get(s.group)
        if g is None:
            g = groups[s.group] = parser.add_argument_group(s.group)
        kw: dict[str, Any] = dict(dest=s.name, default=s.default, help=s.help or None, action=_Recorded)
        if s.kind is bool:
            kw.update(type=str2bool, nargs="?", const=True, metavar=s.metavar or "BOOL")
        else:
            kw.update(type=_arg_type(s))
            if s.choices is not None:
                kw["choices"] = list(s.choices)
            if s.metavar:
                kw["metavar"] = s.metavar
        g.add_argument(s.flag, **kw)
    return groups


def from_args(config_cls, args: argparse.Namespace, **overrides):
    """The config of the parsed ``args``: the preset's values, then every flag given explicitly, then
    ``overrides``. A flag not given keeps the preset's value, else the config's default."""
    explicit = getattr(args, _EXPLICIT, set())
    values = dict(config_cls.preset_values(getattr(args, "preset", None))) if config_cls.PRESETS else {}
    for s in specs(config_cls):
        if not s.cli or not hasattr(args, s.name):
            continue
        if s.name in explicit or s.name not in values:
            values[s.name] = getattr(args, s.name)
    values.update(overrides)
    return config_cls.from_dict(values)


def cli_defaults(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``{dest: default}`` of every flag of ``parser`` (for the defaults-agree test)."""
    return {a.dest: a.default for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}
