"""Studio widgets generated from an engine's ``Config`` (:mod:`engines.options`): one declaration of every
default, range and help text, shared with the CLI.

* :func:`widget` / :func:`widgets` -- a Gradio component per option (Checkbox, Dropdown/Radio, Slider or
  Number, Textbox), its value the config's default, its label the CLI flag's name, its ``info`` the help.
* :func:`to_config` -- the values a callback receives back into a validated config.
* :func:`preset_picker` -- a Dropdown of the config's presets that sets the widgets.
* :data:`BOUND` -- every generated component with its config class and option (the defaults-agree test).
"""
from __future__ import annotations

import weakref
from typing import Any, Iterable

from engines.options import Spec, spec

#: component id -> (component weakref, config class, option name): filled by :func:`widget`
BOUND: dict[int, tuple[Any, type, str]] = {}


def _gr():
    import gradio as gr

    return gr


def _slider_step(s: Spec) -> float:
    if s.step is not None:
        return s.step
    if s.kind is int:
        return 1
    r = s.range
    return float(f"{(r.hi - r.lo) / 100:.2g}")


def widget(config_cls, name: str, *, radio: bool = False, number: bool = False, **overrides):
    """The Gradio component of option ``name`` of ``config_cls`` with the config's default as its value.

    ``overrides`` go to the component (e.g. ``elem_id``, ``visible``, ``label``); ``radio`` shows choices
    as a Radio instead of a Dropdown; ``number`` shows a bounded numeric option as a Number box instead of a
    Slider (seeds, wide ranges). An optional numeric option (``None`` = auto) is a Number that may be
    left empty.
    """
    gr = _gr()
    s = spec(config_cls, name)
    kw: dict[str, Any] = dict(label=s.label, value=s.default)
    if s.help:
        kw["info"] = s.help
    kw.update(overrides)
    if s.choices is not None:
        comp = (gr.Radio if radio else gr.Dropdown)(choices=list(s.choices), **kw)
    elif s.kind is bool:
        comp = gr.Checkbox(**kw)
    elif s.kind is str:
        comp = gr.Textbox(**{"value": "" if s.default is None else s.default, **{k: v for k, v in kw.items()
                                                                                  if k != "value"}})
    else:
        r = s.range
        bounded = r is not None and r.lo is not None and r.hi is not None and not r.allow and not s.optional \
            and not r.power_of_two
        if bounded and not number:
            comp = gr.Slider(minimum=r.lo, maximum=r.hi, step=_slider_step(s), **kw)
        else:
            kw.setdefault("precision", 0 if s.kind is int else None)
            comp = gr.Number(**kw)
    BOUND[id(comp)] = (weakref.ref(comp), config_cls, name)
    return comp


def widgets(config_cls, names: Iterable[str], **per_name: dict) -> dict[str, Any]:
    """``{name: component}`` for ``names`` in order; ``per_name[name]`` holds that widget's overrides."""
    return {n: widget(config_cls, n, **per_name.get(n, {})) for n in names}


def value_of(config_cls, name: str, value: Any) -> Any:
    """A widget's value as the option expects it (empty text or number -> ``None`` when optional; whole
    floats -> int for integer options). Bounds are checked by the config itself."""
    s = spec(config_cls, name)
    if value is None or (isinstance(value, str) and not value.strip() and s.kind is not str):
        return None
    if s.optional and s.kind in (int, float) and not isinstance(value, bool) and value == 0 \
            and s.range is not None and s.range.problem(0):
        return None  # a browser sends an emptied Number as 0; 0 is outside the range, so it means "auto"
    if s.kind is str and isinstance(value, str) and not value.strip() and s.optional:
        return None
    if s.kind is int and isinstance(value, float) and value == int(value):
        return int(value)
    if s.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_config(config_cls, names: Iterable[str], values: Iterable[Any], base=None, **extra):
    """A validated config: ``base`` (or the defaults) with the widgets' ``values`` and ``extra`` on top."""
    changes = {n: value_of(config_cls, n, v) for n, v in zip(names, values)}
    changes.update(extra)
    start = base.to_dict() if base is not None else {}
    start.update(changes)
    return config_cls.from_dict(start)


def preset_picker(config_cls, components: dict[str, Any], **kwargs):
    """A Dropdown of ``config_cls.PRESETS`` ("default" first) that sets ``components`` to the preset's values
    (options a preset does not name go back to the defaults)."""
    gr = _gr()
    names = ["default", *config_cls.PRESETS]
    kwargs.setdefault("label", "preset")
    kwargs.setdefault("info", "--preset: named settings; every widget can still be changed")
    dd = gr.Dropdown(choices=names, value="default", **kwargs)
    keys = list(components)

    def apply(name):
        values = config_cls.preset(None if name in (None, "default") else name).to_dict()
        return [gr.update(value=values[k]) for k in keys]

    dd.change(apply, [dd], [components[k] for k in keys], api_visibility="private", queue=False)
    return dd
