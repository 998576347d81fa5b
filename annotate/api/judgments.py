"""Judgments, read only: staff see all, annotators their own."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from annotate.api.permissions import has_permissions
from annotate.models import Judgment


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
    batch = django_filters.NumberFilter(field_name="item__batch")
    annotator_username = django_filters.CharFilter(field_name="annotator__username")
    created = django_filters.DateFromToRangeFilter(
        field_name="created_at", label="Judged between created_after and created_before (dates, inclusive)."
    )

    class Meta:
        model = Judgment
        fields = ["batch", "annotator", "annotator_username", "item", "hit", "rating", "created"]


class JudgmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Judgments in the item's orientation. Annotators see only their own; staff see all."""

    filterset_class = JudgmentFilter

    def get_serializer_class(self):
        if getattr(self, "swagger_fake_view", False) or has_permissions(self.request.user, "annotate.view_judgment"):
            return JudgmentSerializer
        return AnnotatorJudgmentSerializer

    def get_queryset(self) -> QuerySet[Judgment]:
        judgments = Judgment.objects.select_related("item", "annotator").order_by("pk")
        if has_permissions(self.request.user, "annotate.view_judgment"):
            return judgments
        return judgments.filter(annotator_id=self.request.user.pk)
