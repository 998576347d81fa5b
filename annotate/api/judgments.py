"""Judgments, read only: staff see all, annotators their own."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from annotate.api.permissions import is_staff
from annotate.models import Batch, Judgment


class JudgmentSerializer(serializers.ModelSerializer):
    batch = serializers.IntegerField(source="item.batch_id", read_only=True)
    annotator_username = serializers.CharField(source="annotator.username", read_only=True)
    rating_label = serializers.CharField(source="get_rating_display", read_only=True)
    chosen = serializers.IntegerField(read_only=True, help_text="The winning response, 1 or 2 (item orientation).")
    strength = serializers.CharField(read_only=True, help_text="clear or slight")

    class Meta:
        model = Judgment
        fields = [
            "id",
            "item",
            "batch",
            "annotator",
            "annotator_username",
            "hit",
            "rating",
            "rating_label",
            "chosen",
            "strength",
            "swapped",
            "time_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AnnotatorJudgmentSerializer(JudgmentSerializer):
    """An annotator's own judgment, without which side was shown first (that stays on the server)."""

    class Meta(JudgmentSerializer.Meta):
        fields = [f for f in JudgmentSerializer.Meta.fields if f != "swapped"]
        read_only_fields = fields


class JudgmentFilter(django_filters.FilterSet):
    # A batch id, as the schema says (a NumberFilter would take 0.5 and match nothing).
    batch = django_filters.ModelChoiceFilter(field_name="item__batch", queryset=Batch.objects.all())
    annotator_username = django_filters.CharFilter(field_name="annotator__username")
    created = django_filters.DateFromToRangeFilter(
        field_name="created_at", label="Judged between created_after and created_before (dates, inclusive)."
    )

    class Meta:
        model = Judgment
        fields = ["batch", "annotator", "annotator_username", "item", "hit", "rating", "created"]


def judgment_for_role(many: bool = False) -> PolymorphicProxySerializer:
    """Schema only: staff get JudgmentSerializer's fields, annotators AnnotatorJudgmentSerializer's."""
    return PolymorphicProxySerializer(
        component_name="JudgmentForRole",
        serializers=[JudgmentSerializer, AnnotatorJudgmentSerializer],
        resource_type_field_name=None,
        many=many,
    )


@extend_schema_view(
    list=extend_schema(responses=judgment_for_role(many=True)),
    retrieve=extend_schema(responses=judgment_for_role()),
)
class JudgmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Judgments in the item's orientation. Annotators see only their own; staff see all."""

    filterset_class = JudgmentFilter

    def get_serializer_class(self):
        if getattr(self, "swagger_fake_view", False) or is_staff(self.request):
            return JudgmentSerializer
        return AnnotatorJudgmentSerializer

    def get_queryset(self) -> QuerySet[Judgment]:
        judgments = Judgment.objects.select_related("item", "annotator").order_by("pk")
        if is_staff(self.request):
            return judgments
        return judgments.filter(annotator_id=self.request.user.pk)
