"""A policy run's trainer config, built from the user's options (REINFORCE or SFT)."""

from __future__ import annotations

import dataclasses

from django.utils.translation import ngettext

from arbiter.options import build_options
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from policy.reinforce import ReinforceConfig, SFTConfig
from rlhf.options import OptionError

# Configs ----------------------------------------------------------------------------------------


def config_class(kind: str) -> type:
    if kind == PolicyRun.Kind.REINFORCE:
        return ReinforceConfig
    if kind == PolicyRun.Kind.SFT:
        return SFTConfig
    raise PolicyRunError(f"kind must be 'reinforce' or 'sft', not {kind!r}.")


def config_fields(kind: str) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class(kind))}


def build_config(kind: str, check_models: bool = True, **options) -> ReinforceConfig | SFTConfig:
    """The trainer's config: its defaults, overridden by `options` (unknown names are an error)."""
    unknown = sorted(set(options) - config_fields(kind))
    if unknown:
        label = ngettext("option", "options", len(unknown))
        raise PolicyRunError(f"Unknown {kind} {label}: {', '.join(unknown)}.")
    try:
        return build_options(config_class(kind), options, check_models)  # model folders checked against the roots
    except OptionError as exc:
        raise PolicyRunError(str(exc)) from exc  # names the option, as the form and the command say it
    except (TypeError, ValueError) as exc:
        raise PolicyRunError(f"Bad {kind} option: {exc}") from exc
