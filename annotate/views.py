"""The annotator's pages: home, the HIT page with its htmx partials, submit and thanks.

Views stay thin: every change goes through annotate.services; a HIT is always
looked up together with its annotator, so another user's HIT answers 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from annotate import services
from annotate.models import Hit, Rating
from annotate.rendering import render_markdown_cached
from annotate.selectors import ScreenSample, hit_progress, screen_sample_at

ROLE_NAMES = {"user": "User", "assistant": "AI", "system": "System"}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Annotators go straight to their work; staff get a start page with their tools."""
    if request.user.is_staff:
        return render(request, "annotate/home.html", {"current_hit": services.current_hit(request.user)})
    return start_next_hit(request)


@login_required
def start_next_hit(request: HttpRequest) -> HttpResponse:
    hit = services.assign_hit(request.user)
    if hit is None:
        return render(request, "annotate/home.html", {"no_work": True})
    return redirect("hit", hit_id=hit.pk)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def hit_page(request: HttpRequest, hit_id: int) -> HttpResponse:
    hit = _own_hit(request, hit_id)
    if hit.is_submitted:
        return _redirect(request, reverse("hit_done", args=[hit.pk]))
    sample = request.GET.get("sample")
    if sample is not None and not sample.isdigit():
        raise Http404("sample must be a sample number")
    context = _sample_context(hit, int(sample) if sample else None)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "annotate/hit.html#sample", context)
    return render(request, "annotate/hit.html", context)


@login_required
@require_POST
def rate(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Save one click; answers with the re-drawn sample and the new progress (htmx)."""
    hit = _own_hit(request, hit_id)
    try:
        position = int(request.POST["position"])
        screen_rating = int(request.POST["rating"])
        elapsed_ms = int(request.POST.get("elapsed_ms") or 0)
    except (KeyError, ValueError):
        return HttpResponseBadRequest(
            "position and rating are required; position, rating and elapsed_ms must be whole numbers."
        )
    try:
        services.rate_item(hit, position, screen_rating, elapsed_ms)
    except services.AnnotationError as error:
        messages.error(request, str(error))
        return _redirect(request, reverse("hit", args=[hit.pk]))
    if not request.htmx:
        return redirect(f"{reverse('hit', args=[hit.pk])}?sample={position}")
    context = _sample_context(hit, position)
    sample_html = render_to_string("annotate/hit.html#sample", context, request)
    progress_html = render_to_string("annotate/hit.html#progress", {**context, "oob": True}, request)
    return HttpResponse(sample_html + progress_html)


@login_required
@require_POST
def record_time(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Time spent on an already-rated sample the annotator left without a new click."""
    hit = _own_hit(request, hit_id)
    try:
        services.add_time(hit, int(request.POST["position"]), int(request.POST["elapsed_ms"]))
    except (KeyError, ValueError):
        return HttpResponseBadRequest("position and elapsed_ms are required whole numbers.")
    return HttpResponse(status=204)


@login_required
@require_POST
def submit(request: HttpRequest, hit_id: int) -> HttpResponse:
    hit = _own_hit(request, hit_id)
    try:
        services.submit_hit(hit)
    except services.AnnotationError as error:
        messages.error(request, str(error))
        return redirect("hit", hit_id=hit.pk)
    return redirect("hit_done", hit_id=hit.pk)


@login_required
@require_GET
def done(request: HttpRequest, hit_id: int) -> HttpResponse:
    hit = _own_hit(request, hit_id)
    if not hit.is_submitted:
        return redirect("hit", hit_id=hit.pk)
    return render(request, "annotate/done.html", {"hit": hit})


def _own_hit(request: HttpRequest, hit_id: int) -> Hit:
    return get_object_or_404(Hit.objects.select_related("batch"), pk=hit_id, annotator=request.user)


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works for htmx requests (a whole-page visit, not a swap)."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _sample_context(hit: Hit, position: int | None) -> dict:
    """Everything the HIT page shows for one sample; `position` None means the first un-marked one."""
    progress = hit_progress(hit)
    positions = progress.positions
    if position is None:
        position = progress.first_unmarked() or (positions[0] if positions else 1)
    if position not in progress.marked:
        raise Http404(f"This HIT has no sample {position}.")
    sample = screen_sample_at(hit, position)
    index = positions.index(position)
    return {
        "hit": hit,
        "batch": hit.batch,
        "position": position,
        "slot_marked": sample.marked,
        "sample_number": index + 1,
        "total": progress.total,
        "completed": progress.completed,
        "all_marked": progress.all_marked,
        "marked_positions": list(progress.marked.items()),
        "previous_position": positions[index - 1] if index > 0 else None,
        "next_position": positions[index + 1] if index + 1 < len(positions) else None,
        "next_unmarked": progress.first_unmarked(besides=position),
        "guidelines_html": render_markdown_cached([hit.batch.guidelines])[0],
        **_sample_html(sample),
        "rating_options": [
            {"key": key, "value": value, "label": label, "checked": value == sample.rating}
            for key, (value, label) in enumerate(Rating.choices, start=1)
        ],
    }


def _sample_html(sample: ScreenSample) -> dict:
    """The sample's texts as rendered markdown, in screen order.

    Each text is rendered once and kept (render_markdown_cached): a rating click redraws the sample, and
    re-rendering a long response on every click cost seconds.
    """
    turns = sample.earlier_turns
    texts = [m.get("content", "") for m in turns]
    texts += [sample.instruction, sample.input, sample.response_1, sample.response_2]
    *turn_html, instruction_html, input_html, response_1_html, response_2_html = render_markdown_cached(texts)
    return {
        "transcript": [
            {"role": ROLE_NAMES.get(m.get("role", ""), m.get("role", "")), "html": html}
            for m, html in zip(turns, turn_html, strict=True)
        ],
        "instruction_html": instruction_html,
        "input_html": input_html if sample.input.strip() else "",
        "response_1_html": response_1_html,
        "response_2_html": response_2_html,
    }
