"""Which comparisons to hand out next: the ones the reward model is least sure about, with some exploration.

One rule for the app's model-ordered assignment (annotate.services.candidate_orders runs it on the database) and for
the simulated curve (bench/curve_active.py runs it on lists through `hand_out`), so that the curve measures what the
product does. Plain Python, no Django, no torch.

The rule, for a HIT of `wanted` items: each place is, with probability `exploration`, an exploration place
(`exploration_places`). Exploration places take the items from a random point of the batch onward, in id order,
wrapping round (`exploration_start`: one random draw, not one per item, so the database reads an index range rather
than sorting the batch at random). The other places take unscored items first, then the smallest uncertainty
(|r(y1) − r(y2)|, or `smallest_gap` for a ranking item), ties to the lower id. Places exploration cannot fill fall to
the uncertainty order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from types import ModuleType


def exploration_places(wanted: int, share: float, rng: random.Random | ModuleType) -> int:
    """How many of `wanted` places go to exploration: each one independently with probability `share`."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"exploration must be between 0 and 1, got {share!r}")
    return sum(rng.random() < share for _ in range(wanted))


def exploration_start(low: int, high: int, rng: random.Random | ModuleType) -> int:
    """The id exploration starts from: uniform over the batch's ids low..high (both included)."""
    return rng.randint(low, high)


# An unscored item sorts as this uncertainty: before every scored one (uncertainties are never negative).
UNSCORED = -1.0


def uncertainty_key(uncertainty: float | None, item_id: int) -> tuple[float, int]:
    """Sort key of the uncertainty order: unscored (None) first, then the smallest uncertainty, then the lower id."""
    return (UNSCORED if uncertainty is None else uncertainty, item_id)


def hand_out(
    uncertainty: Sequence[float | None],
    candidates: Sequence[int],
    wanted: int,
    exploration: float,
    rng: random.Random | ModuleType,
) -> list[int]:
    """The ids of the `wanted` items one HIT takes, by the rule above, on plain lists.

    `uncertainty[i]` is item i's stored uncertainty (None: not scored yet); the batch's ids are 0..len-1, and
    `candidates` are the ids that may still be handed out. The same random draws, in the same order, as the app.
    """
    for index, value in enumerate(uncertainty):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"uncertainty {index} must be a finite number, got {value!r}")
    picked: list[int] = []
    n_random = exploration_places(wanted, exploration, rng)
    if n_random and uncertainty:
        start = exploration_start(0, len(uncertainty) - 1, rng)
        in_order = sorted(candidates)
        picked = ([i for i in in_order if i >= start] + [i for i in in_order if i < start])[:n_random]
    taken = set(picked)
    rest = sorted((i for i in candidates if i not in taken), key=lambda i: uncertainty_key(uncertainty[i], i))
    return picked + rest[: max(0, wanted - len(picked))]


def smallest_gap(rewards: Sequence[float]) -> float:
    """How sure the model is about the order of a K-way item: the smallest gap between neighbouring rewards."""
    if len(rewards) < 2:
        raise ValueError(f"an item needs at least 2 responses, got {len(rewards)}")
    ordered = sorted(rewards)
    return min(b - a for a, b in zip(ordered, ordered[1:], strict=False))
