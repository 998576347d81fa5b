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
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from annotate import services
from annotate.models import Hit, Rating
from annotate.ranking_screen import ranking_context
from annotate.rendering import render_markdown_cached
from annotate.selectors import HitProgress, ScreenSample, hit_progress, screen_sample_at
from rlhf.numbers import INT32_MAX, parse_whole_number
from runs.permissions import is_staff_member

# Fields read from one submit: a HIT has at most a few dozen samples.
MAX_TIME_FIELDS = 200

ROLE_NAMES = {"user": "User", "assistant": "AI", "system": "System"}


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Annotators go straight to their current HIT; staff get a start page with their tools.

    Reading a page never hands out work: without a current HIT the page offers a button that POSTs to next_hit.
    """
    current = services.current_hit(request.user)
    if current is not None and not is_staff_member(request.user):
        return redirect("hit", hit_id=current.pk)
    return render(request, "annotate/home.html", {"current_hit": current})


@login_required
@require_http_methods(["GET", "POST"])
def start_next_hit(request: HttpRequest) -> HttpResponse:
    """POST: the current HIT or a new one. GET only shows the way there (the current HIT, or the start button)."""
    if request.method == "GET":
        current = services.current_hit(request.user)
        if current is not None:
            return redirect("hit", hit_id=current.pk)
        return render(request, "annotate/home.html", {"current_hit": None})
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
    position = parse_whole_number(sample, 0, INT32_MAX) if sample is not None else None
    if sample is not None and position is None:
        raise Http404("sample must be a sample number")
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "annotate/hit.html#sample", _sample_context(hit, position))
    return render(request, "annotate/hit.html", _sample_context(hit, position, page=True))


def parse_form_number(value: str | None) -> int | None:
    """A position, rating or time in milliseconds as a form sends it (rlhf.numbers' rule, within 32 bits)."""
    return parse_whole_number(value, -INT32_MAX, INT32_MAX)


@login_required
@require_POST
def rate(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Save one click; answers with the re-drawn sample and the new progress (htmx).

    A refused rating answers 400 (409 for a sample given back) with the reason, which htmx puts under the
    rating buttons (HX-Retarget) and a page without htmx shows above the sample.
    """
    position = parse_form_number(request.POST.get("position"))
    screen_rating = parse_form_number(request.POST.get("rating"))
    # Time is bookkeeping: a missing or odd value counts as none and never stops the rating.
    elapsed_ms = parse_form_number(request.POST.get("elapsed_ms")) or 0
    if position is None:
        hit = _own_hit(request, hit_id)
        return _rating_refused(request, hit, None, "position must be a sample number (plain digits, like 2).")
    try:
        # The service finds the HIT with its annotator while locking it; a HIT not theirs is not found.
        saved = services.rate_sample(hit_id, request.user.pk, position, screen_rating, elapsed_ms, with_item=True)
    except Hit.DoesNotExist:
        raise Http404("No such HIT.") from None
    except services.AnnotationError as error:
        hit = _own_hit(request, hit_id)
        if hit.is_submitted:
            messages.error(request, str(error))
            return _redirect(request, reverse("hit", args=[hit.pk]))
        status = 409 if isinstance(error, services.SampleGivenBack) else 400
        return _rating_refused(request, hit, position, str(error), status=status)
    hit = saved.hit
    if not request.htmx:
        return redirect(f"{reverse('hit', args=[hit.pk])}?sample={position}")
    # What the click changed: the sample's answer and dots, and the progress. The sample's texts are the same
    # HTML as before the click (render_markdown_cached, kept in memory), and the progress comes with the rating.
    context = _sample_context(hit, position, progress=saved.progress, sample=saved.sample)
    sample_html = render_to_string("annotate/hit.html#sample", context, request)
    progress_html = render_to_string("annotate/hit.html#progress", {**context, "oob": True}, request)
    return HttpResponse(sample_html + progress_html + _prefetched_sample(request, hit, context["next_unmarked"], saved))


def _prefetched_sample(request: HttpRequest, hit: Hit, position: int | None, saved: services.SavedRating) -> str:
    """The next un-marked sample, drawn now and sent out of band with the rating: hit.js shows it when the annotator
    moves there, so moving on costs no request (one request per judgment). Empty when every sample is marked."""
    if position is None:
        return render_to_string("annotate/hit.html#prefetched", {"oob": True}, request)
    context = _sample_context(hit, position, progress=saved.progress, sample=saved.next_sample)
    return render_to_string("annotate/hit.html#prefetched", {**context, "oob": True, "prefetched": True}, request)


def _rating_refused(
    request: HttpRequest, hit: Hit, position: int | None, reason: str, status: int = 400
) -> HttpResponse:
    """The reason a rating was not saved: into the sample's error line (htmx), or the whole page."""
    return answer_refused(request, hit, position, reason, status, "annotate/hit.html#rating-error", "rating_error")


def answer_refused(
    request: HttpRequest, hit: Hit, position: int | None, reason: str, status: int, partial: str, key: str
) -> HttpResponse:
    """The reason an answer (a rating, an order) was not saved: the `partial` whose element id is `key` with dashes
    (htmx swaps it in place), or the whole page with the reason under `key`."""
    if request.htmx:
        response = render(request, partial, {key: reason}, status=status)
        return reswap(retarget(response, "#" + key.replace("_", "-")), "outerHTML")
    positions = hit_progress(hit).positions
    context = _sample_context(hit, position if position in positions else None, page=True)
    return render(request, "annotate/hit.html", {**context, key: reason}, status=status)


@login_required
@require_POST
def record_time(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Time spent on an already-rated sample the annotator left without a new click."""
    hit = _own_hit(request, hit_id)
    position = parse_form_number(request.POST.get("position"))
    elapsed_ms = parse_form_number(request.POST.get("elapsed_ms"))
    if position is None or elapsed_ms is None:
        return HttpResponseBadRequest("position and elapsed_ms are required whole numbers.")
    services.add_time(hit, position, elapsed_ms)
    return HttpResponse(status=204)


@login_required
@require_POST
def submit(request: HttpRequest, hit_id: int) -> HttpResponse:
    """Submit the HIT; first the time spent on rated samples since their rating, which hit.js keeps until now
    (fields elapsed_ms_<position>: one request instead of one per move)."""
    hit = _own_hit(request, hit_id)
    times = {}
    for key, value in list(request.POST.items())[:MAX_TIME_FIELDS]:
        position = parse_whole_number(key.removeprefix("elapsed_ms_")) if key.startswith("elapsed_ms_") else None
        elapsed_ms = parse_whole_number(value)
        if position is not None and elapsed_ms is not None:
            times[position] = elapsed_ms
    services.add_times(hit, times)
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


def _sample_context(
    hit: Hit,
    position: int | None,
    *,
    progress: HitProgress | None = None,
    sample: ScreenSample | None = None,
    page: bool = False,
) -> dict:
    """Everything the HIT page shows for one sample; `position` None means the first un-marked one.

    `progress` and `sample` when the caller has them already (a rating just read them); `page` adds what only the
    whole page shows (the guidelines).
    """
    progress = progress or hit_progress(hit)
    positions = progress.positions
    if position is None:
        position = progress.first_unmarked() or (positions[0] if positions else 1)
    if position not in progress.marked:
        raise Http404(f"This HIT has no sample {position}.")
    sample = sample or screen_sample_at(hit, position)
    index = positions.index(position)
    given_back = services.given_back_positions(hit) if not progress.all_marked else set()
    context = {
        "hit": hit,
        "batch": hit.batch,
        "position": position,
        "slot_marked": sample.marked,
        "sample_number": index + 1,
        "total": progress.total,
        "completed": progress.completed,
        "all_marked": progress.all_marked,
        "can_submit": services.samples_missing(progress, given_back) == 0,  # submit_hit's rule
        "given_back": position in given_back,
        "marked_positions": list(progress.marked.items()),
        "previous_position": positions[index - 1] if index > 0 else None,
        "next_position": positions[index + 1] if index + 1 < len(positions) else None,
        "next_unmarked": progress.first_unmarked(besides=position),
        **_sample_html(sample),
        "rating_options": [
            {"key": key, "value": value, "label": label, "checked": value == sample.rating}
            for key, (value, label) in enumerate(Rating.choices, start=1)
        ],
    }
    if sample.is_ranking:
        context.update(ranking_context(sample, hit.batch.allow_ties))
    if page:
        context["guidelines_html"] = render_markdown_cached([hit.batch.guidelines])[0]
    return context


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
