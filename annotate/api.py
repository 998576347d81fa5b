"""REST API of the annotate app: batches, items, judgments, the annotation flow, exports and quality.

Views stay thin: every action goes through the same service function the pages use
(annotate.services, annotate.importers, annotate.export, annotate.quality). Staff reach everything;
annotators see active batches and only their own HITs and judgments (anyone else's
is a 404, as if it did not exist); anonymous requests are refused.
"""

from __future__ import annotations

import io
import json

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import services
from annotate.export import FORMATS, PARQUET_TABLES, ExportError, ExportFilters, ExportOptionError, PreferenceExport
from annotate.importers import FORMATS as IMPORT_FORMATS
from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch, Hit, Item, Judgment, Rating
from annotate.quality import BatchQuality, annotator_quality, annotator_report, batch_quality
from arbiter.options import serializer_field
from rlhf.options import option_fields

# Permissions ---------------------------------------------------------------------------------------


class IsStaff(permissions.BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ReadOrStaff(permissions.BasePermission):
    """Any signed-in user reads; only staff write."""

    message = "Only staff may change this."

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


def is_staff(request: Request) -> bool:
    return bool(request.user.is_authenticated and request.user.is_staff)


def annotation_error(exc: services.AnnotationError) -> ValidationError:
    """A 400 naming the field when the service says which one, else a general error."""
    return ValidationError({getattr(exc, "field", None) or "non_field_errors": [str(exc)]})


# Quality figures (annotate.quality's dataclasses, as JSON) -------------------------------------


class AnnotatorQualitySerializer(serializers.Serializer):
    """annotate.quality.AnnotatorQuality: one annotator's figures over some batches."""

    user_id = serializers.IntegerField(help_text="The annotator's user id, as in /api/annotators/{id}/quality/.")
    username = serializers.CharField()
    judgments = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True, help_text="Median time per item.")
    agreement = serializers.FloatField(
        allow_null=True, help_text="Share of comparable judgments that agree with the majority of the others."
    )
    comparable = serializers.IntegerField(help_text="Judgments on items where the others had a majority.")
    gold_accuracy = serializers.FloatField(allow_null=True, help_text="Share of gold items answered right.")
    gold_judgments = serializers.IntegerField()
    first_shown_share = serializers.FloatField(
        allow_null=True, help_text="Position bias: share choosing the response shown first."
    )
    first_shown_p_value = serializers.FloatField(allow_null=True, help_text="Two-sided binomial test against 1/2.")
    longer_share = serializers.FloatField(allow_null=True, help_text="Length bias: share choosing the longer response.")
    length_comparable = serializers.IntegerField(help_text="Judgments whose two responses differ in length.")
    slight_share = serializers.FloatField(allow_null=True, help_text='Share of "slightly better" answers.')
    flags = serializers.ListField(
        child=serializers.CharField(), help_text="Why the annotator is flagged; empty when not flagged."
    )
    flagged = serializers.BooleanField()


class BatchQualitySerializer(serializers.Serializer):
    """annotate.quality.BatchQuality: how far one batch's judgments agree."""

    batch = serializers.IntegerField(source="batch.pk")
    batch_name = serializers.CharField(source="batch.name")
    overlap = serializers.IntegerField(source="batch.overlap", help_text="Judgments wanted per item.")
    items = serializers.IntegerField()
    judged_items = serializers.IntegerField(help_text="Items with at least one judgment.")
    fully_judged = serializers.IntegerField(help_text="Items with as many judgments as the overlap asks for.")
    overlap_reached = serializers.FloatField(allow_null=True, help_text="Share of items fully judged.")
    judgments = serializers.IntegerField()
    mean_judgments_per_item = serializers.FloatField(allow_null=True)
    agreeing_pairs = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Pairs of judgments on the same item.")
    agreement = serializers.FloatField(allow_null=True, help_text="Share of pairs that pick the same response.")
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, ordinal, on the four-level scale.")
    annotators = AnnotatorQualitySerializer(many=True)
    flagged = serializers.SerializerMethodField(help_text="User ids of the flagged annotators.")

    def get_flagged(self, quality: BatchQuality) -> list[int]:
        return [annotator.user_id for annotator in quality.flagged]


# Batches -------------------------------------------------------------------------------------------


