"""Ranking samples in the HIT API: the K responses as shown (A, B, C, ...), orders as screen tiers, the rank action.

An order is a list of places best first, each a list of screen positions (1 = the response shown as "A"); a place of
several is a tie (only where the batch allows ties). The same shape the HIT page posts; annotate.services.rank_item
checks it, so the API and the page refuse the same orders with the same words.
"""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from annotate.api.fields import WholeNumberField
from annotate.models import Hit
from rlhf.rankings import MAX_RANKING_SIZE

TIERS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": MAX_RANKING_SIZE},
        "description": "One place: screen positions (1 = 'A'); several are a tie.",
    },
    "description": "Places best first, each a list of screen positions (1 = the response shown as 'A').",
}


@extend_schema_field(TIERS_SCHEMA)
class TiersField(serializers.JSONField):
    """Screen tiers as JSON; a form field may carry them as a JSON string, as the HIT page posts them."""

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                raise ValidationError("Write the order as JSON places of screen positions: [[2], [1], [4]].") from None
        return super().to_internal_value(data)


@extend_schema_field({**TIERS_SCHEMA, "nullable": True})
class TiersOutputField(serializers.JSONField):
    """Screen tiers in a response (null when there are none)."""


class ShownResponseSerializer(serializers.Serializer):
    letter = serializers.CharField(help_text="The label on screen: A, B, C, ... (screen position 1 is A).")
    text = serializers.CharField(allow_blank=True)


class RankSerializer(serializers.Serializer):
    position = WholeNumberField(min_value=1, help_text="The sample's position in the HIT (1-based).")
    ranking = TiersField(
        help_text=(
            "The order so far, best first, as places of screen positions: [[2], [1], [4]] ranks B, then A, then D. "
            "Listing all responses but one completes the order (the one left over is last) and saves the judgment; "
            "fewer is kept as a draft (an existing judgment stays until a new complete order replaces it); [] clears "
            "the draft. A place of several positions is a tie, where the batch allows ties."
        )
    )
    elapsed_ms = WholeNumberField(
        min_value=0,
        default=0,
        help_text=(
            "Time spent on the sample since it was last reported. It is stored with the judgment: time sent with a "
            "partial order before the sample has one is not kept, so send it with the completing order (the HIT "
            "page does)."
        ),
    )

    def validate_position(self, value: int) -> int:
        hit: Hit = self.context["hit"]
        if not hit.slots.filter(position=value).exists():
            raise ValidationError(f"This HIT has no sample {value}.")
        return value
