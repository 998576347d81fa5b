"""A policy run's trainer config, built from the user's options (REINFORCE, SFT or DPO)."""

from __future__ import annotations

from django.utils.translation import ngettext

from arbiter.options import build_options
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from policy.reinforce import DPOConfig, ReinforceConfig, SFTConfig
from rlhf.options import OptionError, option_fields

# Configs ----------------------------------------------------------------------------------------


def config_class(kind: str) -> type:
    if kind == PolicyRun.Kind.REINFORCE:
        return ReinforceConfig
    if kind == PolicyRun.Kind.SFT:
        return SFTConfig
    if kind == PolicyRun.Kind.DPO:
        return DPOConfig
    raise PolicyRunError(f"kind must be one of {', '.join(PolicyRun.Kind.values)}, not {kind!r}.")


def config_fields(kind: str) -> set[str]:
    """The settings a run takes: the config's declared options (any other field is not the user's)."""
    return {f.name for f in option_fields(config_class(kind))}


def build_config(kind: str, check_models: bool = True, **options) -> ReinforceConfig | SFTConfig | DPOConfig:
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