class BatchSerializer(serializers.ModelSerializer):
    items_count = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Batch
        fields = [
            "id",
            "name",
            "guidelines",
            "samples_per_hit",
            "overlap",
            "gold_rate",
            "active",
            "items_count",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_samples_per_hit(self, value: int) -> int:
        if value < 1:
            raise ValidationError("A HIT needs at least one sample.")
        return value

    def validate_overlap(self, value: int) -> int:
        if value < 1:
            raise ValidationError("Each item needs at least one annotator.")
        return value

    def validate_gold_rate(self, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValidationError("A share between 0 and 1.")
        return value


class AnnotatorBatchSerializer(serializers.ModelSerializer):
    """What an annotator needs to know about a batch (no gold rate, no counts)."""

    class Meta:
        model = Batch
        fields = ["id", "name", "guidelines", "samples_per_hit"]
        read_only_fields = fields


class BatchFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Batch
        fields = ["name", "active"]


class ItemRecordsSerializer(serializers.ListSerializer):
    """Schema only: the records, exactly as a JSON import file holds them."""

    child = serializers.DictField()


class ImportedItemsSerializer(serializers.Serializer):
    batch = serializers.IntegerField()
    format = serializers.CharField(help_text="The format the records were read as.")
    created = serializers.IntegerField(help_text="Items created.")


class BatchViewSet(viewsets.ModelViewSet):
    """Staff create, change and delete batches; annotators read the active ones."""

    permission_classes = [ReadOrStaff]
    filterset_class = BatchFilter

    def get_queryset(self) -> QuerySet[Batch]:
        batches = Batch.objects.order_by("created_at", "pk")
        if not is_staff(self.request):
            return batches.filter(active=True)
        return batches.annotate(items_count=Count("items"))

    def get_serializer_class(self):
        if getattr(self, "swagger_fake_view", False) or is_staff(self.request):
            return BatchSerializer
        return AnnotatorBatchSerializer

    def perform_create(self, serializer: BatchSerializer) -> None:
        serializer.save(created_by=self.request.user)

    @extend_schema(
        summary="Add items to the batch (bulk, all or nothing)",
        description=(
            "The body is a JSON list of records in any format `import_comparisons` reads "
            f"({', '.join(IMPORT_FORMATS)}; detected from the first record unless `fmt` names it). "
            "Every record is checked first; one bad record means nothing is created, and the error names "
            "the record (1-based) and the field."
        ),
        parameters=[
            OpenApiParameter("fmt", str, enum=["auto", *IMPORT_FORMATS], description="Record format (default auto).")
        ],
        request=ItemRecordsSerializer,
        responses={201: ImportedItemsSerializer, 400: OpenApiResponse(description="A bad record; nothing created.")},
    )
    @action(detail=True, methods=["post"], url_path="items", permission_classes=[IsStaff], parser_classes=[JSONParser])
    def add_items(self, request: Request, pk: str | None = None) -> Response:
        batch = self.get_object()
        records = request.data
        if not isinstance(records, list):
            raise ValidationError({"records": ["Expected a JSON list of records."]})
        fmt = request.query_params.get("fmt", "auto")
        # The importer reads files; the records go to it as the JSON array file they would be.
        text = io.StringIO(json.dumps(records))
        try:
            result = import_comparisons(text, batch.name, fmt=fmt, created_by=request.user)
        except ImportFileError as exc:
            # A Response, not ValidationError: that would turn the record number into a string.
            return Response(import_error_detail(exc), status=status.HTTP_400_BAD_REQUEST)
        body = {"batch": batch.pk, "format": result.format, "created": result.count}
        return Response(ImportedItemsSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Quality of the batch's judgments (staff): overlap, agreement, alpha, figures per annotator",
        responses=BatchQualitySerializer,
    )
    @action(detail=True, methods=["get"], permission_classes=[IsStaff])
    def quality(self, request: Request, pk: str | None = None) -> Response:
        return Response(BatchQualitySerializer(batch_quality(self.get_object())).data)


def import_error_detail(exc: ImportFileError) -> dict:
    """{"detail": full message, "record": N, "field": name}, the last two when the importer knows them."""
    detail: dict = {"detail": str(exc)}
    kind, _, number = exc.where.partition(" ")
    if kind == "record" and number.isdigit():
        detail["record"] = int(number)
    if exc.field:
        detail["field"] = exc.field
    return detail


# Items ---------------------------------------------------------------------------------------------


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
            "source",
            "gold",
            "judgments_count",
            "created_at",
        ]
        # Content comes in through the importer's checks only; staff may set the known answer.
        read_only_fields = [f for f in fields if f != "gold"]


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

    permission_classes = [IsStaff]
    serializer_class = ItemSerializer
    filterset_class = ItemFilter
    queryset = Item.objects.annotate(judgments_count=Count("judgments")).order_by("pk")


# Judgments -----------------------------------------------------------------------------------------


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
        if getattr(self, "swagger_fake_view", False) or is_staff(self.request):
            return JudgmentSerializer
        return AnnotatorJudgmentSerializer

    def get_queryset(self) -> QuerySet[Judgment]:
        judgments = Judgment.objects.select_related("item", "annotator").order_by("pk")
        if is_staff(self.request):
            return judgments
        return judgments.filter(annotator_id=self.request.user.pk)


# The annotation flow ------------------------------------------------------------------------------


class SampleSerializer(serializers.Serializer):
    """One sample as the annotator sees it: responses in screen order, ratings toward screen response 2."""

    position = serializers.IntegerField()
    earlier_turns = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Messages {role, content} before the instruction (a multi-turn conversation).",
    )
    instruction = serializers.CharField()
    input = serializers.CharField(allow_blank=True, help_text="The instruction's optional input.")
    response_1 = serializers.CharField(help_text="Shown as 'AI Response 1'.")
    response_2 = serializers.CharField(help_text="Shown as 'AI Response 2'.")
    rating = serializers.ChoiceField(
        choices=Rating.choices, allow_null=True, help_text="The rating given so far, toward screen response 2."
    )
    time_ms = serializers.IntegerField(help_text="Time spent on the sample so far.")


