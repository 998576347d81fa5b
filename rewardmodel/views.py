"""Reward-model dashboard (staff only): list, start, watch, cancel, download, score."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from rewardmodel.forms import RewardRunForm
from rewardmodel.models import RewardModelRun, ScoreJob
from rewardmodel.services import RewardRunError, cancel_reward_run, start_reward_run, start_score_job
from rewardmodel.train import DEFAULT_BACKBONE
from runs import storage
from runs.dashboard import cancel_and_redirect, line_chart, render_polled, resume_and_redirect, zip_download
from runs.permissions import permission_required
from runs.watchdog import watch_from_web


@permission_required("rewardmodel.view_rewardmodelrun")
def run_list(request: HttpRequest) -> HttpResponse:
    watch_from_web()  # a listed run whose worker died shows as failed, with no worker or run page watching
    runs = RewardModelRun.objects.select_related("created_by").prefetch_related("batches")
    return render(request, "rewardmodel/run_list.html", {"runs": runs})


@permission_required("rewardmodel.add_rewardmodelrun")
def run_new(request: HttpRequest) -> HttpResponse:
    form = RewardRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        options = form.training_options()
        if form.cleaned_data["base_run"] is not None and options.get("backbone") == DEFAULT_BACKBONE:
            options.pop("backbone")  # the field's untouched default: the base run's own backbone applies
        try:
            run = start_reward_run(
                request.user,
                form.cleaned_data["batches"],
                aggregate=form.cleaned_data["aggregate"],
                ranking_aggregate=form.cleaned_data["ranking_aggregate"],
                exclude_flagged=form.cleaned_data["exclude_flagged"],
                base_run=form.cleaned_data["base_run"],
                queue=form.cleaned_data["queue"],
                **options,
            )
        except RewardRunError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{run} is queued.", extra_tags="run-queued")
            return redirect(run)
    return render(request, "rewardmodel/run_new.html", {"form": form})


@permission_required("rewardmodel.view_rewardmodelrun")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    return render(request, "rewardmodel/run_detail.html", _live_context(run))


@permission_required("rewardmodel.view_rewardmodelrun")
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the run page; the last poll (run finished) answers 286."""
    run = get_object_or_404(RewardModelRun, pk=pk)
    return render_polled(
        request, "rewardmodel/run_detail.html#live", _live_context(run), done=run.is_finished, refresh_when_done=True
    )


@permission_required("rewardmodel.change_rewardmodelrun")
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return cancel_and_redirect(request, get_object_or_404(RewardModelRun, pk=pk), cancel_reward_run)


@permission_required("rewardmodel.change_rewardmodelrun")
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return resume_and_redirect(request, get_object_or_404(RewardModelRun, pk=pk))


@permission_required("rewardmodel.view_rewardmodelrun")
def run_download(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    location = run.artifact_location  # streamed from where it lives, never copied here first
    if location is None:
        return HttpResponse(f"{run} has no trained model to download.", status=404, content_type="text/plain")
    return zip_download(location, storage.basename(location))


@permission_required("rewardmodel.view_rewardmodelrun")
@require_POST
def run_score(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    prompt, response_1, response_2 = (request.POST.get(k, "") for k in ("prompt", "response_1", "response_2"))
    context = {"run": run, "prompt": prompt, "response_1": response_1, "response_2": response_2}
    try:
        # A worker loads the model and scores (queue `celery`); the box polls the job until it is done.
        context["job"] = start_score_job(run, request.user, prompt, response_1, response_2)
    except RewardRunError as exc:
        context["score_error"] = str(exc)
    if request.htmx:
        # 200 even for a bad entry: htmx does not swap 4xx answers in, and the message must show.
        return render(request, "rewardmodel/run_detail.html#score-result", context)
    status = 400 if "score_error" in context else 200
    return render(request, "rewardmodel/run_detail.html", {**_live_context(run), **context}, status=status)


@permission_required("rewardmodel.view_rewardmodelrun")
def score_job(request: HttpRequest, pk: int, job_id: int) -> HttpResponse:
    """The score box's answer while its job runs (polled by htmx); 286 once it is done, which stops the polling."""
    job = get_object_or_404(ScoreJob.objects.select_related("run"), pk=job_id, run_id=pk)
    response = render(request, "rewardmodel/run_detail.html#score-result", {"run": job.run, "job": job})
    if job.is_finished and request.htmx:
        response.status_code = 286
    return response


# Helpers -----------------------------------------------------------------------------------------


def _live_context(run: RewardModelRun) -> dict:
    run.check_worker()  # every poll of a running run notices a dead worker (no write unless it is lost)
    loss = run.curve("loss")
    eval_loss = run.curve("eval_loss")
    eval_accuracy = run.curve("eval_accuracy")
    return {
        "run": run,
        "loss_chart": line_chart([("train loss", "train", loss), ("eval loss", "eval", eval_loss)], "loss"),
        "accuracy_chart": line_chart([("eval accuracy", "eval", eval_accuracy)], "accuracy", y_range=(0.0, 1.0)),
    }
