"""The REST API every training run shares (staff only): the serializer fields of a TrainingRun, and a viewset
that lists, reads and cancels runs and pages through their training log. The reward-model and policy run
endpoints extend `TrainingRunViewSet` with their own create / score / download actions."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from runs.permissions import HasPermissions
from runs.watchdog import watch_from_web

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
    "phase",
    "phase_done",
    "phase_total",
    "progress_percent",
    "eta_seconds",
    "metrics",
    "error",
    "cancel_requested",
    "dispatched_at",
    "dispatch_attempts",
    "worker_lost_at",
    "resumes",
    "queue",
]


class TrainingRunSerializerMixin(serializers.Serializer):
    """Fields every TrainingRun subclass has."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)
    eta_seconds = serializers.SerializerMethodField(help_text="Time left at the pace so far, while running.")

    def get_eta_seconds(self, run) -> int | None:
        return None if run.eta is None else int(run.eta.total_seconds())


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


def training_run_permissions(app_label: str, model_name: str) -> dict[str, tuple[str, ...]]:
    """What each of TrainingRunViewSet's actions needs, for the run model `app_label.model_name`."""
    view, add, change = (f"{app_label}.{verb}_{model_name}" for verb in ("view", "add", "change"))
    return {
        "list": (view,),
        "retrieve": (view,),
        "logs": (view,),
        "create": (add,),  # start a run
        "cancel": (change,),
        "resume": (change,),
    }


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """List, read, cancel and read the log of a TrainingRun; the reward-model and policy run endpoints extend it.

    Subclasses set `required_permissions` from `training_run_permissions` (view to read, add to start, change to
    cancel or resume), plus their own actions."""

    permission_classes = [HasPermissions]
    required_permissions: dict[str, tuple[str, ...]] = {}

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        watch_from_web()  # every read of runs notices a dead worker (rate-limited), with no worker or page watching

    def cancel_run(self, run) -> bool:
        return run.request_cancel()

    @extend_schema(summary="Cancel a run: at once when queued, at the next step when running", request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not self.cancel_run(run):
            raise service_error(ValueError(f"{run} has already finished ({run.get_status_display()})."))
        return Response(self.get_serializer(run).data)

    @extend_schema(summary="Resume a run that lost its worker, from its last resumable checkpoint", request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not run.resume():
            raise service_error(ValueError(f"{run} cannot be resumed: only a run that lost its worker can."))
        return Response(self.get_serializer(run).data)

    @extend_schema(summary="The run's training log, step by step", responses=TrainingLogSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_fields=[])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(self.get_object().logs.order_by("step", "pk"))
        return self.get_paginated_response(TrainingLogSerializer(page, many=True).data)


class AnyContentNegotiation(BaseContentNegotiation):
    """A download is what it is whatever the client accepts; errors still come as JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
