"""REST API for reward-model runs (staff only): list, read, start, cancel, training log, scoring
a prompt with two responses, and downloading the trained model.

Starting, cancelling and scoring go through rewardmodel.services, and the download is the same
zip stream (runs.dashboard.zip_download), as on the dashboard.
The list / read / cancel / log endpoints come from the run kernel (runs.api).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.models import Batch
from arbiter.options import options_serializer
from rewardmodel.models import RewardModelRun, ScoreJob
from rewardmodel.services import RewardRunError, cancel_reward_run, start_reward_run, start_score_job
from rewardmodel.train import RewardTrainConfig
from rlhf.preferences import AGGREGATIONS
from rlhf.rankings import RANKING_AGGREGATIONS
from runs import storage
from runs.api import (
    TRAINING_RUN_FIELDS,
    AnyContentNegotiation,
    TrainingRunSerializerMixin,
    TrainingRunViewSet,
    download_responses,
    service_error,
    training_run_permissions,
)
from runs.dashboard import zip_download
from runs.forms import RunQueueField
from runs.permissions import HasPermissions


class RewardModelRunSerializer(TrainingRunSerializerMixin, serializers.ModelSerializer):
    has_model = serializers.SerializerMethodField(help_text="A trained model is there to score with and download.")

    class Meta:
        model = RewardModelRun
        fields = [
            *TRAINING_RUN_FIELDS,
            "batches",
            "base_run",
            "judgments_count",
            "judgments_hash",
            "pairs_count",
            "has_model",
        ]
        read_only_fields = fields

    def get_has_model(self, run: RewardModelRun) -> bool:
        return run.artifact_location is not None


class StartRewardRunSerializer(serializers.Serializer):
    batches = serializers.PrimaryKeyRelatedField(queryset=Batch.objects.all(), many=True, allow_empty=False)
    aggregate = serializers.ChoiceField(choices=AGGREGATIONS, default="each")
    ranking_aggregate = serializers.ChoiceField(
        choices=RANKING_AGGREGATIONS,
        default="each",
        help_text="Several annotators' rankings of one item: each counts, or one Borda-count ranking per item.",
    )
    base_run = serializers.PrimaryKeyRelatedField(
        queryset=RewardModelRun.objects.all(),
        required=False,
        allow_null=True,
        help_text="Start from this succeeded run's model (weights and head) instead of a fresh head on the backbone.",
    )
    exclude_annotators = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), many=True, required=False
    )
    exclude_flagged = serializers.BooleanField(
        default=False, help_text="Leave out the annotators the quality figures flag on these batches."
    )
    queue = RunQueueField()
    options = options_serializer(RewardTrainConfig)(
        required=False, help_text="Trainer settings (RewardTrainConfig's options); unknown names are an error."
    )


class ScoreSerializer(serializers.Serializer):
    # Untrimmed: the model scores exactly the text the page's score box would send.
    prompt = serializers.CharField(
        trim_whitespace=False, max_length=settings.ITEM_MAX_CHARS, help_text="A one-turn user prompt."
    )
    response_1 = serializers.CharField(trim_whitespace=False, max_length=settings.ITEM_MAX_CHARS)
    response_2 = serializers.CharField(trim_whitespace=False, max_length=settings.ITEM_MAX_CHARS)


class ScoreJobSerializer(serializers.ModelSerializer):
    preferred = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The response with the higher reward; null: a tie, or not done yet."
    )
    waiting_for_broker = serializers.BooleanField(
        read_only=True, help_text="Queued and not yet handed to the task queue (it was down); sent once it is back."
    )

    class Meta:
        model = ScoreJob
        fields = [
            "id",
            "run",
            "status",
            "reward_1",
            "reward_2",
            "preferred",
            "error",
            "prompt",
            "response_1",
            "response_2",
            "created_at",
            "started_at",
            "finished_at",
            "waiting_for_broker",
        ]
        read_only_fields = fields


class RewardModelRunViewSet(TrainingRunViewSet):
    serializer_class = RewardModelRunSerializer
    filterset_fields = ["status", "batches"]
    required_permissions = {
        **training_run_permissions("rewardmodel", "rewardmodelrun"),
        "score": ("rewardmodel.view_rewardmodelrun",),
        "download": ("rewardmodel.view_rewardmodelrun",),
    }

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
                ranking_aggregate=data["ranking_aggregate"],
                base_run=data.get("base_run"),
                exclude_annotators=data.get("exclude_annotators", []),
                exclude_flagged=data["exclude_flagged"],
                queue=data.get("queue", ""),
                **data.get("options", {}),
            )
        except RewardRunError as exc:
            raise service_error(exc) from None
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Score a prompt with two responses in a worker, as the run page's score box does",
        description=(
            "The model is loaded and run by a worker (queue `celery`), never in the web process: the answer is 202 "
            "with the scoring job, which `GET /api/score-jobs/{id}/` reports (status queued, loading, scoring, "
            "then done with `reward_1`, `reward_2` and `preferred`, or failed with `error`)."
        ),
        request=ScoreSerializer,
        responses={
            202: ScoreJobSerializer,
            400: OpenApiResponse(description="A blank field, or no trained model."),
        },
    )
    @action(detail=True, methods=["post"])
    def score(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        entry = ScoreSerializer(data=request.data)
        entry.is_valid(raise_exception=True)
        try:
            job = start_score_job(run, request.user, **entry.validated_data)
        except RewardRunError as exc:
            raise service_error(exc) from None
        return Response(ScoreJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Download the trained model (a zip of the folder from_pretrained loads)",
        responses=download_responses("trained model"),
    )
    @action(detail=True, methods=["get"], content_negotiation_class=AnyContentNegotiation, filterset_fields=[])
    def download(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        run = self.get_object()
        location = run.artifact_location  # streamed from where it lives, never copied here first
        if location is None:
            raise NotFound(f"{run} has no trained model to download.")
        return zip_download(location, storage.basename(location))


class ScoreJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Scorings started by `POST /api/reward-runs/{id}/score/`: status, then the rewards or the error."""

    permission_classes = [HasPermissions]
    required_permissions = {
        "list": ("rewardmodel.view_rewardmodelrun",),
        "retrieve": ("rewardmodel.view_rewardmodelrun",),
    }
    serializer_class = ScoreJobSerializer
    queryset = ScoreJob.objects.order_by("-created_at", "-pk")
