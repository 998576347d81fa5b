"""REST API for reward-model runs (staff only): list, read, start, cancel, training log.

Starting and cancelling go through rewardmodel.services, as the dashboard does.
`TRAINING_RUN_FIELDS` and `TrainingLogSerializer` are shared with the policy app's runs.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api import IsStaff
from annotate.models import Batch
from rewardmodel.models import RewardModelLog, RewardModelRun
from rewardmodel.services import AGGREGATES, RewardRunError, cancel_reward_run, start_reward_run

TRAINING_RUN_FIELDS = [
    "id",
    "status",
    "config",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "step",
    "total_steps",
    "progress_percent",
    "eta_seconds",
    "metrics",
    "error",
    "cancel_requested",
]


class TrainingRunSerializerMixin(serializers.Serializer):
    """Fields every TrainingRun subclass has."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)
    eta_seconds = serializers.SerializerMethodField(help_text="Time left at the pace so far, while running.")

    def get_eta_seconds(self, run) -> int | None:
        return None if run.eta is None else int(run.eta.total_seconds())


class RewardModelRunSerializer(TrainingRunSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = RewardModelRun
        fields = [*TRAINING_RUN_FIELDS, "batches", "judgments_count", "judgments_hash", "pairs_count"]
        read_only_fields = fields


class StartRewardRunSerializer(serializers.Serializer):
    batches = serializers.PrimaryKeyRelatedField(queryset=Batch.objects.all(), many=True, allow_empty=False)
    aggregate = serializers.ChoiceField(choices=AGGREGATES, default="each")
    exclude_annotators = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), many=True, required=False
    )
    options = serializers.DictField(
        required=False,
        help_text="Trainer settings (RewardTrainConfig fields, e.g. backbone, epochs, learning_rate); "
        "unknown names are an error.",
    )


class TrainingLogSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    metrics = serializers.DictField()
    created_at = serializers.DateTimeField()


def service_error(exc: Exception) -> ValidationError:
    return ValidationError({"non_field_errors": [str(exc)]})


class RewardModelRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsStaff]
    serializer_class = RewardModelRunSerializer
    filterset_fields = ["status", "batches"]

    def get_queryset(self) -> QuerySet[RewardModelRun]:
        return RewardModelRun.objects.select_related("created_by").prefetch_related("batches")

    @extend_schema(
        summary="Start a run (queued for a GPU worker)",
        request=StartRewardRunSerializer,
        responses={201: RewardModelRunSerializer},
    )
    def create(self, request: Request) -> Response:
        start = StartRewardRunSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        data = start.validated_data
        try:
            run = start_reward_run(
                request.user,
                data["batches"],
                aggregate=data["aggregate"],
                exclude_annotators=data.get("exclude_annotators", []),
                **data.get("options", {}),
            )
        except RewardRunError as exc:
            raise service_error(exc) from None
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel a run: at once when queued, at the next step when running",
        request=None,
        responses={200: RewardModelRunSerializer, 400: OpenApiResponse(description="The run has finished.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not cancel_reward_run(run):
            raise service_error(ValueError(f"{run} has already finished ({run.get_status_display()})."))
        return Response(self.get_serializer(run).data)

    @extend_schema(summary="The run's training log, step by step", responses=TrainingLogSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_fields=[])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        page = self.paginate_queryset(RewardModelLog.objects.filter(run=run).order_by("step", "pk"))
        return self.get_paginated_response(TrainingLogSerializer(page, many=True).data)
