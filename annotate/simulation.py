"""Simulated annotators: N users who answer an open batch through the services people use (assign_hit, rate_item /
rank_item, submit_hit), each preferring by a scorer's rewards with Bradley–Terry noise.

For a pairwise sample shown as A then B, a simulated annotator picks B with probability
σ((r_B − r_A) / temperature − position_bias): position_bias > 0 favours the response shown first. A share
`random_share` of the answers are coin flips. A ranking is drawn by Plackett–Luce (Gumbel noise on r / temperature,
with the same bias toward earlier positions, spread over the K places). The users are in the group SIMULATED_GROUP:
marked on the quality page and in exports, and left out of exports and reward training unless asked for.

`scorer(prompts, responses) -> rewards` is any function (a reward model's, in rewardmodel.simulation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from annotate.models import SIMULATED_GROUP, Batch, Item, Rating
from annotate.services import AnnotationError, assign_hit, rank_item, rate_item, submit_hit

Scorer = Callable[[list[list[dict]], list[str]], list[float]]

# Limits on what a user asks for.
MAX_SIMULATED_ANNOTATORS = 100
MAX_TEMPERATURE = 100.0
MAX_POSITION_BIAS = 10.0
# A rating is "clearly better" when the reward gap is at least this many temperatures (else "slightly").
CLEAR_GAP = 1.0


class SimulationError(ValueError):
    """Settings or a batch a simulation cannot run with (the message names what)."""


@dataclass(frozen=True)
class SimulationSettings:
    annotators: int = 3
    temperature: float = 1.0
    position_bias: float = 0.0
    random_share: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.annotators <= MAX_SIMULATED_ANNOTATORS:
            raise SimulationError(
                f"annotators must be between 1 and {MAX_SIMULATED_ANNOTATORS}, not {self.annotators}."
            )
        if not 0 < self.temperature <= MAX_TEMPERATURE:
            raise SimulationError(
                f"temperature must be above 0 and at most {MAX_TEMPERATURE:g}, not {self.temperature}."
            )
        if not -MAX_POSITION_BIAS <= self.position_bias <= MAX_POSITION_BIAS:
            raise SimulationError(
                f"position bias must be between -{MAX_POSITION_BIAS:g} and {MAX_POSITION_BIAS:g}, not "
                f"{self.position_bias}."
            )
        if not 0 <= self.random_share <= 1:
            raise SimulationError(f"random share must be between 0 and 1, not {self.random_share}.")


@dataclass
class SimulationResult:
    batch: Batch
    annotators: list[str]
    hits: int
    judgments: int


def simulated_annotator(number: int):
    """The simulated user `simulated-<number>`, made on first use: no password, in SIMULATED_GROUP."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=f"simulated-{number}")
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    group, _ = Group.objects.get_or_create(name=SIMULATED_GROUP)
    user.groups.add(group)
    return user


def simulate_annotators(
    batch: Batch,
    scorer: Scorer,
    n: int = 3,
    *,
    temperature: float = 1.0,
    position_bias: float = 0.0,
    random_share: float = 0.0,
    seed: int = 0,
) -> SimulationResult:
    """Answer the open batch as `n` simulated annotators, HIT by HIT, until it has no work left for them."""
    settings = SimulationSettings(n, temperature, position_bias, random_share, seed)
    if not batch.active:
        raise SimulationError(f"Batch {batch.name} is closed: open it for annotators first.")
    rng = random.Random(f"simulate-{batch.pk}-{seed}")
    scores: dict[int, list[float]] = {}
    names, hits, judgments = [], 0, 0
    for number in range(1, settings.annotators + 1):
        user = simulated_annotator(number)
        names.append(user.username)
        while (hit := assign_hit(user, batch=batch)) is not None:
            slots = list(hit.slots.select_related("item").order_by("position"))
            _score_items([slot.item for slot in slots if slot.item_id not in scores], scorer, scores)
            for slot in slots:
                rewards = scores[slot.item_id]
                if slot.display_order:
                    shown = [rewards[number - 1] for number in slot.display_order]
                    rank_item(hit, slot.position, _ranking(shown, settings, rng))
                else:
                    shown = [rewards[1], rewards[0]] if slot.swapped else rewards
                    rate_item(hit, slot.position, _rating(shown, settings, rng))
                judgments += 1
            try:
                submit_hit(hit)
            except AnnotationError as exc:  # a sample given back meanwhile: the next HIT takes it up
                raise SimulationError(f"{user.username} could not submit HIT {hit.pk}: {exc}") from None
            hits += 1
    return SimulationResult(batch, names, hits, judgments)


def _score_items(items: list[Item], scorer: Scorer, scores: dict[int, list[float]]) -> None:
    prompts, responses, owners = [], [], []
    for item in items:
        for response in item.responses:
            prompts.append(item.chat_messages())
            responses.append(response)
            owners.append(item.pk)
    if not responses:
        return
    rewards = [float(value) for value in scorer(prompts, responses)]
    if len(rewards) != len(responses):
        raise SimulationError(f"The scorer gave {len(rewards)} rewards for {len(responses)} responses.")
    for owner, reward in zip(owners, rewards, strict=True):
        scores.setdefault(owner, []).append(reward)


def _rating(shown: list[float], settings: SimulationSettings, rng: random.Random) -> int:
    """A screen rating (toward the second response shown) for rewards in the order shown."""
    gap = (shown[1] - shown[0]) / settings.temperature
    if rng.random() < settings.random_share:
        return int(rng.choice(Rating.values))
    p_second = 1 / (1 + math.exp(-max(-50.0, min(50.0, gap - settings.position_bias))))
    chosen = 2 if rng.random() < p_second else 1
    return int(Rating.from_choice(chosen, "clear" if abs(gap) >= CLEAR_GAP else "slight"))


def _ranking(shown: list[float], settings: SimulationSettings, rng: random.Random) -> list[list[int]]:
    """Screen positions (1 = shown first) best first, one per tier: Plackett–Luce by Gumbel-perturbed rewards."""
    size = len(shown)
    positions = list(range(1, size + 1))
    if rng.random() < settings.random_share:
        rng.shuffle(positions)
        return [[position] for position in positions]

    def key(position: int) -> float:
        bias = settings.position_bias * (size - position) / max(1, size - 1)  # the first shown gets all of it
        return shown[position - 1] / settings.temperature + bias - math.log(-math.log(rng.random() or 1e-12))

    keys = {position: key(position) for position in positions}
    return [[position] for position in sorted(positions, key=keys.__getitem__, reverse=True)]
