"""The Django side of rlhf.options: command-line arguments, form fields and API serializers derived from a config
dataclass's options, and the model-location check against this site's model roots.

Bounds and choices are checked by the config itself (its __post_init__), never here, so a form, a command and an
API call refuse the same bad value with the same message; the widgets only carry them as hints (min, max).
"""

from __future__ import annotations

from argparse import BooleanOptionalAction
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from rest_framework import serializers

from rlhf.options import OptionError, OptionField, check_model_location, check_option, option_fields

# A text option is a model location or a name: longer is a mistake (or an attempt to fill the error message).
TEXT_OPTION_MAX_LENGTH = 500


def model_roots() -> list[Path]:
    """Where models that users may name live: trained runs, the converted default policy, configured roots."""
    return [Path(settings.ARTIFACTS_DIR), Path(settings.VAR_DIR) / "models", *map(Path, settings.MODEL_ROOTS)]


def is_cached_hub_id(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def model_location(value: str, name: str, default: str = "") -> str:
    """`value` if it names a model users may load here (see rlhf.options.check_model_location); else OptionError."""
    return check_model_location(value, name=name, roots=model_roots(), is_cached=is_cached_hub_id, trusted=[default])


def build_options(config_class: type, values: dict, check_models: bool = True) -> Any:
    """The config from the options given (None: the default); model options are checked against the roots.

    The one path from a user's options to a trainer config: the services (rewardmodel.services.build_config,
    policy.configs.build_config), the start forms (ConfigOptionsForm.clean), the API serializers and the commands all
    build through it, so no caller skips the model-location check (`check_models=False` only where a stored run's
    config is rebuilt on the worker: checked when the run started). Raises OptionError naming the option: the one
    refusal every way in reports."""
    given = {k: v for k, v in values.items() if v is not None}
    for field in option_fields(config_class):
        if check_models and field.option.model and field.name in given:
            given[field.name] = model_location(given[field.name], field.name, field.default)
    return config_class(**given)


def _help(field: OptionField, *, with_default: bool) -> str:
    parts = [field.option.help] if field.option.help else []
    if field.option.high is not None:
        parts.append(f"{field.option.low:g} to {field.option.high:g}.")
    if with_default and field.default not in (None, ""):
        parts.append(f"Default: {field.default}.")
    return " ".join(parts)


# Commands ------------------------------------------------------------------------------------------------------


def add_option_arguments(parser, config_class: type, exclude: tuple[str, ...] = ()) -> None:
    """One --dashed-name per option; unset ones stay None, so the config's default applies."""
    for field in option_fields(config_class):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = _help(field, with_default=True)
        if field.kind is bool:
            parser.add_argument(flag, dest=field.name, action=BooleanOptionalAction, default=None, help=help_text)
        elif field.option.choices:
            parser.add_argument(flag, dest=field.name, choices=field.choice_values, help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, type=field.kind, help=help_text)


# Forms ---------------------------------------------------------------------------------------------------------


def form_field(field: OptionField) -> forms.Field:
    """A form field for the option; left empty it means the default (which is also its initial value)."""
    common = {
        "label": field.label,
        "help_text": _help(field, with_default=False),
        "initial": field.default,
        "required": False,
    }
    if field.kind is bool:
        return forms.BooleanField(**common)
    if field.option.choices:
        return forms.ChoiceField(choices=field.option.choices, **common)
    if field.kind in (int, float):
        attrs = {"min": field.option.low, "max": field.option.high}
        attrs = {k: f"{v:g}" for k, v in attrs.items() if v is not None}
        if field.kind is int:
            return forms.IntegerField(widget=forms.NumberInput(attrs), **common)
        return forms.FloatField(widget=forms.NumberInput({**attrs, "step": "any"}), **common)
    return forms.CharField(max_length=TEXT_OPTION_MAX_LENGTH, **common)


class ConfigOptionsForm(forms.Form):
    """A start form whose trainer options come from `config_class`; the config validates them in clean()."""

    config_class: type

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in option_fields(self.config_class):
            self.fields[field.name] = form_field(field)
        self.order_fields(self.field_order)

    @property
    def option_names(self) -> list[str]:
        return [field.name for field in option_fields(self.config_class)]

    def main_fields(self) -> list[forms.BoundField]:
        advanced = {f.name for f in option_fields(self.config_class) if f.option.advanced}
        return [self[name] for name in self.fields if name not in advanced]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[f.name] for f in option_fields(self.config_class) if f.option.advanced]

    def clean(self) -> dict:
        """Each option as the config checks it (so every bad one is named at once), then the config as a whole."""
        cleaned = super().clean()
        given = {}
        for field in option_fields(self.config_class):
            value = cleaned.get(field.name)
            if field.name in self.errors or value in (None, ""):
                continue
            try:
                given[field.name] = check_option(field, value)
                if field.option.model:  # here too, so that every bad option is named at once
                    given[field.name] = model_location(value, field.name, field.default)
            except OptionError as exc:
                self.add_error(field.name, str(exc))
        if not any(name in self.errors for name in self.option_names):
            try:
                self.config = build_options(self.config_class, given)
            except OptionError as exc:
                self.add_error(exc.name if exc.name in self.fields else None, str(exc))
        return cleaned

    def training_options(self) -> dict:
        """The options as the config holds them (after clean(): checked)."""
        return {name: getattr(self.config, name) for name in self.option_names}


# API -----------------------------------------------------------------------------------------------------------

_SERIALIZERS: dict[type, type[serializers.Serializer]] = {}


def serializer_field(field: OptionField) -> serializers.Field:
    common = {"required": False, "help_text": _help(field, with_default=True) or None}
    if field.optional:
        common["allow_null"] = True
    if field.kind is bool:
        return serializers.BooleanField(**common)
    if field.option.choices:
        return serializers.ChoiceField(choices=field.option.choices, **common)
    if field.kind is int:
        return serializers.IntegerField(**common)
    if field.kind is float:
        return serializers.FloatField(**common)
    return serializers.CharField(allow_blank=True, max_length=TEXT_OPTION_MAX_LENGTH, **common)


class ConfigOptionsSerializer(serializers.Serializer):
    """Trainer options: types from the fields, bounds and model locations from the config (one message)."""

    config_class: type

    def to_internal_value(self, data):
        # Names that are not options go on to the service, which refuses them with its one message.
        unknown = {k: v for k, v in data.items() if k not in self.fields} if isinstance(data, dict) else {}
        return {**super().to_internal_value(data), **unknown}

    def validate(self, attrs: dict) -> dict:
        known = {k: v for k, v in attrs.items() if k in self.fields}
        try:
            config = build_options(self.config_class, known)
        except OptionError as exc:
            raise serializers.ValidationError({exc.name: [str(exc)]}) from None
        return {**attrs, **{name: getattr(config, name) for name in known}}


def options_serializer(config_class: type) -> type[ConfigOptionsSerializer]:
    """A serializer class with one optional field per option of `config_class` (made once per class)."""
    if config_class not in _SERIALIZERS:
        fields = {field.name: serializer_field(field) for field in option_fields(config_class)}
        name = f"{config_class.__name__.removesuffix('Config')}Options"
        _SERIALIZERS[config_class] = type(name, (ConfigOptionsSerializer,), {"config_class": config_class, **fields})
    return _SERIALIZERS[config_class]
