"""Preference data sets, streamed as they are read (staff only)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from annotate.api.permissions import IsStaff
from annotate.export import FORMATS, PARQUET_TABLES, ExportError, ExportFilters, PreferenceExport
from rlhf.preferences import AGGREGATIONS
from runs.api import AnyContentNegotiation


class ExportQuerySerializer(serializers.Serializer):
    fmt = serializers.ChoiceField(choices=FORMATS, default="trl", help_text="The file format.")
    table = serializers.ChoiceField(choices=PARQUET_TABLES, default="trl", help_text="Parquet only: which table.")
    batch = serializers.ListField(child=serializers.CharField(), required=False, help_text="Batch names (repeat).")
    since = serializers.CharField(required=False, help_text="Judged on or after (YYYY-MM-DD or ISO date-time).")
    until = serializers.CharField(required=False, help_text="Judged before; a bare date includes that day.")
    annotator = serializers.ListField(child=serializers.CharField(), required=False, help_text="Only these users.")
    exclude_annotator = serializers.ListField(child=serializers.CharField(), required=False)
    min_judgments = serializers.IntegerField(min_value=1, default=1)
    aggregate = serializers.ChoiceField(choices=AGGREGATIONS, default="each")
    exclude_flagged = serializers.BooleanField(default=False)
    usernames = serializers.BooleanField(default=False, help_text="Raw/csv: usernames instead of pseudonyms.")

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):  # repeated query parameters
            data = {
                key: data.getlist(key) if isinstance(self.fields.get(key), serializers.ListField) else data.get(key)
                for key in data
            }
        return super().to_internal_value(data)

    def export(self) -> PreferenceExport:
        data = dict(self.validated_data)
        fmt, table = data.pop("fmt"), data.pop("table")
        filters = {
            "batches": data.get("batch"),
            "since": data.get("since"),
            "until": data.get("until"),
            "annotators": data.get("annotator"),
            "exclude_annotators": data.get("exclude_annotator", []),
            "min_judgments": data["min_judgments"],
            "aggregate": data["aggregate"],
            "exclude_flagged": data["exclude_flagged"],
            "usernames": data["usernames"],
        }
        return PreferenceExport(fmt=fmt, table=table, filters=ExportFilters(**filters))


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
