"""User options of the trainers and exports, declared once on their config dataclasses (Django-free).

A config field declared with `option(...)` carries its help text, bounds and choices in the field's metadata.
From there the config validates itself (`check_options`, called from `__post_init__`), and the Django side
(arbiter/options.py) derives command-line arguments, form fields and API serializer fields, so an option is
written in one place and every way in refuses the same bad value with the same message.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTION_KEY = "option"


class OptionError(ValueError):
    """A value a user gave for an option that the trainer or export cannot take; `name` is the option's."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Option:
    """What the user is told about an option and which values are allowed."""

    help: str = ""
    label: str = ""
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) pairs
    advanced: bool = False  # forms show it under "More options"
    model: bool = False  # names a model to load: a folder under a model root or a cached hub id


@dataclass(frozen=True)
class OptionField:
    """One option of a config: its dataclass field, its Python type and its Option metadata."""

    name: str
    kind: type  # int, float, bool or str
    optional: bool  # None is allowed (e.g. "no penalty")
    default: Any
    option: Option

    @property
    def label(self) -> str:
        return self.option.label or self.name.replace("_", " ").capitalize()

    @property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.option.choices)


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    label: str = "",
    low: float | None = None,
    high: float | None = None,
    choices: Iterable[str | tuple[str, str]] = (),
    advanced: bool = False,
    model: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field that users may set, with what forms, commands and the API need to know about it."""
    pairs = tuple((c, c) if isinstance(c, str) else tuple(c) for c in choices)
    metadata = {OPTION_KEY: Option(help, label, low, high, pairs, advanced, model)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def _kind(annotation: Any) -> tuple[type, bool]:
    """(int | float | bool | str, whether None is allowed) from a field's type hint."""
    args = typing.get_args(annotation)
    if args:
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], len(kinds) < len(args)
    return annotation, False


def option_fields(config_class: type) -> list[OptionField]:
    """The config's user options in declaration order (fields without option() metadata are internal)."""
    hints = typing.get_type_hints(config_class)
    fields = []
    for f in dataclasses.fields(config_class):
        meta = f.metadata.get(OPTION_KEY)
        if meta is None:
            continue
        kind, optional = _kind(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        fields.append(OptionField(f.name, kind, optional, default, meta))
    return fields


def _number(value: float) -> str:
    return f"{value:,}".replace(",", "_") if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def check_option(field: OptionField, value: Any) -> Any:
    """The value if the option allows it; else OptionError with a message naming the option."""
    name, meta = field.name, field.option
    if value is None and field.optional:
        return value
    if field.kind is bool:
        if not isinstance(value, bool):
            raise OptionError(name, f"{name} must be true or false, got {value!r}.")
        return value
    if field.kind in (int, float):
        whole = field.kind is int
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise OptionError(name, f"{name} must be a {'whole number' if whole else 'number'}, got {value!r}.")
        low = -math.inf if meta.low is None else meta.low
        high = math.inf if meta.high is None else meta.high
        if not low <= value <= high:  # NaN fails too
            bounds = f"[{_number(meta.low)}, {_number(meta.high)}]" if meta.high is not None else f">= {meta.low}"
            noun = "a whole number in" if whole else "in"
            raise OptionError(name, f"{name} must be {noun} {bounds}, got {value!r}.")
        return value
    if not isinstance(value, str):
        raise OptionError(name, f"{name} must be text, got {value!r}.")
    if meta.choices and value not in field.choice_values:
        raise OptionError(name, f"{name} must be one of {', '.join(field.choice_values)}; got {value!r}.")
    return value


def check_options(config: object) -> None:
    """Check every option of a config instance (from its __post_init__)."""
    for field in option_fields(type(config)):
        check_option(field, getattr(config, field.name))


def given_options(config_class: type, values: dict) -> dict:
    """The entries of `values` that name an option of `config_class` and are set (not None)."""
    names = {f.name for f in option_fields(config_class)}
    return {k: v for k, v in values.items() if k in names and v is not None}


# Model locations -----------------------------------------------------------------------------------------------

# A Hugging Face id: "name" or "owner/name", no path tricks.
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


def check_model_location(
    value: str, *, name: str, roots: Iterable[Path], is_cached: Callable[[str], bool], trusted: Iterable[str] = ()
) -> str:
    """A model folder inside one of `roots`, or a hub id already in the local cache; else OptionError.

    Users name models to load on the worker: a folder anywhere on its disk would let them probe (or load
    pickles from) places nobody meant to share, and a hub id that is not cached cannot load offline anyway.
    `trusted` values (the defaults) are always accepted.
    """
    value = (value or "").strip()
    if value in set(trusted):
        return value
    if not value:
        raise OptionError(name, f"{name}: give a model folder or a Hugging Face id.")
    looks_like_path = value.startswith(("/", ".", "~")) or "\\" in value or ".." in value
    if not looks_like_path and HUB_ID.match(value):
        try:
            cached = is_cached(value)
        except ValueError as exc:  # the hub's own id rules (at most 96 characters, no "--"): HFValidationError
            raise OptionError(name, f"{name}: not a valid Hugging Face id or model folder. {exc}") from None
        if cached:
            return value
        raise OptionError(name, f"{name}: {value} is not in the local Hugging Face cache (downloads are off).")
    folder = Path(value).expanduser().resolve()
    roots = [Path(root).expanduser().resolve() for root in roots]
    if not any(folder.is_relative_to(root) for root in roots):
        where = ", ".join(str(root) for root in roots) or "none configured"
        raise OptionError(name, f"{name}: {value} is not inside a model folder root ({where}).")
    if not folder.is_dir():
        raise OptionError(name, f"{name}: no model folder at {value}.")
    return value


def processes_option() -> Any:
    """How many training processes a run uses (the reward and REINFORCE configs share it)."""
    return option(
        1,
        low=1,
        high=64,
        advanced=True,
        help="Training processes on the worker's machine (torchrun, one per GPU); 1: the worker's own.",
    )


def strategy_option() -> Any:
    """How a run's processes share the model (the reward and REINFORCE configs share it)."""
    return option(
        "ddp",
        choices=(("ddp", "DDP: a whole model per process"), ("fsdp", "FSDP: the model sharded (reward models)")),
        advanced=True,
        help="How processes share the model.",
    )
