"""Human evaluation of a finished policy run: its held-out answers sent to annotators beside the
reference policy's, and the human win rate with its interval."""

from __future__ import annotations

import random

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from annotate.importers import ImportFileError, Record, add_items, parse_record
from annotate.models import Batch, Item, Judgment
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from rlhf.rankings import MAX_RANKING_SIZE, MIN_RANKING_SIZE, ranks_of
from rlhf.stats import WinRate
from runs.models import RunStatus

# What "send to annotators" makes: a pairwise batch (policy vs reference) or a ranking batch (n + 1 answers).
SEND_PAIRWISE, SEND_RANKING = "pairwise", "ranking"
SEND_KINDS = (SEND_PAIRWISE, SEND_RANKING)
SEND_KIND_LABELS = {
    SEND_PAIRWISE: "Pairwise: the policy's answer vs the reference's",
    SEND_RANKING: "Ranking: the policy's n answers and the reference's, best first",
}
RANKING_GUIDELINES = (
    "Each sample shows one prompt and several AI responses to it. Rank them from the one you would most like to get "
    "to the one you would least like to get."
)
# Batch settings for "send to annotators": HITs of this many comparisons.
ANNOTATION_SAMPLES_PER_HIT = 6
ANNOTATION_GUIDELINES = (
    "Each sample shows one prompt and two AI responses to it. Pick the response you would rather get, "
    "and say whether it is clearly or only slightly better."
)


# Human evaluation --------------------------------------------------------------------------------


def send_to_annotators(
    run: PolicyRun,
    user,
    *,
    overlap: int = 1,
    seed: int | None = None,
    priority: int | None = None,
    kind: str = SEND_PAIRWISE,
) -> Batch:
    """A new batch pairing the policy's answer with the reference's on each held-out prompt.

    Which of response_1 / response_2 is the policy is random per item (and the HIT page
    swaps sides at random again), so position says nothing; `Item.source` records it.
    Sending twice returns the batch made the first time. The batch goes to the front of the annotators' queue
    (a priority above every active batch) unless `priority` says otherwise.

    `kind="ranking"` makes a ranking batch instead (`send_rankings_to_annotators`).
    """
    if kind not in SEND_KINDS:
        raise PolicyRunError(f"kind must be one of {', '.join(SEND_KINDS)}, not {kind!r}.")
    if kind == SEND_RANKING:
        return send_rankings_to_annotators(run, user, overlap=overlap, seed=seed, priority=priority)
    if run.annotation_batch_id:
        return run.annotation_batch
    _check_sendable(run, overlap)
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


def _check_sendable(run: PolicyRun, overlap: int) -> None:
    if not run.is_judged or run.status != RunStatus.SUCCEEDED:
        raise PolicyRunError(
            f"Only a REINFORCE or DPO run that succeeded can be sent to annotators ({run} is {run.status})."
        )
    if not run.eval_samples:
        raise PolicyRunError(f"{run} kept no held-out answers to compare.")
    if overlap < 1:
        raise PolicyRunError("Judgments per comparison (overlap) must be at least 1.")
    try:
        Batch._meta.get_field("overlap").run_validators(overlap)  # the batch's own bounds (its column's range)
    except ValidationError as exc:
        raise PolicyRunError(f"Judgments per comparison (overlap): {' '.join(exc.messages)}") from None