def screen_samples(hit: Hit) -> list[dict]:
    """The HIT's samples as drawn on screen; which side was swapped never leaves the server."""
    judgments = hit.judgments_by_item()
    samples = []
    for slot in hit.ordered_slots():
        judgment = judgments.get(slot.item_id)
        samples.append(
            {
                "position": slot.position,
                "earlier_turns": slot.item.earlier_turns,
                "instruction": slot.item.instruction,
                "input": slot.item.prompt_input,
                "response_1": slot.shown_response(1),
                "response_2": slot.shown_response(2),
                "rating": None if judgment is None else slot.to_screen_rating(judgment.rating),
                "time_ms": 0 if judgment is None else judgment.time_ms,
            }
        )
    return samples


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

    def get_completed(self, hit: Hit) -> int:
        return hit.completed_count()

    @extend_schema_field(SampleSerializer(many=True))
    def get_samples(self, hit: Hit) -> list[dict]:
        return SampleSerializer(screen_samples(hit), many=True).data


class HitSummarySerializer(serializers.ModelSerializer):
    """A HIT in a list: no samples."""

    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Hit
        fields = ["id", "batch", "annotator", "created_at", "last_activity_at", "submitted_at"]
        read_only_fields = fields


class RateSerializer(serializers.Serializer):
    position = serializers.IntegerField(min_value=1, help_text="The sample's position in the HIT (1-based).")
    rating = serializers.ChoiceField(
        choices=Rating.choices, help_text="On the screen's orientation: -2..2 toward 'AI Response 2'."
    )
    elapsed_ms = serializers.IntegerField(
        min_value=0, default=0, help_text="Time spent on the sample since it was last reported."
    )

    def validate_position(self, value: int) -> int:
        hit: Hit = self.context["hit"]
        if not hit.slots.filter(position=value).exists():
            raise ValidationError(f"This HIT has no sample {value}.")
        return value


class TimeSerializer(serializers.Serializer):
    position = serializers.IntegerField(min_value=1)
    elapsed_ms = serializers.IntegerField(min_value=0)


class HitFilter(django_filters.FilterSet):
    submitted = django_filters.BooleanFilter(field_name="submitted_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Hit
        fields = ["batch", "annotator", "submitted"]


class HitViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The annotation flow: ask for work, rate each sample, submit.

    Ratings and responses are in the orientation shown on screen. Staff may read every
    HIT, but only a HIT's own annotator rates or submits it.
    """

    filterset_class = HitFilter

    def get_queryset(self) -> QuerySet[Hit]:
        hits = Hit.objects.select_related("batch", "annotator").order_by("-created_at", "-pk")
        if is_staff(self.request):
            return hits
        return hits.filter(annotator_id=self.request.user.pk)

    def get_serializer_class(self):
        return HitSummarySerializer if self.action == "list" else HitSerializer

    def own_hit(self) -> Hit:
        hit = self.get_object()
        if hit.annotator_id != self.request.user.pk:
            raise PermissionDenied("Only the HIT's annotator can work on it.")
        return hit

    def hit_response(self, hit: Hit, code: int = status.HTTP_200_OK) -> Response:
        hit.refresh_from_db()
        return Response(HitSerializer(hit, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Your current HIT, or a new one",
        request=None,
        responses={200: HitSerializer, 204: OpenApiResponse(description="No work is left for you.")},
    )
    @action(detail=False, methods=["post"])
    def next(self, request: Request) -> Response:
        hit = services.next_hit(request.user)
        if hit is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self.hit_response(hit)

    @extend_schema(summary="Rate one sample (changing a rating is allowed until submit)", request=RateSerializer)
    @action(detail=True, methods=["post"])
    def rate(self, request: Request, pk: str | None = None) -> Response:
        hit = self.own_hit()
        serializer = RateSerializer(data=request.data, context={"hit": hit})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            services.rate_item(hit, data["position"], data["rating"], data["elapsed_ms"])
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


# Exports -------------------------------------------------------------------------------------------


class ExportQuerySerializer(serializers.Serializer):
    """The export's query: format, batches, dates and annotators here; the options derived from ExportFilters."""

    fmt = serializers.ChoiceField(choices=FORMATS, default="trl", help_text="The file format.")
    table = serializers.ChoiceField(choices=PARQUET_TABLES, default="trl", help_text="Parquet only: which table.")
    batch = serializers.ListField(
        child=serializers.CharField(), required=False, source="batches", help_text="Batch names (repeat)."
    )
    since = serializers.CharField(required=False, help_text="Judged on or after (YYYY-MM-DD or ISO date-time).")
    until = serializers.CharField(required=False, help_text="Judged before; a bare date includes that day.")
    annotator = serializers.ListField(
        child=serializers.CharField(), required=False, source="annotators", help_text="Only these users."
    )
    exclude_annotator = serializers.ListField(
        child=serializers.CharField(), required=False, source="exclude_annotators", help_text="Leave out these users."
    )

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields.update({field.name: serializer_field(field) for field in option_fields(ExportFilters)})
        return fields

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):  # repeated query parameters
            data = {
                key: data.getlist(key) if isinstance(self.fields.get(key), serializers.ListField) else data.get(key)
                for key in data
            }
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        try:
            self.filters = ExportFilters.from_options(attrs)
        except ExportOptionError as exc:
            raise serializers.ValidationError({exc.name: [str(exc)]}) from None
        return attrs

    def export(self) -> PreferenceExport:
        data = self.validated_data
        return PreferenceExport(fmt=data["fmt"], table=data["table"], filters=self.filters)


