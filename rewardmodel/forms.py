from __future__ import annotations

from pathlib import Path

from django import forms
from django.db.models import Count

from annotate.models import Batch
from rewardmodel.train import DEFAULT_BACKBONE, RewardTrainConfig
from rlhf.preferences import AGGREGATION_LABELS, AGGREGATIONS


def clean_model_location(value: str) -> str:
    """A cached hub id or a local folder: what looks like a path must be a folder that exists."""
    value = value.strip()
    looks_like_path = value.startswith(("/", ".", "~")) or Path(value).is_absolute()
    if looks_like_path and not Path(value).expanduser().is_dir():
        raise forms.ValidationError(f"No model folder at {value}.")
    return value


class BatchChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, batch: Batch) -> str:
        return f"{batch.name} ({batch.n_judgments} judgments)"


class RewardRunForm(forms.Form):
    """The dashboard's start form; initial values are the trainer's own defaults."""

    batches = BatchChoiceField(queryset=Batch.objects.none(), widget=forms.CheckboxSelectMultiple)
    backbone = forms.CharField(max_length=500, help_text="A local model folder or a cached Hugging Face id.")
    epochs = forms.IntegerField(min_value=1, max_value=100)
    learning_rate = forms.FloatField(min_value=1e-8, max_value=1.0)
    batch_size = forms.IntegerField(min_value=1, max_value=1024, help_text="Pairs per step.")
    eval_fraction = forms.FloatField(min_value=0.0, max_value=0.9, help_text="Share of prompts held out.")
    margin = forms.ChoiceField(
        choices=[("none", "No margin"), ("level", "Margin per rating level (clearly > slightly better)")]
    )
    aggregate = forms.ChoiceField(
        choices=[(name, AGGREGATION_LABELS[name]) for name in AGGREGATIONS],
        help_text="When several annotators judged one item.",
    )
    exclude_flagged = forms.BooleanField(
        required=False, label="Leave out flagged annotators", help_text="As the quality page flags them now."
    )

    OPTION_FIELDS = ("backbone", "epochs", "learning_rate", "batch_size", "eval_fraction", "margin")

    def __init__(self, *args, **kwargs):
        defaults = RewardTrainConfig(backbone=DEFAULT_BACKBONE)
        initial = {name: getattr(defaults, name) for name in self.OPTION_FIELDS}
        initial["aggregate"] = "each"
        kwargs["initial"] = {**initial, **kwargs.get("initial", {})}
        super().__init__(*args, **kwargs)
        self.fields["batches"].queryset = Batch.objects.annotate(n_judgments=Count("items__judgments")).order_by("name")

    def clean_backbone(self) -> str:
        return clean_model_location(self.cleaned_data["backbone"])

    def clean_batches(self):
        batches = self.cleaned_data["batches"]
        empty = [b.name for b in batches if not b.n_judgments]
        if empty:
            raise forms.ValidationError(f"No judgments yet in: {', '.join(empty)}.")
        return batches

    def training_options(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.OPTION_FIELDS}