def send_rankings_to_annotators(
    run: PolicyRun, user, *, overlap: int = 1, seed: int | None = None, priority: int | None = None
) -> Batch:
    """A new ranking batch: per held-out prompt, the policy's n answers and the reference's as one K-way item
    (K = n + 1, at most MAX_RANKING_SIZE; the first answers are kept when n is larger).

    The responses are in a random order per item (and the HIT shuffles them again per annotator); `Item.source`
    records which numbers are the policy's and which is the reference, never shown. Sending twice returns the batch
    made the first time; the queue priority is as for `send_to_annotators`.
    """
    if run.ranking_batch_id:
        return run.ranking_batch
    _check_sendable(run, overlap)
    samples = run.eval_samples
    kept = min(len(samples[0].get("policy_responses") or []), MAX_RANKING_SIZE - 1)
    if kept + 1 < MIN_RANKING_SIZE:
        raise PolicyRunError(
            f"{run} kept {kept} answer(s) per held-out prompt; a ranking needs at least {MIN_RANKING_SIZE - 1} "
            "(train with samples per prompt of 2 or more)."
        )
    rng = random.Random(f"policy-{run.pk}-ranking" if seed is None else seed)
    items = []
    for number, sample in enumerate(samples, start=1):
        answers = [
            (text, "policy", reward)
            for text, reward in zip(sample["policy_responses"][:kept], sample["policy_rewards"][:kept], strict=True)
        ]
        answers.append((sample["reference_response"], "reference", sample.get("reference_reward")))
        answers = [(_answer_text(run, number, text), who, reward) for text, who, reward in answers]
        rng.shuffle(answers)
        items.append(
            Item(
                external_id=f"policy-{run.pk}-eval-{number}",
                prompt=sample["prompt"],
                response_1=answers[0][0],
                response_2=answers[1][0],
                more_responses=[text for text, _, _ in answers[2:]],
                source={
                    "policy_run": run.pk,
                    "policy_responses": [n for n, (_, who, _) in enumerate(answers, start=1) if who == "policy"],
                    "reference_response": next(n for n, (_, who, _) in enumerate(answers, start=1) if who != "policy"),
                    "rewards": [reward for _, _, reward in answers],
                },
            )
        )
    with transaction.atomic():
        locked = PolicyRun.objects.select_for_update().get(pk=run.pk)
        if locked.ranking_batch_id:  # a concurrent click got there first
            run.ranking_batch = locked.ranking_batch
            return run.ranking_batch
        batch = Batch.objects.create(
            name=_free_batch_name(f"policy-{run.pk}-ranked"),
            kind=Batch.Kind.RANKING,
            ranking_size=kept + 1,
            guidelines=RANKING_GUIDELINES,
            samples_per_hit=ANNOTATION_SAMPLES_PER_HIT,
            overlap=overlap,
            priority=Batch.objects.top_priority() if priority is None else priority,
            created_by=user if getattr(user, "pk", None) else None,
        )
        for item in items:
            item.batch = batch
        Item.objects.bulk_create(items)
        PolicyRun.objects.filter(pk=run.pk).update(ranking_batch=batch)
        run.ranking_batch = batch
    return batch


def _answer_text(run: PolicyRun, number: int, text: str) -> str:
    """An answer as an item holds it, under the importer's rules: stripped, not empty, at most ITEM_MAX_CHARS."""
    text = (text or "").strip()
    if not text:
        raise PolicyRunError(f"{run}: an answer to held-out prompt {number} is empty; it cannot be ranked.")
    if len(text) > settings.ITEM_MAX_CHARS:
        raise PolicyRunError(
            f"{run}: an answer to held-out prompt {number} has {len(text):,} characters, more than the limit of "
            f"{settings.ITEM_MAX_CHARS:,} per text (setting ITEM_MAX_CHARS)."
        )
    return text


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


def send_to_simulated_annotators(
    run: PolicyRun, reward_run, *, kind: str = SEND_PAIRWISE, annotators: int = 3, **settings
) -> Batch:
    """Have the batch "send to annotators" made of the run (pairwise or ranking) answered by simulated annotators who
    prefer by `reward_run`'s scores (annotate.simulation), on a worker: the task goes to the `celery` queue once this
    transaction commits. The judge should not be the run's own reward model (it would only echo the training)."""
    from annotate.simulation import SimulationError, SimulationSettings
    from rewardmodel.tasks import simulate_annotators

    batch = run.ranking_batch if kind == SEND_RANKING else run.annotation_batch
    if batch is None:
        raise PolicyRunError(f"{run} has no {kind} batch yet: send it to annotators first.")
    if reward_run is None or reward_run.status != RunStatus.SUCCEEDED or reward_run.artifact_location is None:
        raise PolicyRunError("Pick a reward model that succeeded for the simulated annotators to prefer by.")
    if reward_run.pk == run.reward_run_id:
        raise PolicyRunError(
            "The simulated annotators must not prefer by the run's own reward model: pick a judge trained on other "
            "judgments."
        )
    try:
        SimulationSettings(annotators, **settings)
    except SimulationError as exc:
        raise PolicyRunError(str(exc)) from None
    if not batch.active:
        raise PolicyRunError(f"Batch {batch.name} is closed: open it for annotators first.")
    transaction.on_commit(
        lambda: simulate_annotators.apply_async((batch.pk, reward_run.pk, annotators, settings), queue="celery")
    )
    return batch


def _free_batch_name(name: str) -> str:
    candidate, n = name, 1
    while Batch.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


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
    return WinRate.of(wins, n)


def ranked_win_rate(run: PolicyRun) -> WinRate:
    """From the ranking batch: how often annotators ranked one of the policy's answers above the reference's.

    Every (judgment, policy answer) counts once; a tie with the reference counts as no win.
    """
    if not run.ranking_batch_id:
        return WinRate(0, 0, None, None, None)
    wins = n = 0
    for judgment in Judgment.objects.filter(item__batch_id=run.ranking_batch_id).select_related("item"):
        source = judgment.item.source
        reference = source.get("reference_response")
        if judgment.ranking is None or reference is None:
            continue
        ranks = ranks_of(judgment.ranking)
        for number in source.get("policy_responses", []):
            n += 1
            wins += ranks[number] < ranks[reference]
    return WinRate.of(wins, n)
