"""Where a model came from and what was built on it: judgments → reward model v1 → policy v1 → ranked samples →
reward model v2 → policy v2, from the links the runs record (a reward run's batches and base run; a policy run's
reward model, base run and the batches "send to annotators" made of its answers).

Lives in the policy app because it reads all three (annotate → rewardmodel → policy); the reward-model page links
to its page rather than importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Model, Q
from django.urls import reverse

from annotate.models import Batch, Judgment
from policy.evaluation import human_win_rate, ranked_win_rate
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun
from rlhf.stats import WinRate

# A lineage page never grows without bound: a batch used by many runs shows the first ones.
MAX_STEPS = 40


@dataclass
class LineageStep:
    """One node of the chain as the page shows it: what it is, a link, its headline figures."""

    kind: str  # "batch" | "reward" | "policy"
    obj: Model
    label: str
    url: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    current: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return self.kind, self.obj.pk


def _key(obj: Model) -> tuple[str, int]:
    if isinstance(obj, Batch):
        return "batch", obj.pk
    if isinstance(obj, RewardModelRun):
        return "reward", obj.pk
    return "policy", obj.pk


def parents_of(obj: Model) -> list[Model]:
    """What `obj` was made from, as recorded on the rows."""
    if isinstance(obj, Batch):
        return list(PolicyRun.objects.filter(Q(annotation_batch=obj) | Q(ranking_batch=obj)).order_by("pk"))
    if isinstance(obj, RewardModelRun):
        base = [obj.base_run] if obj.base_run_id else []
        return [*base, *obj.batches.order_by("pk")]
    parents: list[Model] = []
    if obj.base_run_id:
        parents.append(obj.base_run)
    if obj.reward_run_id:
        parents.append(obj.reward_run)
    if obj.is_dpo and obj.data_batch_id:  # DPO learns from the batch's judgments directly
        parents.append(obj.data_batch)
    return parents


def children_of(obj: Model) -> list[Model]:
    """What was made from `obj`."""
    if isinstance(obj, Batch):
        return [
            *obj.reward_runs.order_by("pk"),
            *obj.policy_runs_trained.filter(kind=PolicyRun.Kind.DPO).order_by("pk"),
        ]
    if isinstance(obj, RewardModelRun):
        return [*obj.derived_runs.order_by("pk"), *obj.policy_runs.order_by("pk")]
    children: list[Model] = list(obj.derived_runs.order_by("pk"))
    children += [batch for batch in (obj.annotation_batch, obj.ranking_batch) if batch is not None]
    return children


def lineage_of(obj: Model) -> list[LineageStep]:
    """Everything `obj` came from (oldest first), `obj` itself, then everything built on it, each before what was
    made from it (a topological order of the recorded links)."""
    seen = {_key(obj)}
    ancestors: list[Model] = []

    def visit_up(node: Model) -> None:
        for parent in parents_of(node):
            if _key(parent) in seen or len(seen) >= MAX_STEPS:
                continue
            seen.add(_key(parent))
            visit_up(parent)
            ancestors.append(parent)

    descendants: list[Model] = []

    def visit_down(node: Model) -> None:
        for child in children_of(node):
            if _key(child) in seen or len(seen) >= MAX_STEPS:
                continue
            seen.add(_key(child))
            visit_down(child)
            descendants.append(child)

    visit_up(obj)
    visit_down(obj)
    nodes = [*ancestors, obj, *reversed(descendants)]
    steps = [step_of(node) for node in nodes]
    for step in steps:
        step.current = step.key == _key(obj)
    return steps


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _win_rate_text(rate: WinRate) -> str:
    """A win rate with its count and 95 % interval, and "not distinguishable" when the interval spans 0.5."""
    text = f"{_rate(rate.rate)} (n = {rate.n}; 95 % {rate.low:.2f}–{rate.high:.2f})"
    return f"{text}, not distinguishable from the reference yet" if rate.spans_half else text


def step_of(obj: Model) -> LineageStep:
    """A node with its headline figures: a batch's judgments, a reward model's held-out accuracy and Kendall's tau,
    a policy's reward-model win rate, KL and human win rate."""
    if isinstance(obj, Batch):
        counts = Batch.objects.filter(pk=obj.pk).aggregate(items=Count("items", distinct=True))
        judgments = Judgment.objects.filter(item__batch=obj).count()
        kind = "rankings" if obj.is_ranking else "pairwise judgments"
        # Today's counts: what a run used is on the run's own step (recorded when it started).
        figures = [("items", str(counts["items"])), (f"{kind} now", str(judgments))]
        return LineageStep("batch", obj, f"Batch {obj.name}", _batch_url(obj), figures)
    if isinstance(obj, RewardModelRun):
        metrics = obj.metrics or {}
        figures = [("status", obj.get_status_display())]
        if obj.judgments_count:
            used = f"{obj.judgments_count} judgment{'s' if obj.judgments_count != 1 else ''}"
            if obj.pairs_count:
                used += f" → {obj.pairs_count} pair{'s' if obj.pairs_count != 1 else ''}"
            figures.append(("trained on", used))
        figures.append(("accuracy", _rate(metrics.get("eval_accuracy"))))
        if metrics.get("eval_ranking_pairs"):
            figures.append(("accuracy on ranking pairs", _rate(metrics.get("eval_ranking_accuracy"))))
        if metrics.get("eval_kendall_tau") is not None:
            figures.append(("Kendall's τ", _rate(metrics.get("eval_kendall_tau"))))
        return LineageStep("reward", obj, f"Reward model {obj.pk}", obj.get_absolute_url(), figures)
    metrics = obj.metrics or {}
    figures = [("status", obj.get_status_display())]
    config = obj.config or {}
    if obj.is_reinforce and config.get("train_prompts") is not None:
        figures.append(("prompts used", f"{config['train_prompts']} + {config.get('eval_prompts', 0)} held out"))
    elif obj.kind == obj.Kind.SFT and config.get("dialogues") is not None:
        figures.append(("dialogues used", str(config["dialogues"])))
    if obj.is_dpo and metrics.get("eval_accuracy") is not None:
        figures.append(("implicit-reward accuracy", _rate(metrics.get("eval_accuracy"))))
    if obj.is_judged:
        rates = [("RM win rate", obj.reward_model_win_rate), ("judge win rate", obj.judge_win_rate)]
        rates += [("human win rate", human_win_rate(obj)), ("ranked above reference", ranked_win_rate(obj))]
        for label, rate in rates:
            if rate is not None and rate.n:
                figures.append((label, _win_rate_text(rate)))
        if metrics.get("kl") is not None:
            figures.append(("KL (nats per answer)", _rate(metrics.get("kl"))))
    return LineageStep("policy", obj, f"Policy {obj}", obj.get_absolute_url(), figures)


def _batch_url(batch: Batch) -> str:
    return reverse("quality:batch", args=[batch.pk])
