"""REST API for policy runs (staff only): list, read, start (REINFORCE, SFT or DPO), cancel, log,
samples, sending a finished run's held-out answers to annotators, and downloading the final
model or a checkpoint.

Every action goes through policy.services, and the download is the same zip stream
(runs.dashboard.zip_download), as on the dashboard.
"""

from __future__ import annotations

import json

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.models import Batch, Judgment
from arbiter.options import TEXT_OPTION_MAX_LENGTH, model_location, options_serializer
from policy.configs import config_class
from policy.errors import PolicyRunError
from policy.evaluation import SEND_KIND_LABELS, SEND_PAIRWISE, human_win_rate, ranked_win_rate, send_to_annotators
from policy.models import PolicyRun, PolicySample
from policy.services import cancel_policy_run, start_policy_run
from rewardmodel.models import RewardModelRun
from rlhf.options import OptionError
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


class WinRateSerializer(serializers.Serializer):
    wins = serializers.FloatField(help_text="Comparisons the policy won (a tie counts half).")
    n = serializers.IntegerField(help_text="Comparisons counted.")
    rate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval")
    high = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField(
        help_text='The interval in words: "not distinguishable from the reference yet" when it spans 0.5.'
    )
    simulated = serializers.IntegerField(
        required=False,
        help_text="Annotators' win rates: how many of the judgments behind it simulated annotators gave.",
    )


def win_rate_body(rate, simulated: int | None = None) -> dict | None:
    if rate is None:
        return None
    body = {**rate._asdict(), "verdict": rate.verdict}
    return body if simulated is None else {**body, "simulated": simulated}


class WinRatesSerializer(serializers.Serializer):
    reward_model = WinRateSerializer(allow_null=True, help_text="By the reward model trained against (held out).")
    judge = WinRateSerializer(allow_null=True, help_text="By the independent judge, when the run names one.")
    human = WinRateSerializer(allow_null=True, help_text="Annotators on the pairwise batch sent from the run.")
    ranked = WinRateSerializer(allow_null=True, help_text="Annotators' rankings: a policy answer above the reference.")


class PolicyRunSerializer(TrainingRunSerializerMixin, serializers.ModelSerializer):
    checkpoints = serializers.SerializerMethodField(
        help_text='Downloadable models: "final" first, then checkpoint-<step> (empty until the run succeeded).'
    )
    win_rates = serializers.SerializerMethodField(
        help_text="Every win rate over the reference with its count and 95 % Wilson interval (null: none yet)."
    )

    class Meta:
        model = PolicyRun
        fields = [
            *TRAINING_RUN_FIELDS,
            "kind",
            "reward_run",
            "judge_run",
            "base_run",
            "base_path",
            "base_checkpoint",
            "data_batch",
            "annotation_batch",
            "ranking_batch",
            "checkpoints",
            "win_rates",
        ]
        read_only_fields = fields

    def get_checkpoints(self, run: PolicyRun) -> list[str]:
        return run.checkpoint_names()

    @extend_schema_field(WinRatesSerializer)
    def get_win_rates(self, run: PolicyRun) -> dict:
        human = human_win_rate(run) if run.annotation_batch_id else None
        ranked = ranked_win_rate(run) if run.ranking_batch_id else None
        return {
            "reward_model": win_rate_body(run.reward_model_win_rate),
            "judge": win_rate_body(run.judge_win_rate),
            "human": win_rate_body(human, _simulated_judgments(run.annotation_batch_id, pairwise=True)),
            "ranked": win_rate_body(ranked, _simulated_judgments(run.ranking_batch_id, pairwise=False)),
        }


def _simulated_judgments(batch_id: int | None, *, pairwise: bool) -> int | None:
    if batch_id is None:
        return None
    judgments = Judgment.objects.filter(item__batch_id=batch_id, rating__isnull=not pairwise)
    return judgments.simulated().count()


class StartPolicyRunSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PolicyRun.Kind.choices, default=PolicyRun.Kind.REINFORCE)
    reward_run = serializers.PrimaryKeyRelatedField(
        queryset=RewardModelRun.objects.all(),
        required=False,
        help_text="REINFORCE: the reward model (succeeded); DPO, optional: the judge of the held-out answers.",
    )
    judge_run = serializers.PrimaryKeyRelatedField(
        queryset=RewardModelRun.objects.all(),
        required=False,
        allow_null=True,
        help_text="REINFORCE, optional: another succeeded reward model that scores the held-out answers as an "
        "independent judge.",
    )
    base_run = serializers.PrimaryKeyRelatedField(
        queryset=PolicyRun.objects.all(), required=False, help_text="Start from this run's model (an SFT warm start)."
    )
    base_checkpoint = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text='With base_run: "final" (the default) or one of its `checkpoints`, e.g. "checkpoint-50".',
    )
    base_path = serializers.CharField(
        required=False, allow_blank=True, max_length=TEXT_OPTION_MAX_LENGTH, help_text="Or a model folder / hub id."
    )
    data_batch = serializers.PrimaryKeyRelatedField(
        queryset=Batch.objects.all(),
        required=False,
        help_text="Prompts (REINFORCE), demonstrations (SFT) or judgments (DPO).",
    )
    aggregate = serializers.ChoiceField(
        choices=AGGREGATIONS, required=False, help_text="DPO: several judgments of an item, as for a reward run."
    )
    ranking_aggregate = serializers.ChoiceField(
        choices=RANKING_AGGREGATIONS, required=False, help_text="DPO: several rankings of an item."
    )
    exclude_flagged = serializers.BooleanField(required=False, help_text="DPO: leave out the flagged annotators.")
    data_file = serializers.FileField(required=False, help_text="Or a JSONL file of prompts / dialogues (multipart).")
    queue = RunQueueField()
    options = serializers.JSONField(
        required=False,
        help_text="Trainer settings (ReinforceConfig / SFTConfig / DPOConfig fields); unknown names are an error.",
    )

    def validate_options(self, value) -> dict:
        if isinstance(value, str):  # multipart: the object as JSON text
            try:
                value = json.loads(value)
            except ValueError:
                raise serializers.ValidationError("Expected an object of trainer settings.") from None
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object of trainer settings.")
        return value

    def validate(self, attrs: dict) -> dict:
        """The options checked by the chosen kind's config (ReinforceConfig, SFTConfig or DPOConfig), as form and
        command do."""
        if "options" in attrs:
            options = options_serializer(config_class(attrs.get("kind") or PolicyRun.Kind.REINFORCE))(
                data=attrs["options"]
            )
            if not options.is_valid():
                raise serializers.ValidationError({"options": options.errors})
            attrs["options"] = dict(options.validated_data)
        if attrs.get("base_path"):
            try:
                attrs["base_path"] = model_location(attrs["base_path"], "base_path")
            except OptionError as exc:
                raise serializers.ValidationError({"base_path": [str(exc)]}) from None
        return attrs


class PolicySampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = PolicySample
        fields = ["id", "step", "kind", "prompt", "response", "reward"]
        read_only_fields = fields


class SampleQuerySerializer(serializers.Serializer):
    step = serializers.IntegerField(required=False, help_text="Only this step's samples.")
    kind = serializers.ChoiceField(choices=PolicySample.Kind.choices, required=False, help_text="Only this kind.")


class SendToAnnotatorsSerializer(serializers.Serializer):
    overlap = serializers.IntegerField(min_value=1, default=1, help_text="Judgments per comparison.")
    kind = serializers.ChoiceField(
        choices=list(SEND_KIND_LABELS.items()),
        default=SEND_PAIRWISE,
        help_text="pairwise: the policy's answer vs the reference's; ranking: the policy's n answers and the "
        "reference's as one K = n + 1 item per held-out prompt (which is the reference is kept in the item's source).",
    )


class SentBatchSerializer(serializers.Serializer):
    batch = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="pairwise or ranking")
    items = serializers.IntegerField()


