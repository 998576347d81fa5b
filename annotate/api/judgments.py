"""Judgments, read only: staff see all, annotators their own."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from annotate.api.permissions import has_permissions
from annotate.models import Batch, Judgment, Rating
from rlhf.preferences import winner_of
from rlhf.rankings import to_screen_tiers


class ChosenField(serializers.IntegerField):
    """A pairwise judgment's winning response; null for a ranking (it has no rating)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, judgment: Judgment) -> int | None:
        return None if judgment.is_ranking else judgment.chosen


class StrengthField(serializers.CharField):
    """A pairwise judgment's strength (clear or slight); null for a ranking."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, judgment: Judgment) -> str | None:
        return None if judgment.is_ranking else judgment.strength


class JudgmentSerializer(serializers.ModelSerializer):
    batch = serializers.IntegerField(source="item.batch_id", read_only=True)
    annotator_username = serializers.CharField(source="annotator.username", read_only=True)
    rating_label = serializers.CharField(source="get_rating_display", read_only=True)
    chosen = ChosenField(help_text="The winning response, 1 or 2 (item orientation); null for a ranking.")
    strength = StrengthField(help_text="clear or slight; null for a ranking.")
    ranking = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="Ranking items: tiers of response numbers, best first (item orientation); null: pairwise.",
    )

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
            "ranking",
            "display_order",
            "swapped",
            "time_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AnnotatorJudgmentSerializer(JudgmentSerializer):
    """An annotator's own judgment as they gave it: rating, label and winner in the screen's orientation.

    Which side was shown where stays on the server: beside the HIT API's screen ratings, an item-orientation
    rating (or `swapped`) would tell the annotator which of their samples were swapped.
    """

    rating = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="As clicked: -2..2 toward 'AI Response 2'; null for a ranking."
    )
    rating_label = serializers.CharField(
        read_only=True, allow_null=True, help_text="The rating's label as it was on screen; null for a ranking."
    )
    chosen = ChosenField(help_text="The winning response, 1 or 2, as shown on screen; null for a ranking.")
    ranking = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="Ranking items: as ranked on screen, tiers of positions 1..K (A, B, C...) best first.",
    )

    class Meta(JudgmentSerializer.Meta):
        fields = [f for f in JudgmentSerializer.Meta.fields if f not in ("swapped", "display_order")]
        read_only_fields = fields

    def to_representation(self, judgment: Judgment) -> dict:
        data = super().to_representation(judgment)
        if judgment.is_ranking:
            # As ranked on screen (positions 1..K, i.e. A, B, C...), like the rating as clicked.
            order = judgment.display_order
            data["ranking"] = to_screen_tiers(judgment.ranking, order) if order else judgment.ranking
            data["rating_label"] = None
            return data
        screen_rating = -judgment.rating if judgment.swapped else judgment.rating
        data.update(rating=screen_rating, rating_label=Rating(screen_rating).label, chosen=winner_of(screen_rating))
        return data


class JudgmentFilter(django_filters.FilterSet):
    # One of the scale's values (a NumberFilter took 0.5 and 7 and matched nothing; the schema said integer).
    rating = django_filters.TypedChoiceFilter(
        choices=Rating.choices,
        coerce=int,
        method="filter_rating",
        help_text="Staff: in the item's orientation; annotators: as shown on their screen.",
    )
    # A batch id, as the schema says (a NumberFilter would take 0.5 and match nothing).
    batch = django_filters.ModelChoiceFilter(field_name="item__batch", queryset=Batch.objects.all())
    annotator_username = django_filters.CharFilter(field_name="annotator__username")
    created = django_filters.DateFromToRangeFilter(
        field_name="created_at", label="Judged between created_after and created_before (dates, inclusive)."
    )

    class Meta:
        model = Judgment
        fields = ["batch", "annotator", "annotator_username", "item", "hit", "rating", "created"]

    def filter_rating(self, judgments: QuerySet[Judgment], name: str, value) -> QuerySet[Judgment]:
        if has_permissions(self.request.user, "annotate.view_judgment"):
            return judgments.filter(rating=value)
        # Annotators filter on what they clicked, so a filter cannot tell them which samples were swapped.
        return judgments.filter(Q(swapped=False, rating=value) | Q(swapped=True, rating=-value))


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
        if getattr(self, "swagger_fake_view", False) or has_permissions(self.request.user, "annotate.view_judgment"):
            return JudgmentSerializer
        return AnnotatorJudgmentSerializer

    def get_queryset(self) -> QuerySet[Judgment]:
        judgments = Judgment.objects.select_related("item", "annotator").order_by("pk")
        if has_permissions(self.request.user, "annotate.view_judgment"):
            return judgments
        return judgments.filter(annotator_id=self.request.user.pk)
