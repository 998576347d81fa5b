"""The ranking HIT's one action: save the order typed or dragged so far (htmx), like `views.rate` for pairs.

The order comes as screen tiers in JSON (``[[2], [1, 3]]``: B best, then A and C tied; 1 = "A"), the same shape
the API's rank action takes; annotate.services.rank_item checks it, keeps a partial order as the slot's draft and
stores a complete one as the judgment in the item's own orientation.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotate import services
from annotate.models import Hit
from annotate.views import _own_hit, _redirect, _sample_context, answer_refused, parse_form_number

RANKING_FORMAT = (
    "ranking must be the order as JSON places of response numbers, best first: [[2], [1], [4]] ranks B, A, D."
)


@login_required
@require_POST
def rank(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Save one change of the order; answers with the re-drawn sample and the new progress (htmx).

    A refused order answers 400 (409 for a sample given back) with the reason, shown under the order (HX-Retarget);
    nothing is saved then.
    """
    hit = _own_hit(request, hit_id)
    position = parse_form_number(request.POST.get("position"))
    # Time is bookkeeping: a missing or odd value counts as none and never stops the order being saved.
    elapsed_ms = parse_form_number(request.POST.get("elapsed_ms")) or 0
    if position is None:
        return _ranking_refused(request, hit, None, "position must be a sample number (plain digits, like 2).")
    try:
        screen_tiers = json.loads(request.POST.get("ranking", ""))
    except (ValueError, RecursionError):
        return _ranking_refused(request, hit, position, RANKING_FORMAT)
    try:
        services.rank_item(hit, position, screen_tiers, elapsed_ms)
    except services.AnnotationError as error:
        if hit.is_submitted or Hit.objects.filter(pk=hit.pk, submitted_at__isnull=False).exists():
            messages.error(request, str(error))
            return _redirect(request, reverse("hit", args=[hit.pk]))
        status = 409 if isinstance(error, services.SampleGivenBack) else 400
        return _ranking_refused(request, hit, position, str(error), status=status)
    if not request.htmx:
        return redirect(f"{reverse('hit', args=[hit.pk])}?sample={position}")
    context = _sample_context(hit, position)
    sample_html = render_to_string("annotate/hit.html#sample", context, request)
    progress_html = render_to_string("annotate/hit.html#progress", {**context, "oob": True}, request)
    return HttpResponse(sample_html + progress_html)


def _ranking_refused(
    request: HttpRequest, hit: Hit, position: int | None, reason: str, status: int = 400
) -> HttpResponse:
    """The reason an order was not saved: into the sample's error line (htmx), or the whole page."""
    return answer_refused(
        request, hit, position, reason, status, "annotate/_ranking.html#ranking-error", "ranking_error"
    )
