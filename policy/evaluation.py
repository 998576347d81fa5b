"""Human evaluation of a finished policy run: its held-out answers sent to annotators beside the
reference policy's, and the human win rate with its interval."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from django.db import transaction

from annotate.importers import ImportFileError, Record, add_items, parse_record
from annotate.models import Batch, Judgment
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from runs.models import RunStatus

# Batch settings for "send to annotators": HITs of this many comparisons.
ANNOTATION_SAMPLES_PER_HIT = 6
ANNOTATION_GUIDELINES = (
    "Each sample shows one prompt and two AI responses to it. Pick the response you would rather get, "
    "and say whether it is clearly or only slightly better."
)


# Human evaluation --------------------------------------------------------------------------------


def send_to_annotators(
    run: PolicyRun, user, *, overlap: int = 1, seed: int | None = None, priority: int | None = None
) -> Batch:
    """A new batch pairing the policy's answer with the reference's on each held-out prompt.

    Which of response_1 / response_2 is the policy is random per item (and the HIT page
    swaps sides at random again), so position says nothing; `Item.source` records it.
    Sending twice returns the batch made the first time. The batch goes to the front of the annotators' queue
    (a priority above every active batch) unless `priority` says otherwise.
    """
    if run.annotation_batch_id:
        return run.annotation_batch
    if not run.is_reinforce or run.status != RunStatus.SUCCEEDED:
        raise PolicyRunError(f"Only a REINFORCE run that succeeded can be sent to annotators ({run} is {run.status}).")
    if not run.eval_samples:
        raise PolicyRunError(f"{run} kept no held-out answers to compare.")
    if overlap < 1:
        raise PolicyRunError("Judgments per comparison (overlap) must be at least 1.")
    rng = random.Random(f"policy-{run.pk}" if seed is None else seed)
    with transaction.atomic():
        locked = PolicyRun.objects.select_for_update().get(pk=run.pk)
        if locked.annotation_batch_id:  # a concurrent click got there first
            run.annotation_batch = locked.annotation_batch
            return run.annotation_batch
        batch = Batch.objects.create(
            name=_free_batch_name(f"policy-{run.pk}-vs-reference"),
            guidelines=ANNOTATION_GUIDELINES,
            samples_per_hit=ANNOTATION_SAMPLES_PER_HIT,
            overlap=overlap,
            priority=Batch.objects.top_priority() if priority is None else priority,
            created_by=user if getattr(user, "pk", None) else None,
        )
        try:
            add_items(batch, _comparisons_of(run.pk, locked.eval_samples, rng), rng)
        except ImportFileError as exc:
            raise PolicyRunError(f"{run}: a held-out answer cannot be sent to annotators: {exc}") from None
        PolicyRun.objects.filter(pk=run.pk).update(annotation_batch=batch)
        run.annotation_batch = batch
    return batch


def _comparisons_of(run_pk: int, eval_samples: list[dict], rng: random.Random) -> list:
    """The held-out answers as import records ("plain" format), checked as an imported file's would be.

    Which of response_1 / response_2 is the policy is drawn per sample; `source` records it.
    """
    comparisons = []
    for number, sample in enumerate(eval_samples, start=1):
        policy_side = rng.choice((1, 2))
        responses = {policy_side: sample["policy_response"], 3 - policy_side: sample["reference_response"]}
        record = Record(
            {
                "id": f"policy-{run_pk}-eval-{number}",
                "prompt": sample["prompt"],
                "response_1": responses[1],
                "response_2": responses[2],
            },
            f"held-out answer {number}",
            number,
        )
        comparison = parse_record(record, "plain")
        comparison.source = {
            "policy_run": run_pk,
            "policy_response": policy_side,
            "reference_response": 3 - policy_side,
            "policy_reward": sample.get("policy_reward"),
            "reference_reward": sample.get("reference_reward"),
        }
        comparisons.append(comparison)
    return comparisons


def _free_batch_name(name: str) -> str:
    candidate, n = name, 1
    while Batch.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


class WinRate(NamedTuple):
    wins: int
    n: int
    rate: float | None
    low: float | None
    high: float | None


def wilson_interval(wins: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial share (95 % for the default z)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def human_win_rate(run: PolicyRun) -> WinRate:
    """How often annotators preferred the policy over the reference, with a 95 % Wilson interval.

    Every judgment counts once (the four-level scale always picks a side, so there are no ties).
    """
    if not run.annotation_batch_id:
        return WinRate(0, 0, None, None, None)
    # Pairwise judgments only: a ranking (rating None) has no single chosen side.
    judgments = Judgment.objects.filter(item__batch_id=run.annotation_batch_id, rating__isnull=False).select_related(
        "item"
    )
    wins = n = 0
    for judgment in judgments:
        policy_side = judgment.item.source.get("policy_response")
        if policy_side not in (1, 2):
            continue
        n += 1
        wins += judgment.chosen == policy_side
    if n == 0:
        return WinRate(0, 0, None, None, None)
    low, high = wilson_interval(wins, n)
    return WinRate(wins, n, wins / n, low, high)
