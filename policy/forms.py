"""The dashboard's start forms; initial values are the trainers' own defaults (minutes on a CPU)."""

from __future__ import annotations

from django import forms
from django.db.models import Count

from annotate.models import Batch
from policy.models import PolicyRun
from policy.reinforce import ReinforceConfig, SFTConfig
from rewardmodel.forms import clean_model_location
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus


class RunDataForm(forms.Form):
    """What both kinds share: the starting weights and where the data comes from."""

    base_run = forms.ModelChoiceField(
        queryset=PolicyRun.objects.none(),
        required=False,
        label="Base policy run",
        help_text="Start from a finished policy run (e.g. an SFT warm start).",
    )
    base_path = forms.CharField(
        max_length=500,
        required=False,
        label="Base model path",
        help_text="A local model folder or a cached Hugging Face id. Leave both empty for SmolLM2-135M-Instruct.",
    )
    data_batch = forms.ModelChoiceField(queryset=Batch.objects.none(), required=False, label="Batch")
    data_file = forms.FileField(required=False, label="…or a JSONL file")

    OPTION_FIELDS: tuple[str, ...] = ()
    config_class: type = ReinforceConfig

    def __init__(self, *args, **kwargs):
        defaults = self.config_class()
        kwargs["initial"] = {**{n: getattr(defaults, n) for n in self.OPTION_FIELDS}, **kwargs.get("initial", {})}
        super().__init__(*args, **kwargs)
        self.fields["base_run"].queryset = PolicyRun.objects.filter(status=RunStatus.SUCCEEDED)
        self.fields["data_batch"].queryset = Batch.objects.annotate(
            n_items=Count("items", distinct=True), n_judgments=Count("items__judgments")
        ).order_by("name")

    def clean_base_path(self) -> str:
        return clean_model_location(self.cleaned_data["base_path"])

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
            "data_batch": data["data_batch"],
            "data_file": data["data_file"],
            **{name: data[name] for name in self.OPTION_FIELDS},
        }


class ReinforceRunForm(RunDataForm):
    reward_run = forms.ModelChoiceField(
        queryset=RewardModelRun.objects.none(), label="Reward model", help_text="Only runs that succeeded."
    )
    steps = forms.IntegerField(min_value=1, max_value=100_000)
    prompts_per_step = forms.IntegerField(min_value=1, max_value=1024)
    samples_per_prompt = forms.IntegerField(min_value=1, max_value=64, label="Samples per prompt (n)")
    kl_coef = forms.FloatField(min_value=0.0, max_value=100.0, label="KL coefficient (β)")
    baseline = forms.ChoiceField(
        choices=[
            ("loo", "Leave-one-out over the n samples of a prompt"),
            ("mean", "Batch mean"),
            ("none", "None (the lecture's plain form)"),
        ]
    )
    learning_rate = forms.FloatField(min_value=1e-9, max_value=1.0)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096)

    OPTION_FIELDS = (
        "steps",
        "prompts_per_step",
        "samples_per_prompt",
        "kl_coef",
        "baseline",
        "learning_rate",
        "max_new_tokens",
    )
    config_class = ReinforceConfig
    field_order = ["reward_run", "base_run", "base_path", "data_batch", "data_file", *OPTION_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reward_run"].queryset = RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED)
        self.fields["data_batch"].help_text = "Its items' distinct prompts; a fifth (at most 16) is held out."
        self.fields[
            "data_file"
        ].help_text = 'One prompt per line: {"prompt": "text"} or {"prompt": [{"role": "user", "content": "…"}]}.'

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("baseline") == "loo" and (cleaned.get("samples_per_prompt") or 0) < 2:
            self.add_error("samples_per_prompt", "The leave-one-out baseline needs at least 2 samples per prompt.")
        return cleaned

    def start_kwargs(self) -> dict:
        return {"reward_run": self.cleaned_data["reward_run"], **super().start_kwargs()}


class SFTRunForm(RunDataForm):
    epochs = forms.IntegerField(min_value=1, max_value=100)
    learning_rate = forms.FloatField(min_value=1e-9, max_value=1.0)
    batch_size = forms.IntegerField(min_value=1, max_value=1024)

    OPTION_FIELDS = ("epochs", "learning_rate", "batch_size")
    config_class = SFTConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["data_batch"].help_text = "Demonstrations: each judged item's prompt with its chosen response."
        self.fields[
            "data_file"
        ].help_text = (
            'One dialogue per line: {"messages": [...]} ending with an assistant turn, or {"prompt": …, "response": …}.'
        )