class AnyContentNegotiation(BaseContentNegotiation):
    """A download is what it is whatever the client accepts; errors still come as JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PreferenceExportView(APIView):
    """Staff: a preference data set, streamed as it is read (constant memory)."""

    permission_classes = [IsStaff]
    content_negotiation_class = AnyContentNegotiation

    @extend_schema(
        summary="Download a preference data set",
        parameters=[ExportQuerySerializer],
        responses={
            (200, "application/jsonl"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            export = query.export()
            chunks = export.chunks()  # checks batch and user names before the first byte
        except ExportError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response


# Annotators' quality ------------------------------------------------------------------------------


class AnnotatorQuerySerializer(serializers.Serializer):
    batch = serializers.PrimaryKeyRelatedField(
        queryset=Batch.objects.all(), many=True, required=False, help_text="Figures over these batches only (repeat)."
    )
    flagged = serializers.BooleanField(
        allow_null=True, required=False, help_text="true: only flagged annotators; false: only unflagged ones."
    )


class RatingCountSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=Rating.choices)
    label = serializers.CharField()
    count = serializers.IntegerField()


class BatchFiguresSerializer(serializers.Serializer):
    batch = serializers.IntegerField(source="batch.pk")
    batch_name = serializers.CharField(source="batch.name")
    figures = AnnotatorQualitySerializer()


class AnnotatorReportSerializer(serializers.Serializer):
    """What the annotator's quality page shows."""

    user_id = serializers.IntegerField()
    username = serializers.CharField()
    overall = AnnotatorQualitySerializer(allow_null=True, help_text="Over all batches; null without judgments.")
    per_batch = BatchFiguresSerializer(many=True)
    ratings = RatingCountSerializer(many=True, help_text="How often each rating was given (item orientation).")


class AnnotatorViewSet(viewsets.GenericViewSet):
    """Staff: how far each annotator's judgments can be trusted (the quality pages' figures, from annotate.quality).

    Judgments of the import user (reference answers from data sets) are left out, as on the pages.
    """

    permission_classes = [IsStaff]
    serializer_class = AnnotatorQualitySerializer
    queryset = get_user_model().objects.order_by("pk")
    filter_backends: list = []  # the figures are computed per request, not a queryset to filter

    @extend_schema(
        summary="Every annotator with judgments: agreement, gold accuracy, biases and flags",
        parameters=[AnnotatorQuerySerializer],
    )
    def list(self, request: Request) -> Response:
        query = AnnotatorQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        figures = annotator_quality(query.validated_data.get("batch") or None)
        flagged = query.validated_data.get("flagged")
        if flagged is not None:
            figures = [annotator for annotator in figures if annotator.flagged == flagged]
        page = self.paginate_queryset(figures)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="One annotator's figures: overall, per batch, and the ratings given",
        responses=AnnotatorReportSerializer,
    )
    @action(detail=True, methods=["get"])
    def quality(self, request: Request, pk: str | None = None) -> Response:
        return Response(AnnotatorReportSerializer(annotator_report(self.get_object())).data)
