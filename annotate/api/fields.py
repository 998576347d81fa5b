"""Serializer fields that take a value said one way only."""

from __future__ import annotations

from django.http import QueryDict
from rest_framework import serializers

from rlhf.numbers import INT64_MAX, INT64_MIN, parse_whole_number


class WholeNumberField(serializers.IntegerField):
    """An integer as the schema says: a JSON integer, not "1", 1.0, true or "٣" (DRF's IntegerField takes them all).

    A form-encoded body can only carry text, so there a value is read by rlhf.numbers' rule (plain ASCII digits).
    """

    def __init__(self, **kwargs) -> None:
        # Never past a 64-bit column: a larger number is a database error (a 500), not a miss.
        kwargs.setdefault("max_value", INT64_MAX)
        kwargs.setdefault("min_value", INT64_MIN)
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, str) and isinstance(getattr(self.root, "initial_data", None), QueryDict):
            number = parse_whole_number(data)
            if number is None:
                self.fail("invalid")
            data = number
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)
