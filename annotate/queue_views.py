"""Staff page "Queue": the order in which annotators get batches, with reorder and pause/resume.

Every action is a small POST (htmx swaps the table in place; without JavaScript the form posts and the page
reloads), so staff never need the Django admin to decide what gets judged next.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Batch, Judgment
from rlhf.numbers import INT32_MAX, INT32_MIN, parse_whole_number
from runs.permissions import permission_required

MOVES = ("up", "down")


@dataclass
class QueueRow:
    batch: Batch
    position: int | None  # place among the active batches (1 = handed out first); None when paused
    items: int
    judgments: int


def queue_rows() -> list[QueueRow]:
    """Every batch in queue order, with its item and judgment counts."""
    judgments = (
        Judgment.objects.filter(item__batch=OuterRef("pk"))
        .order_by()
        .values("item__batch")
        .annotate(n=Count("pk"))
        .values("n")
    )
    batches = Batch.objects.in_queue_order().annotate(
        n_items=Count("items"),
        n_judgments=Coalesce(Subquery(judgments, output_field=IntegerField()), Value(0)),
    )
    rows, position = [], 0
    for batch in batches:
        if batch.active:
            position += 1
        rows.append(QueueRow(batch, position if batch.active else None, batch.n_items, batch.n_judgments))
    return rows


def _queue_response(request: HttpRequest, error: str = "") -> HttpResponse:
    """The table for htmx to swap in (200 even with an error: htmx swaps only 2xx), else back to the page."""
    if request.htmx:
        return render(request, "queue/_table.html", {"rows": queue_rows(), "error": error})
    if error:
        messages.error(request, error)
    return redirect("queue:index")


@permission_required("annotate.view_batch")
def queue_index(request: HttpRequest) -> HttpResponse:
    return render(request, "queue/index.html", {"rows": queue_rows()})


@permission_required("annotate.change_batch")
@require_POST
def move_batch(request: HttpRequest, pk: int, direction: str) -> HttpResponse:
    """Swap the batch with its neighbour in queue order; priorities are renumbered to keep the new order."""
    if direction not in MOVES:
        return HttpResponse(f"Unknown direction {direction!r}.", status=400)
    with transaction.atomic():
        batches = list(Batch.objects.select_for_update().in_queue_order())
        index = next((i for i, batch in enumerate(batches) if batch.pk == pk), None)
        if index is None:
            return HttpResponse("No such batch.", status=404)
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(batches):
            batches[index], batches[other] = batches[other], batches[index]
            # Equal priorities fall back to age, so a swap alone may not move anything: number the whole queue.
            for rank, batch in enumerate(batches):
                batch.priority = len(batches) - rank
            Batch.objects.bulk_update(batches, ["priority"])
    return _queue_response(request)


@permission_required("annotate.change_batch")
@require_POST
def set_priority(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    priority = parse_whole_number(request.POST.get("priority"), INT32_MIN, INT32_MAX)
    if priority is None:
        return _queue_response(
            request, f"The priority of {batch} must be a whole number between {INT32_MIN} and {INT32_MAX}."
        )
    Batch.objects.filter(pk=pk).update(priority=priority)
    return _queue_response(request)


@permission_required("annotate.change_batch")
@require_POST
def set_active(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause (active=false) or resume (active=true) a batch: annotators get items only from active batches."""
    batch = get_object_or_404(Batch, pk=pk)
    active = request.POST.get("active") == "true"
    Batch.objects.filter(pk=batch.pk).update(active=active)
    return _queue_response(request)
