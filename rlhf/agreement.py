"""Krippendorff's alpha, written once: ordinal on the four-level ratings (annotate.quality), interval on ranks
(rlhf.rankings.krippendorff_alpha_ranks). No Django; the maintained `krippendorff` package does the arithmetic."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import krippendorff
import numpy as np


def krippendorff_alpha(
    values_by_unit: Iterable[Sequence[float]], level: str, value_domain: Sequence[float] | None = None
) -> float:
    """Krippendorff's alpha over units (an item, or an (item, response)) and the values its annotators gave.

    Which annotator gave which value does not change alpha, so a unit is just its values. Units with fewer than two
    values carry no information and are skipped. 1 means perfect agreement, 0 agreement at chance, below 0 systematic
    disagreement; nan when nothing is pairable or a single value is used throughout (no expected disagreement).
    `level`: "ordinal" (with `value_domain`, the scale in order) or "interval".
    """
    units = [list(values) for values in values_by_unit if len(values) >= 2]
    if len({value for values in units for value in values}) < 2:
        return math.nan
    reliability = np.full((max(len(values) for values in units), len(units)), np.nan)
    for column, values in enumerate(units):
        reliability[: len(values), column] = values
    alpha = krippendorff.alpha(reliability_data=reliability, value_domain=value_domain, level_of_measurement=level)
    return float(alpha) if math.isfinite(alpha) else math.nan
