"""Test data for policy runs: a succeeded reward-model run on a tiny random backbone, and batches of prompts.

The tiny policy itself comes from the `tiny_policy` fixture (tests/policy/conftest.py); its vocabulary is
the words in PROMPT_WORDS, so the prompts below tokenize without unknown words.
"""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone

from annotate.models import Batch, Item, Judgment
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone

PROMPTS = ["hi", "hello", "a b", "c d", "e a", "hi ok", "sure hello", "b e"]
# Small enough to finish in a second or two on a shared CPU.
TINY_REINFORCE = {
    "steps": 2,
    "prompts_per_step": 2,
    "samples_per_prompt": 2,
    "max_new_tokens": 6,
    "eval_every": 2,
    "checkpoint_every": 1,
}


def succeeded_reward_run(folder: Path) -> RewardModelRun:
    """A reward-model run as the reward-model task leaves it: succeeded, its model folder on disk."""
    path = build_tiny_backbone(folder)
    now = timezone.now()
    return RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED,
        artifact_path=path,
        started_at=now,
        finished_at=now,
        metrics={"eval_accuracy": 0.75},
    )


def prompts_batch(name: str = "prompts", prompts: list[str] = PROMPTS) -> Batch:
    """A batch whose items carry the given one-turn prompts (responses do not matter for REINFORCE)."""
    batch = Batch.objects.create(name=name)
    Item.objects.bulk_create(
        Item(batch=batch, external_id=str(n), prompt=[{"role": "user", "content": p}], response_1="a", response_2="b")
        for n, p in enumerate(prompts)
    )
    return batch


def finished_run_with_answers(reward_run: RewardModelRun, answers: int = 4) -> PolicyRun:
    """A succeeded REINFORCE run as the trainer leaves it, with `answers` held-out comparisons."""
    return PolicyRun.objects.create(
        kind=PolicyRun.Kind.REINFORCE,
        status=RunStatus.SUCCEEDED,
        reward_run=reward_run,
        step=2,
        total_steps=2,
        metrics={"reward_policy": 0.4, "reward_reference": 0.1, "win_rate": 0.75, "kl": 0.02},
        eval_samples=[
            {
                "prompt": [{"role": "user", "content": f"question {n}"}],
                "policy_response": f"policy answer {n}",
                "reference_response": f"reference answer {n}",
                "policy_reward": 0.4,
                "reference_reward": 0.1,
            }
            for n in range(answers)
        ],
    )


def judged_batch(annotators, name: str = "prefs") -> Batch:
    """Items whose first answer ("hello sure") every annotator prefers to the second ("a b"), in the tiny policy's
    vocabulary; the last annotator's judgment of the first item is marked wrong (it must not train)."""
    batch = Batch.objects.create(name=name)
    for number, prompt in enumerate(PROMPTS):
        item = Item.objects.create(
            batch=batch,
            external_id=str(number),
            prompt=[{"role": "user", "content": prompt}],
            response_1="hello sure",
            response_2="a b",
        )
        for annotator in annotators:
            Judgment.objects.create(item=item, annotator=annotator, rating=-2 if number % 2 else -1)
    wrong = Judgment.objects.filter(item__batch=batch, annotator=annotators[-1]).order_by("pk").first()
    Judgment.objects.filter(pk=wrong.pk).update(excluded_at=timezone.now())
    return batch
