"""Batches: staff create, change and delete them and add items in bulk; annotators read the active ones."""

from __future__ import annotations

import io
import json

import django_filters
from django.db.models import Count, QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api.permissions import IsStaff, ReadOrStaff, is_staff
from annotate.api.quality import BatchQualitySerializer
from annotate.importers import FORMATS as IMPORT_FORMATS
from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch
from annotate.quality import batch_quality


class BatchSerializer(serializers.ModelSerializer):
    items_count = serializers.SerializerMethodField()
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
            "priority",
            "items_count",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_items_count(self, batch: Batch) -> int:
        # Counted by the list's query; a batch just created or changed has no annotation to read.
        return batch.items_count if hasattr(batch, "items_count") else batch.items.count()

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


def batch_for_role(many: bool = False) -> PolymorphicProxySerializer:
    """Schema only: staff get BatchSerializer's fields, annotators AnnotatorBatchSerializer's."""
    return PolymorphicProxySerializer(
        component_name="BatchForRole",
        serializers=[BatchSerializer, AnnotatorBatchSerializer],
        resource_type_field_name=None,
        many=many,
    )


@extend_schema_view(
    list=extend_schema(responses=batch_for_role(many=True)),
    retrieve=extend_schema(responses=batch_for_role()),
)
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
