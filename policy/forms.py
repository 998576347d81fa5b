"""The dashboard's start forms; trainer options and their defaults come from the configs (minutes on a CPU)."""

from __future__ import annotations

from django import forms
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import timezone

from annotate.forms import BatchChoiceField, batches_with_counts
from annotate.models import Batch
from arbiter.options import ConfigOptionsForm, model_location
from policy.models import PolicyRun
from policy.reinforce import DPOConfig, ReinforceConfig, SFTConfig
from rewardmodel.models import RewardModelRun
from rlhf.options import OptionError
from rlhf.preferences import AGGREGATION_LABELS, AGGREGATIONS
from rlhf.rankings import RANKING_AGGREGATION_LABELS, RANKING_AGGREGATIONS
from runs.forms import queue_form_field
from runs.models import RunStatus


def reward_run_label(run: RewardModelRun) -> str:
    """Enough to tell runs apart: its batches, backbone, held-out accuracy and date."""
    batches = ", ".join(sorted(str(batch) for batch in run.batches.all())) or "no batches"
    accuracy = run.metrics.get("eval_accuracy")
    accuracy_text = f"held-out accuracy {floatformat(accuracy, 3)}" if accuracy is not None else "no held-out accuracy"
    when = timezone.localtime(run.finished_at or run.created_at).date().isoformat()
    return f"{run} · {batches} · {run.backbone_label} · {accuracy_text} · {when}"


class RewardRunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, run: RewardModelRun) -> str:
        return reward_run_label(run)


def checkpoint_choices(base_run_id: object) -> list[tuple[str, str]]:
    """The base checkpoint's choices for a base run (its id, as a form gives it): the final model, then each
    checkpoint-<step> the run saved; the final model alone while no run is picked."""
    choices = [("", "Final model")]
    try:
        run = PolicyRun.objects.filter(pk=int(str(base_run_id)), status=RunStatus.SUCCEEDED).first()
    except ValueError:
        run = None
    if run is not None:
        choices += [(name, name.replace("checkpoint-", "Checkpoint at step ")) for name in run.checkpoint_names()]
        choices = [choice for choice in choices if choice[0] != "final"]
    return choices


class RunDataForm(ConfigOptionsForm):
    """What both kinds share: the starting weights and where the data comes from."""

    base_run = forms.ModelChoiceField(
        queryset=PolicyRun.objects.none(),
        required=False,
        label="Base policy run",
        help_text="Start from a finished policy run (e.g. an SFT warm start).",
    )
    base_checkpoint = forms.ChoiceField(
        choices=[("", "Final model")],
        required=False,
        label="Base checkpoint",
        help_text="Of the base policy run: its final model or a checkpoint it saved (the list follows the run picked).",
    )
    base_path = forms.CharField(
        max_length=500,
        required=False,
        label="Base model path",
        help_text="A model folder under a model root or a cached Hugging Face id. "
        "Leave both empty for SmolLM2-135M-Instruct.",
    )
    data_batch = BatchChoiceField(queryset=Batch.objects.none(), required=False, label="Batch")
    data_file = forms.FileField(required=False, label="…or a JSONL file")

    config_class: type = ReinforceConfig
    field_order = ["base_run", "base_checkpoint", "base_path", "data_batch", "data_file"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_run"].queryset = PolicyRun.objects.filter(status=RunStatus.SUCCEEDED)
        # Picking a base run reloads the checkpoint list with that run's checkpoints (htmx; see base_checkpoints).
        self.fields["base_run"].widget.attrs.update(
            {
                "hx-get": reverse("policy:base_checkpoints"),
                "hx-target": "#id_base_checkpoint",
                "hx-trigger": "change",
                "hx-swap": "innerHTML",
            }
        )
        picked = self.data.get("base_run") if self.is_bound else self.initial.get("base_run")
        self.fields["base_checkpoint"].choices = checkpoint_choices(picked)
        self.fields["data_batch"].queryset = batches_with_counts()
        self.fields["queue"] = queue_form_field()

    def clean_base_path(self) -> str:
        try:
            return model_location(self.cleaned_data["base_path"], "base_path")
        except OptionError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("base_run") and cleaned.get("base_path"):
            self.add_error("base_path", "Give a base policy run or a base path, not both.")
        if bool(cleaned.get("data_batch")) == bool(cleaned.get("data_file")):
            self.add_error("data_batch", "Pick a batch or upload a file (one of the two).")
        return cleaned

    def start_kwargs(self) -> dict:
        """Keyword arguments for services.start_policy_run."""
        data = self.cleaned_data
        return {
            "base_run": data["base_run"],
            "base_path": data["base_path"],
            "base_checkpoint": data["base_checkpoint"],
            "data_batch": data["data_batch"],
            "data_file": data["data_file"],
            "queue": data["queue"],
            **self.training_options(),
        }


class ReinforceRunForm(RunDataForm):
    reward_run = RewardRunChoiceField(
        queryset=RewardModelRun.objects.none(), label="Reward model", help_text="Only runs that succeeded."
    )

    judge_run = RewardRunChoiceField(
        queryset=RewardModelRun.objects.none(),
        required=False,
        label="Judge (optional)",
        help_text="A second reward model, trained on judgments the first never saw (other batches, or the other half "
        "of a prompt-disjoint split): it scores the held-out answers beside the reward model, never the training.",
    )

    config_class = ReinforceConfig
    field_order = ["reward_run", "judge_run", *RunDataForm.field_order]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reward_run"].queryset = RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED).prefetch_related(
            "batches"
        )
        self.fields["judge_run"].queryset = self.fields["reward_run"].queryset
        self.fields[
            "data_batch"
        ].help_text = "Its items' distinct prompts; a fifth (at most the held-out prompts option) is held out."
        self.fields[
            "data_file"
        ].help_text = 'One prompt per line: {"prompt": "text"} or {"prompt": [{"role": "user", "content": "…"}]}.'

    def clean(self):
        cleaned = super().clean()
        judge, reward = cleaned.get("judge_run"), cleaned.get("reward_run")
        if judge is not None and reward is not None and judge.pk == reward.pk:
            self.add_error("judge_run", "The judge must be another reward model than the one the policy is trained on.")
        return cleaned

    def start_kwargs(self) -> dict:
        data = self.cleaned_data
        return {"reward_run": data["reward_run"], "judge_run": data.get("judge_run"), **super().start_kwargs()}


