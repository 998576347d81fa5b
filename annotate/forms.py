"""Form pieces every start form shares: batches offered with their item and judgment counts, and date inputs."""

from __future__ import annotations

from django import forms
from django.db.models import Count, QuerySet
from django.template.defaultfilters import pluralize

from annotate.models import Batch


def batches_with_counts() -> QuerySet[Batch]:
    return Batch.objects.annotate(
        n_items=Count("items", distinct=True), n_judgments=Count("items__judgments", distinct=True)
    ).order_by("name")


def batch_label(batch: Batch) -> str:
    """A batch as forms offer it: its name, items and judgments (from batches_with_counts())."""
    return (
        f"{batch} ({batch.n_items} item{pluralize(batch.n_items)}, "
        f"{batch.n_judgments} judgment{pluralize(batch.n_judgments)})"
    )


class BatchChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, batch: Batch) -> str:
        return batch_label(batch)


class BatchesChoiceField(forms.ModelMultipleChoiceField):
    """Checkboxes, one per batch, labelled with its counts."""

    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, batch: Batch) -> str:
        return batch_label(batch)


class DateInput(forms.DateInput):
    """The browser's date picker; it sends YYYY-MM-DD, which DateField reads."""

    input_type = "date"

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")
