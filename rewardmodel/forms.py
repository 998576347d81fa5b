from __future__ import annotations

from django import forms

from annotate.forms import BatchesChoiceField, batches_with_counts
from annotate.models import Batch
from arbiter.options import ConfigOptionsForm
from rewardmodel.models import RewardModelRun
from rewardmodel.train import RewardTrainConfig
from rlhf.preferences import AGGREGATION_CHOICES
from rlhf.rankings import RANKING_AGGREGATION_CHOICES
from runs.forms import queue_form_field
from runs.models import RunStatus


class RewardRunForm(ConfigOptionsForm):
    """The dashboard's start form; the trainer options (and their defaults) come from RewardTrainConfig."""

    config_class = RewardTrainConfig
    batches = BatchesChoiceField(queryset=Batch.objects.none(), help_text="Train on the judgments of these batches.")
    aggregate = forms.ChoiceField(
        choices=AGGREGATION_CHOICES,
        initial="each",
        help_text="When several annotators judged one item.",
    )
    ranking_aggregate = forms.ChoiceField(
        choices=RANKING_AGGREGATION_CHOICES,
        initial="each",
        required=False,  # forms made before ranking batches leave it out: "each"
        label="Rankings",
        help_text="When several annotators ranked one item.",
    )
    base_run = forms.ModelChoiceField(
        queryset=RewardModelRun.objects.none(),
        required=False,
        label="Start from reward model",
        help_text="Continue training an earlier run's model (its weights and head) instead of a fresh head on the "
        "backbone; pick its batches too to train on old and new judgments together.",
    )
    exclude_flagged = forms.BooleanField(
        required=False, label="Leave out flagged annotators", help_text="As the quality page flags them now."
    )
    field_order = [
        "batches",
        "base_run",
        "backbone",
        "epochs",
        "learning_rate",
        "batch_size",
        "eval_fraction",
        "margin",
        "pairs_per_ranking",
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["batches"].queryset = batches_with_counts()
        self.fields["base_run"].queryset = RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-pk")
        self.fields["queue"] = queue_form_field()

    def clean_ranking_aggregate(self) -> str:
        return self.cleaned_data["ranking_aggregate"] or "each"

    def clean_batches(self):
        batches = self.cleaned_data["batches"]
        empty = [b.name for b in batches if not b.n_judgments]
        if empty:
            raise forms.ValidationError(f"No judgments yet in: {', '.join(empty)}.")
        return batches
