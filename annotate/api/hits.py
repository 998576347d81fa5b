"""The annotation flow: ask for work (assignment), rate each sample, submit.

Samples and progress come from annotate.selectors, the same read models the HIT page draws.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import services
from annotate.api.batches import AnnotatorBatchSerializer
from annotate.api.fields import WholeNumberField
from annotate.api.permissions import has_permissions
from annotate.api.rankings import RankSerializer, ShownResponseSerializer, TiersOutputField
from annotate.models import Batch, Hit, Rating
from annotate.selectors import ScreenSample, screen_samples
from rlhf.numbers import parse_id


def annotation_error(exc: services.AnnotationError) -> ValidationError:
    """A 400 naming the field when the service says which one, else a general error."""
    return ValidationError({getattr(exc, "field", None) or "non_field_errors": [str(exc)]})


class SampleSerializer(serializers.Serializer):
    """One sample as the annotator sees it: responses in screen order, ratings toward screen response 2.

    A ranking sample (kind "ranking") shows its K responses as `responses`, labelled A, B, C, ... in screen order,
    and its orders as places of screen positions (1 = A); response_1, response_2 and rating are empty there.
    """

    # Serializes annotate.selectors.ScreenSample; the docstring above is the schema's description.

    position = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Batch.Kind.choices, help_text="pairwise: rate it; ranking: rank it.")
    earlier_turns = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Messages {role, content} before the instruction (a multi-turn conversation).",
    )
    instruction = serializers.CharField()
    input = serializers.CharField(allow_blank=True, help_text="The instruction's optional input.")
    response_1 = serializers.CharField(
        allow_blank=True, help_text="Shown as 'AI Response 1' (empty for a ranking sample)."
    )
    response_2 = serializers.CharField(
        allow_blank=True, help_text="Shown as 'AI Response 2' (empty for a ranking sample)."
    )
    rating = serializers.ChoiceField(
        choices=Rating.choices, allow_null=True, help_text="The rating given so far, toward screen response 2."
    )
    time_ms = serializers.IntegerField(help_text="Time spent on the sample so far.")
    marked = serializers.BooleanField(help_text="Answered: rated (pairwise), or a complete order saved (ranking).")
    responses = ShownResponseSerializer(
        many=True,
        help_text="Ranking samples: the K responses in the order shown, labelled A, B, C, ...; empty for pairwise.",
    )
    ranking = TiersOutputField(
        help_text="Ranking samples: the saved complete order (places of screen positions, best first); null if none."
    )
    ranking_letters = serializers.CharField(
        allow_blank=True,
        help_text="The saved order as letters, best first: 'B A D C', a tie as '(A=C)'; empty if none.",
    )
    draft_ranking = TiersOutputField(
        help_text="Ranking samples: an order still being typed (not yet complete), screen positions; null if none."
    )


class HitSerializer(serializers.ModelSerializer):
    batch = AnnotatorBatchSerializer(read_only=True)
    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_submitted = serializers.BooleanField(read_only=True)
    completed = serializers.SerializerMethodField(help_text="Samples rated so far.")
    samples = serializers.SerializerMethodField()

    class Meta:
        model = Hit
        fields = [
            "id",
            "batch",
            "annotator",
            "created_at",
            "last_activity_at",
            "submitted_at",
            "is_submitted",
            "completed",
            "samples",
        ]
        read_only_fields = fields

    def _samples(self, hit: Hit) -> list[ScreenSample]:
        # One query serves both the samples and the count of those rated.
        if getattr(hit, "_screen_samples", None) is None:
            hit._screen_samples = screen_samples(hit)
        return hit._screen_samples

    def get_completed(self, hit: Hit) -> int:
        return sum(sample.marked for sample in self._samples(hit))

    @extend_schema_field(SampleSerializer(many=True))
    def get_samples(self, hit: Hit) -> list[dict]:
        return SampleSerializer(self._samples(hit), many=True).data


class RatingSavedSerializer(serializers.Serializer):
    """The rating as saved, and how far the HIT is: what a rating click changes, not the whole HIT again."""

    # Serializes annotate.services.SavedRating.

    hit = serializers.IntegerField(source="hit.pk", help_text="The HIT's id.")
    position = serializers.IntegerField(help_text="The sample rated.")
    rating = serializers.ChoiceField(
        source="screen_rating", choices=Rating.choices, help_text="The rating saved, toward screen response 2."
    )
    time_ms = serializers.IntegerField(source="judgment.time_ms", help_text="Time spent on the sample so far.")
    completed = serializers.IntegerField(source="progress.completed", help_text="Samples of the HIT rated so far.")
    total = serializers.IntegerField(source="progress.total", help_text="Samples in the HIT.")
    marked = serializers.ListField(
        child=serializers.IntegerField(), source="marked_positions", help_text="Positions of the samples rated."
    )


class HitSummarySerializer(serializers.ModelSerializer):
    """A HIT in a list: no samples."""

    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Hit
        fields = ["id", "batch", "annotator", "created_at", "last_activity_at", "submitted_at"]
        read_only_fields = fields


class RateSerializer(serializers.Serializer):
    position = WholeNumberField(min_value=1, help_text="The sample's position in the HIT (1-based).")
    rating = serializers.ChoiceField(
        choices=Rating.choices, help_text="On the screen's orientation: -2..2 toward 'AI Response 2'."
    )
    elapsed_ms = WholeNumberField(
        min_value=0, default=0, help_text="Time spent on the sample since it was last reported."
    )


class TimeSerializer(serializers.Serializer):
    position = WholeNumberField(min_value=1)
    elapsed_ms = WholeNumberField(min_value=0)


class HitFilter(django_filters.FilterSet):
    submitted = django_filters.BooleanFilter(field_name="submitted_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Hit
        fields = ["batch", "annotator", "submitted"]


class HitViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The annotation flow: ask for work, rate (pairwise) or rank (ranking) each sample, submit.

    Ratings, orders and responses are in the orientation shown on screen. Staff may read every
    HIT, but only a HIT's own annotator rates or submits it.
    """

    filterset_class = HitFilter

    def get_queryset(self) -> QuerySet[Hit]:
        hits = Hit.objects.select_related("batch", "annotator").order_by("-created_at", "-pk")
        if has_permissions(self.request.user, "annotate.view_hit"):
            return hits
        return hits.filter(annotator_id=self.request.user.pk)

    def get_serializer_class(self):
        return HitSummarySerializer if self.action == "list" else HitSerializer

    def own_hit(self) -> Hit:
        hit = self.get_object()
        if hit.annotator_id != self.request.user.pk:
            raise PermissionDenied("Only the HIT's annotator can work on it.")
        return hit

    def hit_response(self, hit: Hit, code: int = status.HTTP_200_OK, fresh: bool = False) -> Response:
        """The whole HIT; `fresh` when `hit` was just read with its batch and annotator (saves a query)."""
        if not fresh:
            hit = Hit.objects.select_related("batch", "annotator").get(pk=hit.pk)
        return Response(HitSerializer(hit, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Your current HIT, or a new one",
        request=None,
        responses={200: HitSerializer, 204: OpenApiResponse(description="No work is left for you.")},
    )
    @action(detail=False, methods=["post"])
    def next(self, request: Request) -> Response:
        hit = services.assign_hit(request.user)
        if hit is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self.hit_response(hit, fresh=True)

    @extend_schema(
        summary="Rate one sample (changing a rating is allowed until submit)",
        request=RateSerializer,
        responses={200: RatingSavedSerializer},
    )
    @action(detail=True, methods=["post"])
    def rate(self, request: Request, pk: str | None = None) -> Response:
        """Answers with the rating saved and the HIT's progress; GET the HIT for its samples."""
        serializer = RateSerializer(data=request.data)
        hit_id = parse_id(pk)
        if not serializer.is_valid() or hit_id is None:
            self.own_hit()  # someone else's HIT answers 404 (or 403 for staff) before any word about the input
            serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            # The service looks the HIT up with its annotator and locks it: one statement for both.
            saved = services.rate_sample(hit_id, request.user.pk, data["position"], data["rating"], data["elapsed_ms"])
        except Hit.DoesNotExist:
            self.own_hit()  # 404, or 403 for staff who may read the HIT
            raise
        except services.AnnotationError as exc:
            raise annotation_error(exc) from None
        return Response(RatingSavedSerializer(saved).data)

    @extend_schema(
        summary="Rank one ranking sample (a partial order is kept as a draft; changing it is allowed until submit)",
        request=RankSerializer,
    )
    @action(detail=True, methods=["post"])
    def rank(self, request: Request, pk: str | None = None) -> Response:
        hit = self.own_hit()
        serializer = RankSerializer(data=request.data, context={"hit": hit})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            services.rank_item(hit, data["position"], data["ranking"], data["elapsed_ms"])
        except services.AnnotationError as exc:
            raise annotation_error(exc) from None
        return self.hit_response(hit)

    @extend_schema(summary="Add time spent on a sample without changing its rating", request=TimeSerializer)
    @action(detail=True, methods=["post"])
    def time(self, request: Request, pk: str | None = None) -> Response:
        hit = self.own_hit()
        serializer = TimeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.add_time(hit, serializer.validated_data["position"], serializer.validated_data["elapsed_ms"])
        return self.hit_response(hit)

    @extend_schema(summary="Submit the HIT once every sample is rated", request=None)
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        hit = self.own_hit()
        try:
            hit = services.submit_hit(hit)
        except services.AnnotationError as exc:
            raise annotation_error(exc) from None
        return self.hit_response(hit)
