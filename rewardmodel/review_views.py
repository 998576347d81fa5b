"""Staff page "Review": judgments the reward model confidently disagrees with, and items annotators disagree on.

Marking a judgment wrong (or confirming it) is a small POST; htmx swaps that judgment's cell in place, without
JavaScript the page reloads. Scores come from stored ItemScore rows, filled by a capped Celery task.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotate import review as review_actions
from annotate.models import Judgment
from rewardmodel.models import RewardModelRun
from rewardmodel.review import (
    PAGE_ROWS,
    SCORE_CAP,
    annotator_disagreement_rows,
    batch_ids_of,
    disagreement_rows,
    review_runs,
    unscored_count,
)
from rlhf.numbers import parse_id
from runs.permissions import permission_required

logger = logging.getLogger(__name__)
REVIEW = "annotate.review_judgments"
ACTIONS = ("wrong", "unwrong", "confirm", "unconfirm")


def _run_from(request: HttpRequest) -> RewardModelRun | None:
    runs = review_runs()
    chosen = request.GET.get("run") or request.POST.get("run")
    if chosen:
        run_id = parse_id(chosen)
        return runs.filter(pk=run_id).first() if run_id is not None else None
    return runs.first()


def _min_margin(request: HttpRequest) -> float:
    try:
        return max(0.0, float(request.GET.get("min_margin", "0")))
    except ValueError:
        return 0.0


@permission_required(REVIEW)
def review_index(request: HttpRequest) -> HttpResponse:
    run = _run_from(request)
    min_margin = _min_margin(request)
    batch_ids = batch_ids_of(run) if run else []
    context = {
        "runs": review_runs(),
        "run": run,
        "min_margin": min_margin,
        "score_cap": SCORE_CAP,
        "model_rows": disagreement_rows(run, batch_ids, min_margin) if run else [],
        "unscored": unscored_count(run, batch_ids) if run else 0,
        "annotator_rows": annotator_disagreement_rows(run, batch_ids) if run else [],
        "page_rows": PAGE_ROWS,
    }
    return render(request, "review/index.html", context)


@permission_required(REVIEW)
@require_POST
def review_score(request: HttpRequest) -> HttpResponse:
    """Send up to SCORE_CAP of the run's unscored judged items to the scoring task."""
    run = _run_from(request)
    if run is None:
        messages.error(request, "Pick a succeeded reward-model run.")
        return redirect("review:index")
    from celery import current_app

    try:
        current_app.send_task("rewardmodel.tasks.score_judged_items", args=[run.pk, batch_ids_of(run), SCORE_CAP])
    except Exception as exc:  # the broker is down: say so, nothing else changes
        logger.warning("Could not send review scoring for %s: %s", run, exc)
        messages.error(request, f"Could not reach the task queue ({exc}); try again later.")
    else:
        messages.success(request, f"Scoring up to {SCORE_CAP} judged items with {run}; reload in a moment.")
    return redirect(f"{reverse('review:index')}?run={run.pk}")


@permission_required(REVIEW)
@require_POST
def review_judgment(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Mark wrong (with a note), take the mark back, confirm, or take the confirmation back."""
    if action not in ACTIONS:
        return HttpResponse(f"Unknown action {action!r}.", status=400)
    judgment = get_object_or_404(Judgment, pk=pk)
    if action == "wrong":
        judgment = review_actions.mark_wrong(judgment, request.user, request.POST.get("note", ""))
    elif action == "unwrong":
        judgment = review_actions.unmark_wrong(judgment)
    elif action == "confirm":
        judgment = review_actions.confirm(judgment, request.user)
    else:
        judgment = review_actions.unconfirm(judgment)
    run = _run_from(request)
    if request.htmx:
        return render(request, "review/_judgment.html", {"judgment": judgment, "run": run})
    return redirect(f"{reverse('review:index')}?run={run.pk}" if run else reverse("review:index"))
