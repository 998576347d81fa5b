"""Reward-model training runs: what went in, how it went, where the model is."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from rewardmodel.train.config import DEFAULT_BACKBONE
from runs.models import QueuedJob, TrainingLog, TrainingRun


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
        return self.backbone_name

    @property
    def backbone_name(self) -> str:
        """The backbone model's name, never a site-packages path (the page keeps that in a detail)."""
        if not self.backbone:
            return "backbone not recorded"
        if self.backbone == DEFAULT_BACKBONE:
            return "MiniLM-L6 (default)"
        path = Path(self.backbone)
        return path.name if path.is_absolute() else self.backbone

    def level_accuracy(self) -> list[tuple[str, int | None, float | None]]:
        """Final eval accuracy overall and per rating level, with the held-out pairs each is of: (label, pairs,
        accuracy), for the table on the run page ("Slightly better: 0.000 of 3 pairs" says how little that is)."""
        return [
            ("All pairs", self.metrics.get("eval_pairs"), self.metrics.get("eval_accuracy")),
            ("Clearly better", self.metrics.get("eval_pairs_clear"), self.metrics.get("eval_accuracy_clear")),
            ("Slightly better", self.metrics.get("eval_pairs_slight"), self.metrics.get("eval_accuracy_slight")),
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


class ItemScore(models.Model):
    """A run's rewards for every response of one item: what model-ordered assignment and the review queue read.

    Written by rewardmodel.ordering in chunks; a run that has scored an item never scores it again (resumable).
    """

    run = models.ForeignKey(RewardModelRun, on_delete=models.CASCADE, related_name="item_scores")
    item = models.ForeignKey("annotate.Item", on_delete=models.CASCADE, related_name="+")
    rewards = models.JSONField(help_text="The reward of response n at index n - 1.")
    # r(response 2) - r(response 1): sorting judgments by the model's disagreement happens in SQL on this column.
    gap_2_minus_1 = models.FloatField()
    uncertainty = models.FloatField(help_text="|r1 - r2|, or the smallest gap between neighbouring rewards.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="item_score_unique_per_run")]

    def __str__(self) -> str:
        return f"{self.run} on item {self.item_id}"


class BatchOrdering(models.Model):
    """Which reward model orders a batch's assignment, whether it rescores by itself, and how far scoring got.

    The switch itself (Batch.assignment_order, exploration_share) and the priorities (Item.uncertainty) live in
    annotate, which must not know about reward models.
    """

    class Refresh(models.TextChoices):
        AUTO = "auto", "Automatically, when a newer run on these batches succeeds"
        BUTTON = "button", "Only with the Rescore button"

    class Status(models.TextChoices):
        IDLE = "idle", "Not scored"
        QUEUED = "queued", "Queued"
        SCORING = "scoring", "Scoring"
        DONE = "done", "Scored"
        FAILED = "failed", "Failed"

    batch = models.OneToOneField("annotate.Batch", on_delete=models.CASCADE, related_name="model_ordering")
    run = models.ForeignKey(
        RewardModelRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the latest succeeded run trained on this batch.",
    )
    refresh = models.CharField(max_length=10, choices=Refresh.choices, default=Refresh.AUTO)
    scored_run = models.ForeignKey(
        RewardModelRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.IDLE)
    items_scored = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(default=0)
    items_per_second = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Ordering of {self.batch}"


class ScoreJob(QueuedJob):
    """A prompt and two responses scored by a run's model in a worker (queue `celery`), never in a web process: the
    score box and `POST /api/reward-runs/{id}/score/` make one and poll it. Sent through the runs' outbox."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        LOADING = "loading", "Loading the model"
        SCORING = "scoring", "Scoring"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINISHED = (Status.DONE, Status.FAILED)
    task_name = "rewardmodel.tasks.score_job"

    run = models.ForeignKey(RewardModelRun, on_delete=models.CASCADE, related_name="score_jobs")
    prompt = models.TextField()
    response_1 = models.TextField()
    response_2 = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reward_1 = models.FloatField(null=True, blank=True)
    reward_2 = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Scoring {self.pk} with {self.run}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def preferred(self) -> int | None:
        """The response with the higher reward; None while unscored or for a tie."""
        if self.reward_1 is None or self.reward_2 is None or self.reward_1 == self.reward_2:
            return None
        return 1 if self.reward_1 > self.reward_2 else 2
