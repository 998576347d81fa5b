"""Preference data sets, streamed as they are read (staff only)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from annotate.api.permissions import HasPermissions
from annotate.export import FORMATS, PARQUET_TABLES, ExportError, ExportFilters, ExportOptionError, PreferenceExport
from arbiter.options import serializer_field
from rlhf.options import option_fields
from runs.api import AnyContentNegotiation
from runs.permissions import refusal


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


class PreferenceExportView(APIView):
    """Staff: a preference data set, streamed as it is read (constant memory)."""

    permission_classes = [HasPermissions]
    required_permissions = {"get": ("annotate.export_judgments",)}
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
        if query.filters.usernames:
            # Real usernames are personal data: a permission of their own, beyond exporting pseudonyms.
            reason = refusal(request.user, ["annotate.export_usernames"])
            if reason is not None:
                raise PermissionDenied(reason)
        try:
            export = query.export()
            chunks = export.chunks()  # checks batch and user names before the first byte
        except ExportError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response
