"""REST API for reward-model runs (staff only): list, read, start, cancel, training log, scoring
a prompt with two responses, and downloading the trained model.

Starting, cancelling and scoring go through rewardmodel.services, and the download is the same
zip stream (rewardmodel.dashboard.zip_download), as on the dashboard.
`TRAINING_RUN_FIELDS` and `TrainingLogSerializer` are shared with the policy app's runs.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api import AnyContentNegotiation, IsStaff
from annotate.models import Batch
from arbiter.options import options_serializer
from rewardmodel.dashboard import zip_download
from rewardmodel.models import RewardModelRun
from rewardmodel.services import AGGREGATES, RewardRunError, cancel_reward_run, score_with_run, start_reward_run
from rewardmodel.train import RewardTrainConfig

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
    has_model = serializers.SerializerMethodField(help_text="A trained model is there to score with and download.")

    class Meta:
        model = RewardModelRun
        fields = [*TRAINING_RUN_FIELDS, "batches", "judgments_count", "judgments_hash", "pairs_count", "has_model"]
        read_only_fields = fields

    def get_has_model(self, run: RewardModelRun) -> bool:
        return run.artifact_dir is not None


class StartRewardRunSerializer(serializers.Serializer):
    batches = serializers.PrimaryKeyRelatedField(queryset=Batch.objects.all(), many=True, allow_empty=False)
    aggregate = serializers.ChoiceField(choices=AGGREGATES, default="each")
    exclude_annotators = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), many=True, required=False
    )
    exclude_flagged = serializers.BooleanField(
        default=False, help_text="Leave out the annotators the quality figures flag on these batches."
    )
    options = options_serializer(RewardTrainConfig)(
        required=False, help_text="Trainer settings (RewardTrainConfig's options); unknown names are an error."
    )


class ScoreSerializer(serializers.Serializer):
    # Untrimmed: the model scores exactly the text the page's score box would send.
    prompt = serializers.CharField(trim_whitespace=False, help_text="A one-turn user prompt.")
    response_1 = serializers.CharField(trim_whitespace=False)
    response_2 = serializers.CharField(trim_whitespace=False)


class RewardsSerializer(serializers.Serializer):
    reward_1 = serializers.FloatField()
    reward_2 = serializers.FloatField()
    preferred = serializers.IntegerField(allow_null=True, help_text="The response with the higher reward; null: a tie.")


def download_responses(what: str) -> dict:
    return {
        (200, "application/zip"): OpenApiTypes.BINARY,
        404: OpenApiResponse(description=f"No {what} to download (the run has not succeeded)."),
    }


class TrainingLogSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    metrics = serializers.DictField()
    created_at = serializers.DateTimeField()


def service_error(exc: Exception) -> ValidationError:
    return ValidationError({"non_field_errors": [str(exc)]})


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """List, read, cancel and read the log of a TrainingRun; the reward-model and policy run endpoints extend it."""

    permission_classes = [IsStaff]

    def cancel_run(self, run) -> bool:
        return run.request_cancel()

    @extend_schema(summary="Cancel a run: at once when queued, at the next step when running", request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not self.cancel_run(run):
            raise service_error(ValueError(f"{run} has already finished ({run.get_status_display()})."))
        return Response(self.get_serializer(run).data)

    @extend_schema(summary="The run's training log, step by step", responses=TrainingLogSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_fields=[])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(self.get_object().logs.order_by("step", "pk"))
        return self.get_paginated_response(TrainingLogSerializer(page, many=True).data)


class RewardModelRunViewSet(TrainingRunViewSet):
    serializer_class = RewardModelRunSerializer
    filterset_fields = ["status", "batches"]

    def cancel_run(self, run: RewardModelRun) -> bool:
        return cancel_reward_run(run)

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
                exclude_flagged=data["exclude_flagged"],
                **data.get("options", {}),
            )
        except RewardRunError as exc:
            raise service_error(exc) from None
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Score a prompt with two responses, as the run page's score box does",
        request=ScoreSerializer,
        responses={200: RewardsSerializer, 400: OpenApiResponse(description="A blank field, or no trained model.")},
    )
    @action(detail=True, methods=["post"])
    def score(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        entry = ScoreSerializer(data=request.data)
        entry.is_valid(raise_exception=True)
        try:
            reward_1, reward_2 = score_with_run(run, **entry.validated_data)
        except RewardRunError as exc:
            raise service_error(exc) from None
        preferred = None if reward_1 == reward_2 else (1 if reward_1 > reward_2 else 2)
        return Response(RewardsSerializer({"reward_1": reward_1, "reward_2": reward_2, "preferred": preferred}).data)

    @extend_schema(
        summary="Download the trained model (a zip of the folder from_pretrained loads)",
        responses=download_responses("trained model"),
    )
    @action(detail=True, methods=["get"], content_negotiation_class=AnyContentNegotiation, filterset_fields=[])
    def download(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        run = self.get_object()
        folder = run.artifact_dir
        if folder is None:
            raise NotFound(f"{run} has no trained model to download.")
        return zip_download(folder, folder.name)