class SFTRunForm(RunDataForm):
    config_class = SFTConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["data_batch"].help_text = "Demonstrations: each judged item's prompt with its chosen response."
        self.fields[
            "data_file"
        ].help_text = (
            'One dialogue per line: {"messages": [...]} ending with an assistant turn, or {"prompt": …, "response": …}.'
        )


class DPORunForm(RunDataForm):
    """DPO on a batch's judgments, taken as a reward run takes them; a reward model, if picked, judges the answers."""

    reward_run = RewardRunChoiceField(
        queryset=RewardModelRun.objects.none(),
        required=False,
        label="Reward model (judge)",
        help_text="Optional: scores the policy's and the reference's answers to the held-out prompts at the end.",
    )
    aggregate = forms.ChoiceField(
        choices=[(name, AGGREGATION_LABELS[name]) for name in AGGREGATIONS],
        initial="each",
        help_text="When several annotators judged one item (as for a reward model).",
    )
    ranking_aggregate = forms.ChoiceField(
        choices=[(name, RANKING_AGGREGATION_LABELS[name]) for name in RANKING_AGGREGATIONS],
        initial="each",
        required=False,
        label="Rankings",
        help_text="When several annotators ranked one item.",
    )
    exclude_flagged = forms.BooleanField(
        required=False, label="Leave out flagged annotators", help_text="As the quality page flags them now."
    )

    config_class = DPOConfig
    field_order = ["data_batch", "aggregate", "ranking_aggregate", "exclude_flagged", "reward_run", "base_run"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["data_file"]  # pairs come from judgments only
        self.fields["reward_run"].queryset = RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED).prefetch_related(
            "batches"
        )
        self.fields["data_batch"].help_text = "Its judgments: chosen and rejected answers, rankings as weighted pairs."

    def clean_ranking_aggregate(self) -> str:
        return self.cleaned_data["ranking_aggregate"] or "each"

    def clean(self):
        cleaned = super(RunDataForm, self).clean()
        if cleaned.get("base_run") and cleaned.get("base_path"):
            self.add_error("base_path", "Give a base policy run or a base path, not both.")
        if not cleaned.get("data_batch") and "data_batch" not in self.errors:
            self.add_error("data_batch", "Pick a batch of judgments.")
        return cleaned

    def start_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {**super().start_kwargs(), "reward_run": data["reward_run"], "data_file": None}
        return {**kwargs, **{key: data[key] for key in ("aggregate", "ranking_aggregate", "exclude_flagged")}}
