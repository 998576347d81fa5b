"""Win rates with their count and 95 % Wilson interval: the one rule for every win rate the product shows
(reward model, judge, annotators, rankings). No Django: the trainers import it too."""

from __future__ import annotations

import math
from typing import NamedTuple

# z for a two-sided 95 % interval.
Z_95 = 1.959964


def wilson_interval(wins: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial share (95 % for the default z); (0, 1) when n is 0.

    `wins` may be a half-integer: a tie counts half a win.
    """
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


class WinRate(NamedTuple):
    """How often one side won: wins of n (ties count half), the share and its 95 % Wilson interval."""

    wins: float
    n: int
    rate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, wins: float, n: int) -> WinRate:
        if n <= 0:
            return cls(0, 0, None, None, None)
        low, high = wilson_interval(wins, n)
        wins = int(wins) if float(wins).is_integer() else wins
        return cls(wins, n, wins / n, low, high)

    @classmethod
    def from_metrics(cls, metrics: dict, prefix: str) -> WinRate | None:
        """The win rate a run stored as `<prefix>_wins` and `<prefix>_n` (None when it stored none)."""
        wins, n = metrics.get(f"{prefix}_wins"), metrics.get(f"{prefix}_n")
        if wins is None or not n:
            return None
        return cls.of(wins, int(n))

    @property
    def spans_half(self) -> bool:
        """Whether the interval includes 0.5: the data cannot tell the two sides apart yet."""
        return self.n == 0 or (self.low is not None and self.low <= 0.5 <= self.high)

    @property
    def verdict(self) -> str:
        """The interval in words, as the pages say it."""
        if self.n == 0:
            return "no judgments yet"
        if self.spans_half:
            return "not distinguishable from the reference yet"
        return "better than the reference" if self.low > 0.5 else "worse than the reference"

    def as_metrics(self, prefix: str) -> dict:
        """`<prefix>_wins`, `_n`, `_low`, `_high` for a run's metrics (the rate itself under its own name)."""
        return {
            f"{prefix}_wins": self.wins,
            f"{prefix}_n": self.n,
            f"{prefix}_low": self.low,
            f"{prefix}_high": self.high,
        }


def compare_scores(policy_scores: list[float], reference_scores: list[float]) -> WinRate:
    """How often the policy's answer scored above the reference's on the same prompt (a tie counts half)."""
    if len(policy_scores) != len(reference_scores):
        raise ValueError(f"{len(policy_scores)} policy scores for {len(reference_scores)} reference scores")
    wins = sum(1.0 if p > r else 0.5 if p == r else 0.0 for p, r in zip(policy_scores, reference_scores, strict=True))
    return WinRate.of(wins, len(policy_scores))
