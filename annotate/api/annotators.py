"""Annotators' quality figures (staff only), as the quality pages show them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api.permissions import HasPermissions
from annotate.api.quality import AnnotatorQualitySerializer, AnnotatorRankingQualitySerializer
from annotate.models import Batch, Rating
from annotate.quality import annotator_quality, annotator_report


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


class BatchRankingFiguresSerializer(serializers.Serializer):
    batch = serializers.IntegerField(source="batch.pk")
    batch_name = serializers.CharField(source="batch.name")
    figures = AnnotatorRankingQualitySerializer()


class AnnotatorReportSerializer(serializers.Serializer):
    """What the annotator's quality page shows."""

    user_id = serializers.IntegerField()
    username = serializers.CharField()
    overall = AnnotatorQualitySerializer(allow_null=True, help_text="Over all batches; null without judgments.")
    per_batch = BatchFiguresSerializer(many=True)
    ratings = RatingCountSerializer(many=True, help_text="How often each rating was given (item orientation).")
    rankings = BatchRankingFiguresSerializer(
        many=True, help_text="Per ranking batch ranked: rankings, mean Kendall's tau with the others, position bias."
    )


class AnnotatorViewSet(viewsets.GenericViewSet):
    """Staff: how far each annotator's judgments can be trusted (the quality pages' figures, from annotate.quality).

    Judgments of the import user (reference answers from data sets) are left out, as on the pages.
    """

    permission_classes = [HasPermissions]
    required_permissions = {"list": ("annotate.view_quality",), "quality": ("annotate.view_quality",)}
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
