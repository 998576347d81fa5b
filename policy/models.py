"""Policy training runs (SFT warm starts, REINFORCE against a reward model, DPO on judgments), their logs and
samples."""

from __future__ import annotations

from pathlib import Path

from django.db import models
from django.urls import reverse

from rlhf.stats import WinRate
from runs import storage
from runs.models import TrainingLog, TrainingRun


class PolicyRun(TrainingRun):
    class Kind(models.TextChoices):
        SFT = "sft", "SFT"
        REINFORCE = "reinforce", "REINFORCE"
        DPO = "dpo", "DPO"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REINFORCE)
    # The reward model REINFORCE optimises against; for DPO, optional: the judge of its held-out answers; null for SFT.
    reward_run = models.ForeignKey(
        "rewardmodel.RewardModelRun", null=True, blank=True, on_delete=models.PROTECT, related_name="policy_runs"
    )
    # An independent judge (REINFORCE): a second reward model, trained on judgments the first never saw, that scores
    # the held-out answers beside it at every evaluation and never touches training.
    judge_run = models.ForeignKey(
        "rewardmodel.RewardModelRun", null=True, blank=True, on_delete=models.PROTECT, related_name="judged_policy_runs"
    )
    # Where the starting weights come from: another policy run (an SFT warm start) or a path / hub id;
    # neither means the default SmolLM2-135M-Instruct.
    base_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived_runs")
    base_path = models.CharField(max_length=500, blank=True)
    # Which of the base run's saved models: "" (its final model) or one of its "checkpoint-<step>" folders.
    base_checkpoint = models.CharField(max_length=100, blank=True)
    # Prompts (REINFORCE) or demonstrations (SFT): a batch's items or an uploaded JSONL file; DPO: a batch's judgments.
    data_batch = models.ForeignKey(
        "annotate.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="policy_runs_trained"
    )
    data_file = models.FileField(upload_to="policy/data/", blank=True)
    # The reward model's final comparison on held-out prompts, kept for "send to annotators":
    # [{prompt, policy_response, reference_response, policy_reward, reference_reward}, ...]
    eval_samples = models.JSONField(default=list, blank=True)
    # The batch "send to annotators" made of eval_samples (policy vs reference).
    annotation_batch = models.ForeignKey(
        "annotate.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="policy_runs_evaluated"
    )

    # The ranking batch "send to annotators" made: per held-out prompt, the policy's n samples and the reference's
    # answer as one K-way item. Its rankings can train the next reward model (the closed loop).
    ranking_batch = models.ForeignKey(
        "annotate.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="policy_runs_ranked"
    )

    task_name = "policy.tasks.train_policy_run"
    artifact_prefix = "policy"

    class Meta(TrainingRun.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("policy:run_detail", args=[self.pk])

    def forget_after(self, step: int) -> None:
        super().forget_after(step)
        self.samples.filter(step__gt=step).delete()

    @property
    def is_reinforce(self) -> bool:
        return self.kind == self.Kind.REINFORCE

    @property
    def reward_model_win_rate(self) -> WinRate | None:
        """The final evaluation's win rate over the reference by the reward model trained against, with its count
        and interval (a run from before counts were stored: its rate times the held-out prompts it had)."""
        metrics = self.metrics or {}
        stored = WinRate.from_metrics(metrics, "win")
        if stored is not None or metrics.get("win_rate") is None:
            return stored
        n = min(int(self.config.get("eval_prompts") or 0), int(self.config.get("eval_max_prompts") or 1 << 30))
        return WinRate.of(round(2 * metrics["win_rate"] * n) / 2, n) if n else None

    @property
    def judge_win_rate(self) -> WinRate | None:
        """The final evaluation's win rate by the independent judge, when the run named one."""
        return WinRate.from_metrics(self.metrics or {}, "judge_win")

    @property
    def is_dpo(self) -> bool:
        return self.kind == self.Kind.DPO

    @property
    def is_judged(self) -> bool:
        """Learns from preferences (REINFORCE on a reward model, DPO on judgments): its held-out answers are compared
        with the reference's and can go to annotators."""
        return self.kind in (self.Kind.REINFORCE, self.Kind.DPO)

    @property
    def base_label(self) -> str:
        if self.base_run_id:
            return f"{self.base_run}, {self.base_checkpoint}" if self.base_checkpoint else str(self.base_run)
        return self.base_path or "SmolLM2-135M-Instruct (default)"

    @property
    def data_label(self) -> str:
        if self.data_batch_id:
            return f"batch {self.data_batch.name}"
        if self.data_file:
            return f"file {Path(self.data_file.name).name}"
        return "—"

    @property
    def model_dir(self) -> Path | None:
        """The trained model itself: `final/` inside the run folder."""
        if self.artifact_dir is None:
            return None
        final = self.artifact_dir / "final"
        return final if final.is_dir() else self.artifact_dir

    def checkpoint_names(self) -> list[str]:
        """Downloadable folders of the run: "final" first, then checkpoint-<step> in step order."""
        location = self.artifact_location
        if location is None:
            return []
        folders = storage.subfolders(location)  # a listing, not a download, when the run lives in the object store
        checkpoints = [name for name in folders if name.startswith("checkpoint-")]
        checkpoints.sort(key=lambda name: int(name.rsplit("-", 1)[1]) if name.rsplit("-", 1)[1].isdigit() else 0)
        return (["final"] if "final" in folders else []) + checkpoints

    def sample_steps(self) -> list[int]:
        return list(self.samples.order_by("step").values_list("step", flat=True).distinct())


class PolicyLog(TrainingLog):
    run = models.ForeignKey(PolicyRun, on_delete=models.CASCADE, related_name="logs")

    class Meta(TrainingLog.Meta):
        pass


class PolicySample(models.Model):
    """One sampled answer at one step, for the run page's sample browser."""

    class Kind(models.TextChoices):
        TRAIN = "train", "Training rollout"
        EVAL = "eval", "Policy on held-out prompt"
        REFERENCE = "reference", "Reference on held-out prompt"

    run = models.ForeignKey(PolicyRun, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRAIN)
    prompt = models.JSONField()  # chat messages, as the policy saw them
    response = models.TextField()
    reward = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["step", "id"]
        indexes = [models.Index(fields=["run", "step"], name="policy_sample_run_step")]

    def __str__(self) -> str:
        return f"{self.run} step {self.step} {self.kind}"

    @property
    def instruction(self) -> str:
        if isinstance(self.prompt, list) and self.prompt:
            return str(self.prompt[-1].get("content", ""))
        return str(self.prompt)
