"""Items (staff only): read, set the known answer, delete. New items come in through the batch resource."""

from __future__ import annotations

import django_filters
from django.db.models import Count
from rest_framework import mixins, serializers, viewsets

from annotate.api.permissions import HasPermissions
from annotate.models import Item


class ItemSerializer(serializers.ModelSerializer):
    judgments_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "batch",
            "external_id",
            "prompt",
            "prompt_input",
            "response_1",
            "response_2",
            "more_responses",
            "source",
            "gold",
            "judgments_count",
            "created_at",
        ]
        # Content comes in through the importer's checks only; staff may set the known answer.
        read_only_fields = [f for f in fields if f != "gold"]

    def validate_gold(self, value: int | None) -> int | None:
        # A ranking item's known order is in source["ranking"]; gold is a rating between two responses.
        if value is not None and self.instance is not None and self.instance.batch.is_ranking:
            raise serializers.ValidationError("A ranking item has no pairwise known answer; its order is in source.")
        return value


class ItemFilter(django_filters.FilterSet):
    has_gold = django_filters.BooleanFilter(field_name="gold", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Item
        fields = ["batch", "external_id", "gold", "has_gold"]


class ItemViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Staff only. New items come in bulk through POST /api/batches/{id}/items/."""

    permission_classes = [HasPermissions]
    required_permissions = {
        "list": ("annotate.view_item",),
        "retrieve": ("annotate.view_item",),
        "update": ("annotate.change_item",),  # the gold answer
        "partial_update": ("annotate.change_item",),
        "destroy": ("annotate.delete_item",),
    }
    serializer_class = ItemSerializer
    filterset_class = ItemFilter
    queryset = Item.objects.annotate(judgments_count=Count("judgments")).order_by("pk")
