"""Query filters refuse what the schema refuses: django-filter quietly ignores a value it cannot read.

Out of the box `?active=maybe`, `?submitted=null` or `?created_before=` filter nothing and answer 200, so a
client's typo returns everything. `StrictFilterBackend` (REST_FRAMEWORK's DEFAULT_FILTER_BACKENDS) answers 400
instead for what the OpenAPI schema does not allow: a boolean filter that is not true/false, an empty value
for a filter that is not free text, and a single-valued filter given more than once.
"""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from rlhf.numbers import INT64_MAX, parse_id

BOOLEAN_VALUES = {"true", "false", "True", "False", "1", "0"}
RANGE = django_filters.RangeFilter
RANGE_SUFFIXES = ("after", "before", "min", "max")
MULTIPLE_VALUE_FILTERS = (django_filters.MultipleChoiceFilter, django_filters.BaseInFilter)
ID_FILTERS = (django_filters.ModelChoiceFilter, django_filters.ModelMultipleChoiceFilter)
# The largest primary key any of our databases can hold: a larger id reaches SQLite as an overflow (a 500), not a miss.
MAX_ID = INT64_MAX


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            check_filter_values(request.query_params, filterset_class.base_filters)
        return super().filter_queryset(request, queryset, view)


def check_filter_values(query_params, filters: dict) -> None:
    errors: dict[str, list[str]] = {}
    for name, filter_ in filters.items():
        # A range filter reads <name>_after / <name>_before (or _min / _max); each must be a value too.
        keys = [name, *(f"{name}_{suffix}" for suffix in RANGE_SUFFIXES)] if isinstance(filter_, RANGE) else [name]
        for key in (key for key in keys if key in query_params):
            values = query_params.getlist(key)
            if len(values) > 1 and not isinstance(filter_, MULTIPLE_VALUE_FILTERS):
                errors.setdefault(key, []).append("Give this filter once.")
            elif isinstance(filter_, django_filters.BooleanFilter) and values[-1] not in BOOLEAN_VALUES:
                errors.setdefault(key, []).append("Expected true or false.")
            elif values[-1] == "" and not isinstance(filter_, django_filters.CharFilter):
                errors.setdefault(key, []).append("Expected a value.")
            elif isinstance(filter_, ID_FILTERS) and any(parse_id(value) is None for value in values):
                # rlhf.numbers' rule: "²" passes isdigit() and fails int(), "٣" passes int().
                errors.setdefault(key, []).append(f"Expected ids between 1 and {MAX_ID}.")
    if errors:
        raise ValidationError(errors)
