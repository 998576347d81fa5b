"""Form and API fields every start form shares: the queue a run is sent to."""

from __future__ import annotations

from django import forms
from django.conf import settings
from rest_framework import serializers

from runs.models import check_run_queue, default_run_queue, run_queue_choices

QUEUE_HELP = "The workers that may train it (RUN_QUEUES: one queue per kind of machine, e.g. gpu-80g)."


def queue_form_field() -> forms.ChoiceField:
    """The start form's queue: a choice among RUN_QUEUES, read when the form is built (settings may change)."""
    # Not required: a form posted without it (a script, an old page) means the default queue.
    return forms.ChoiceField(
        choices=run_queue_choices(), initial=default_run_queue(), required=False, label="Queue", help_text=QUEUE_HELP
    )


class RunQueueField(serializers.CharField):
    """The API's `queue`: one of RUN_QUEUES; blank or absent means the default."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("help_text", QUEUE_HELP + " Default: the first of RUN_QUEUES.")
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        name = super().to_internal_value(data)
        if name and name not in settings.RUN_QUEUES:
            raise serializers.ValidationError(f"Unknown queue {name!r}: pick one of {', '.join(settings.RUN_QUEUES)}.")
        return check_run_queue(name)
