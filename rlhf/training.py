"""What every training loop shares, without torch: config checks and the stop signal."""

from __future__ import annotations


class TrainingStopped(Exception):
    """should_stop() returned True: training ended between two steps; nothing after the last checkpoint is saved."""


def require_positive_ints(config: object, names: tuple[str, ...]) -> None:
    """Raise ValueError naming the first of `names` on `config` that is not an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
