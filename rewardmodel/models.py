"""Reward-model training runs: what went in, how it went, where the model is."""

from __future__ import annotations

from pathlib import Path

from django.db import models
from django.urls import reverse

from rewardmodel.train.config import DEFAULT_BACKBONE
from runs.models import TrainingLog, TrainingRun


class RewardModelRun(TrainingRun):
    batches = models.ManyToManyField("annotate.Batch", related_name="reward_runs")
    # Which judgments went in: how many, and a sha256 over (id, rating, updated_at) of each,
    # so two runs on the same data can be told apart from runs on changed data.
    judgments_count = models.PositiveIntegerField(default=0)
    judgments_hash = models.CharField(max_length=64, blank=True)
    pairs_count = models.PositiveIntegerField(default=0)
    # The earlier reward model this one started from (its weights and head); null: a fresh head on the backbone.
    base_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived_runs")

    task_name = "rewardmodel.tasks.train_reward_run"
    artifact_prefix = "reward"

    class Meta(TrainingRun.Meta):
        pass

    def __str__(self) -> str:
        return f"Reward run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("rewardmodel:run_detail", args=[self.pk])

    @property
    def backbone(self) -> str:
        return self.config.get("backbone", "")

    @property
    def backbone_label(self) -> str:
        """The backbone as people call it: the packaged default by name, a folder by its last part, a hub id as is."""
        if self.base_run_id:
            return f"from reward run {self.base_run_id}"
        if not self.backbone:
            return "backbone not recorded"
        if self.backbone == DEFAULT_BACKBONE:
            return "MiniLM-L6 (default)"
        path = Path(self.backbone)
        return path.name if path.is_absolute() else self.backbone

    def level_accuracy(self) -> list[tuple[str, float | None]]:
        """Final eval accuracy overall and per rating level, for the table on the run page."""
        return [
            ("All pairs", self.metrics.get("eval_accuracy")),
            ("Clearly better", self.metrics.get("eval_accuracy_clear")),
            ("Slightly better", self.metrics.get("eval_accuracy_slight")),
        ]

    def source_accuracy(self) -> list[tuple[str, int | None, float | None]]:
        """Held-out accuracy on pairs from rankings apart from pairwise ones: (label, pairs, accuracy)."""
        return [
            (label, self.metrics.get(f"eval_{source}_pairs"), self.metrics.get(f"eval_{source}_accuracy"))
            for label, source in (("Pairwise judgments", "pairwise"), ("Pairs from rankings", "ranking"))
            if self.metrics.get(f"eval_{source}_pairs")
        ]


class RewardModelLog(TrainingLog):
    run = models.ForeignKey(RewardModelRun, on_delete=models.CASCADE, related_name="logs")

    class Meta(TrainingLog.Meta):
        pass
