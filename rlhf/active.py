"""Which comparison to hand out next: the ones the reward model is least sure about, with some exploration.

One rule for the app's model-ordered assignment and for the simulated curve (bench/curve_active.py), so that the
curve measures what the product does. Plain Python, no Django, no torch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def uncertainty_order(margins: Sequence[float], exploration: float, rng: random.Random) -> list[int]:
    """Indices of `margins` in the order to hand the items out.

    `margins[i]` is the reward model's r(y1) − r(y2) for item i (for a ranking item, the smallest gap between
    neighbouring rewards, see `smallest_gap`); its sign does not matter, only how close it is to 0. Each position is
    filled, with probability `exploration`, by a uniformly random item not handed out yet (so the model's blind
    spots still get data), and otherwise by the remaining item with the smallest |margin| (ties: lower index first).
    Returns a permutation of range(len(margins)).
    """
    if not 0.0 <= exploration <= 1.0:
        raise ValueError(f"exploration must be between 0 and 1, got {exploration!r}")
    for index, margin in enumerate(margins):
        if not math.isfinite(margin):
            raise ValueError(f"margin {index} must be a finite number, got {margin!r}")
    by_uncertainty = sorted(range(len(margins)), key=lambda i: (abs(margins[i]), i))
    at_random = list(range(len(margins)))
    rng.shuffle(at_random)
    taken = [False] * len(margins)
    order: list[int] = []
    next_uncertain = next_random = 0
    while len(order) < len(margins):
        if rng.random() < exploration:
            while taken[at_random[next_random]]:
                next_random += 1
            pick = at_random[next_random]
        else:
            while taken[by_uncertainty[next_uncertain]]:
                next_uncertain += 1
            pick = by_uncertainty[next_uncertain]
        taken[pick] = True
        order.append(pick)
    return order


def smallest_gap(rewards: Sequence[float]) -> float:
    """How sure the model is about the order of a K-way item: the smallest gap between neighbouring rewards."""
    if len(rewards) < 2:
        raise ValueError(f"an item needs at least 2 responses, got {len(rewards)}")
    ordered = sorted(rewards)
    return min(b - a for a, b in zip(ordered, ordered[1:], strict=False))
