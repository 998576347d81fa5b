"""Batches: staff create, change and delete them and add items in bulk; annotators read the active ones."""

from __future__ import annotations

import tempfile

import django_filters
from django.conf import settings
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

from annotate.api.permissions import HasPermissions, has_permissions
from annotate.api.quality import BatchQualitySerializer
from annotate.batch_settings import kind_setting_errors
from annotate.import_jobs import runs_in_background, start_import_job
from annotate.importers import FORMATS as IMPORT_FORMATS
from annotate.importers import ImportFileError, import_comparisons, size_limit_message
from annotate.models import Batch, ImportJob
from annotate.quality import batch_quality


class BatchSerializer(serializers.ModelSerializer):
    items_count = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Batch
        fields = [
            "id",
            "name",
            "kind",
            "ranking_size",
            "allow_ties",
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

    # samples_per_hit, overlap, gold_rate and priority are bounded by the model's validators, as in the admin.

    def validate(self, attrs: dict) -> dict:
        """Kind, ranking size and ties must fit together and the batch's items (annotate.batch_settings)."""
        current = self.instance

        def value(name: str, default):
            return attrs[name] if name in attrs else getattr(current, name, default)

        errors = kind_setting_errors(
            current,
            value("kind", Batch.Kind.PAIRWISE),
            value("ranking_size", None),
            value("allow_ties", False),
        )
        if errors:
            raise ValidationError({name: [message] for name, message in errors.items()})
        return attrs


class AnnotatorBatchSerializer(serializers.ModelSerializer):
    """What an annotator needs to know about a batch (no gold rate, no counts)."""

    class Meta:
        model = Batch
        fields = ["id", "name", "kind", "ranking_size", "allow_ties", "guidelines", "samples_per_hit"]
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


class ImportJobSerializer(serializers.ModelSerializer):
    batch = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    waiting_for_broker = serializers.BooleanField(
        read_only=True, help_text="Queued and not yet handed to the task queue (it was down); sent once it is back."
    )

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "batch_name",
            "batch",
            "format",
            "allow_ties",
            "file_name",
            "size_bytes",
            "status",
            "rows_done",
            "items_created",
            "judgments_created",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "waiting_for_broker",
        ]
        read_only_fields = fields


class BodyTooLarge(Exception):
    pass


BODY_CHUNK_BYTES = 1 << 16


def receive_body(request: Request) -> tempfile.SpooledTemporaryFile:
    """The request body copied to a temporary file (on disk past FILE_UPLOAD_MAX_MEMORY_SIZE), at most
    IMPORT_MAX_BYTES; read in chunks, so a large body never sits whole in the web process's memory."""
    limit = settings.IMPORT_MAX_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        raise BodyTooLarge
    body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (returned)
    received = 0
    stream = request.stream
    while stream is not None and (chunk := stream.read(BODY_CHUNK_BYTES)):
        received += len(chunk)
        if received > limit:
            body.close()
            raise BodyTooLarge
        body.write(chunk)
    body.seek(0)
    return body


def starts_a_json_array(body) -> bool:
    head = body.read(4096).lstrip()
    body.seek(0)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


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

    # JSON only: a form body cannot say null (ranking_size) and quietly drops what it cannot encode, so a request
    # that breaks the schema could be accepted (schemathesis, ST201).
    parser_classes = [JSONParser]
    permission_classes = [HasPermissions]
    required_permissions = {
        "list": (),  # annotators: the active batches; staff who may view batches: all, with counts
        "retrieve": (),
        "create": ("annotate.add_batch",),
        "update": ("annotate.change_batch",),
        "partial_update": ("annotate.change_batch",),
        "destroy": ("annotate.delete_batch",),
        "add_items": ("annotate.add_item",),
        "quality": ("annotate.view_quality",),
    }
    filterset_class = BatchFilter

    def get_queryset(self) -> QuerySet[Batch]:
        batches = Batch.objects.order_by("created_at", "pk")
        if not has_permissions(self.request.user, "annotate.view_batch"):
            return batches.filter(active=True)
        return batches.annotate(items_count=Count("items"))

    def get_serializer_class(self):
        if getattr(self, "swagger_fake_view", False) or has_permissions(self.request.user, "annotate.view_batch"):
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
            "the record (1-based) and the field. The body may be up to IMPORT_MAX_BYTES (default 256 MiB; "
            "413 beyond) and hold up to IMPORT_MAX_ROWS records, each text up to ITEM_MAX_CHARS characters. "
            "A body over IMPORT_BACKGROUND_BYTES (default 2 MiB) is imported by a background task: the answer "
            "is 202 with the import job, whose progress `GET /api/imports/{id}/` reports."
        ),
        parameters=[
            OpenApiParameter("fmt", str, enum=["auto", *IMPORT_FORMATS], description="Record format (default auto).")
        ],
        request=ItemRecordsSerializer,
        responses={
            201: ImportedItemsSerializer,
            202: ImportJobSerializer,
            400: OpenApiResponse(description="A bad record; nothing created."),
            413: OpenApiResponse(description="The body is over IMPORT_MAX_BYTES; nothing created."),
        },
    )
    @action(detail=True, methods=["post"], url_path="items", parser_classes=[JSONParser])
    def add_items(self, request: Request, pk: str | None = None) -> Response:
        batch = self.get_object()
        fmt = request.query_params.get("fmt", "auto")
        if fmt != "auto" and fmt not in IMPORT_FORMATS:
            error = ImportFileError(f"unknown format {fmt!r}; choose auto, {', '.join(IMPORT_FORMATS)}")
            return Response(import_error_detail(error), status=status.HTTP_400_BAD_REQUEST)
        # The body is streamed to a file, not parsed by DRF: request.data would hold it whole in memory.
        try:
            body = receive_body(request)
        except BodyTooLarge:
            detail = f"{size_limit_message('The request body is larger than')}. Nothing was imported."
            return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        with body:
            if not starts_a_json_array(body):
                raise ValidationError({"records": ["Expected a JSON list of records."]})
            if runs_in_background(body):
                job = start_import_job(body, "request body", batch.name, fmt=fmt, created_by=request.user)
                return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
            try:
                result = import_comparisons(body, batch.name, fmt=fmt, created_by=request.user)
            except ImportFileError as exc:
                # A Response, not ValidationError: that would turn the record number into a string.
                return Response(import_error_detail(exc), status=status.HTTP_400_BAD_REQUEST)
        created = {"batch": batch.pk, "format": result.format, "created": result.count}
        return Response(ImportedItemsSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Quality of the batch's judgments (staff): overlap, agreement, alpha, figures per annotator",
        responses=BatchQualitySerializer,
    )
    @action(detail=True, methods=["get"])
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


class ImportJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Background imports (curators): status, records done, and the error that stopped one."""

    permission_classes = [HasPermissions]
    required_permissions = {"list": ("annotate.add_item",), "retrieve": ("annotate.add_item",)}
    serializer_class = ImportJobSerializer
    queryset = ImportJob.objects.order_by("-created_at", "-pk")