class PolicyRunViewSet(TrainingRunViewSet):
    serializer_class = PolicyRunSerializer
    filterset_fields = ["status", "kind", "reward_run"]
    required_permissions = {
        **training_run_permissions("policy", "policyrun"),
        "samples": ("policy.view_policyrun",),
        "win_rate": ("policy.view_policyrun",),
        "ranked_win_rate": ("policy.view_policyrun",),
        "download": ("policy.view_policyrun",),
        "send_to_annotators": ("policy.send_policyrun",),
    }
    parser_classes = [JSONParser, MultiPartParser]

    def cancel_run(self, run: PolicyRun) -> bool:
        return cancel_policy_run(run)

    def get_queryset(self) -> QuerySet[PolicyRun]:
        return PolicyRun.objects.select_related("created_by")

    @extend_schema(
        summary="Start a run (queued for a GPU worker)",
        request={"application/json": StartPolicyRunSerializer, "multipart/form-data": StartPolicyRunSerializer},
        responses={201: PolicyRunSerializer},
    )
    def create(self, request: Request) -> Response:
        start = StartPolicyRunSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        data = dict(start.validated_data)
        options = data.pop("options", None) or {}
        try:
            run = start_policy_run(request.user, data.pop("kind"), **data, **options)
        except PolicyRunError as exc:
            raise service_error(exc) from None
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Sampled answers during training and on held-out prompts",
        parameters=[SampleQuerySerializer],
        responses=PolicySampleSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filterset_fields=[], serializer_class=PolicySampleSerializer)
    def samples(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        query = SampleQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # The page's sample browser: one step and kind at a time.
        page = self.paginate_queryset(run.samples.filter(**query.validated_data).order_by("step", "pk"))
        return self.get_paginated_response(PolicySampleSerializer(page, many=True).data)

    @extend_schema(
        summary="Put the held-out answers (policy vs reference, or the policy's n and the reference ranked) in a new "
        "batch for annotators",
        request=SendToAnnotatorsSerializer,
        responses={201: SentBatchSerializer},
    )
    @action(detail=True, methods=["post"], url_path="send-to-annotators")
    def send_to_annotators(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        options = SendToAnnotatorsSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        try:
            batch = send_to_annotators(
                run, request.user, overlap=options.validated_data["overlap"], kind=options.validated_data["kind"]
            )
        except PolicyRunError as exc:
            raise service_error(exc) from None
        body = {"batch": batch.pk, "name": batch.name, "kind": batch.kind, "items": batch.items.count()}
        return Response(SentBatchSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="How often annotators preferred the policy over the reference", responses=WinRateSerializer)
    @action(detail=True, methods=["get"], url_path="win-rate", filterset_fields=[])
    def win_rate(self, request: Request, pk: str | None = None) -> Response:
        return Response(WinRateSerializer(win_rate_body(human_win_rate(self.get_object()))).data)

    @extend_schema(
        summary="From the ranking batch: how often annotators ranked a policy answer above the reference's",
        responses=WinRateSerializer,
    )
    @action(detail=True, methods=["get"], url_path="ranked-win-rate", filterset_fields=[])
    def ranked_win_rate(self, request: Request, pk: str | None = None) -> Response:
        return Response(WinRateSerializer(win_rate_body(ranked_win_rate(self.get_object()))).data)

    @extend_schema(
        summary="Download the final model or a checkpoint (a zip of the folder from_pretrained loads)",
        parameters=[
            OpenApiParameter(
                "checkpoint", str, description='"final" (the default) or a name from the run\'s `checkpoints`.'
            )
        ],
        responses=download_responses("model under that name"),
    )
    @action(detail=True, methods=["get"], content_negotiation_class=AnyContentNegotiation, filterset_fields=[])
    def download(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        run = self.get_object()
        name = request.query_params.get("checkpoint", "final")
        # Only names the run lists: nothing outside its folder can be asked for.
        if name not in run.checkpoint_names():
            raise NotFound(f"{run} has no model named {name!r} to download.")
        return zip_download(storage.join(run.artifact_location, name), f"policy-{run.pk}-{name}")
