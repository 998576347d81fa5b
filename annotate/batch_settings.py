"""The rules a batch's kind settings follow, checked alike by the admin's batch form and the API's serializer."""

from __future__ import annotations

from django.db.models import F, Func, IntegerField

from annotate.models import Batch
from rlhf.rankings import MAX_RANKING_SIZE, MIN_RANKING_SIZE


def kind_setting_errors(batch: Batch | None, kind: str, ranking_size: int | None, allow_ties: bool) -> dict[str, str]:
    """Field -> why, for kind / ranking_size / allow_ties that do not fit together or the batch's items.

    `batch` is the batch being changed (None when creating one). A pairwise batch takes no ranking size and no
    ties; a ranking size is 3 to 9. A batch with items keeps its kind, and a fixed ranking size must match every
    item's number of responses.
    """
    errors: dict[str, str] = {}
    if kind == Batch.Kind.PAIRWISE:
        if ranking_size is not None:
            errors["ranking_size"] = "Only a ranking batch has a ranking size; leave it empty for a pairwise batch."
        if allow_ties:
            errors["allow_ties"] = "Only a ranking batch can allow ties."
    elif ranking_size is not None and not MIN_RANKING_SIZE <= ranking_size <= MAX_RANKING_SIZE:
        errors["ranking_size"] = f"A ranking has {MIN_RANKING_SIZE} to {MAX_RANKING_SIZE} responses."
    if batch is None or batch.pk is None or errors:
        return errors
    items = batch.items.all()
    if kind != batch.kind and items.exists():
        errors["kind"] = f"The batch already has items of kind {batch.kind}; a batch keeps its kind once it has items."
    elif kind == Batch.Kind.RANKING and ranking_size is not None and ranking_size != batch.ranking_size:
        # A batch has at most IMPORT_MAX_ROWS-ish items; their extra responses' counts are read, not their texts.
        counts = items.annotate(
            extra=Func(F("more_responses"), function="jsonb_array_length", output_field=IntegerField())
        ).values_list("extra", flat=True)
        sizes = sorted({2 + extra for extra in counts.order_by().distinct()} - {ranking_size})
        if sizes:
            found = ", ".join(map(str, sizes))
            errors["ranking_size"] = f"The batch has items with {found} responses; every item must have {ranking_size}."
    return errors
