"""Reward-model dashboard (staff only): list, start, watch, cancel, download, score."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from rewardmodel.forms import RewardRunForm
from rewardmodel.models import RewardModelRun
from rewardmodel.services import RewardRunError, cancel_reward_run, score_with_run, start_reward_run

# htmx stops polling when a response has this status.
HTMX_STOP_POLLING = 286


def staff_required(view: Callable) -> Callable:
    """Anonymous visitors go to the login page; signed-in non-staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can use the reward-model dashboard.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = RewardModelRun.objects.select_related("created_by").prefetch_related("batches")
    return render(request, "rewardmodel/run_list.html", {"runs": runs})


@staff_required
def run_new(request: HttpRequest) -> HttpResponse:
    form = RewardRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = start_reward_run(
                request.user,
                form.cleaned_data["batches"],
                aggregate=form.cleaned_data["aggregate"],
                **form.training_options(),
            )
        except RewardRunError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{run} is queued.")
            return redirect(run)
    return render(request, "rewardmodel/run_new.html", {"form": form})


@staff_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    return render(request, "rewardmodel/run_detail.html", _live_context(run))


@staff_required
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the run page; the last poll (run finished) answers 286."""
    run = get_object_or_404(RewardModelRun, pk=pk)
    response = render(request, "rewardmodel/run_detail.html#live", _live_context(run))
    if run.is_finished:
        response.status_code = HTMX_STOP_POLLING
    return response


@staff_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    if cancel_reward_run(run):
        messages.info(request, f"{run}: cancel requested." if run.is_active else f"{run} is cancelled.")
    else:
        messages.warning(request, f"{run} had already finished ({run.get_status_display().lower()}).")
    return redirect(run)


@staff_required
def run_download(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    folder = run.artifact_dir
    if folder is None:
        return HttpResponse(f"{run} has no trained model to download.", status=404, content_type="text/plain")
    response = StreamingHttpResponse(_zip_stream(folder, root_name=folder.name), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{folder.name}.zip"'
    return response


@staff_required
@require_POST
def run_score(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(RewardModelRun, pk=pk)
    prompt, response_1, response_2 = (request.POST.get(k, "") for k in ("prompt", "response_1", "response_2"))
    context = {"run": run, "prompt": prompt, "response_1": response_1, "response_2": response_2}
    try:
        context["rewards"] = score_with_run(run, prompt, response_1, response_2)
    except RewardRunError as exc:
        context["score_error"] = str(exc)
    if request.htmx:
        # 200 even for a bad entry: htmx does not swap 4xx answers in, and the message must show.
        return render(request, "rewardmodel/run_detail.html#score-result", context)
    status = 400 if "score_error" in context else 200
    return render(request, "rewardmodel/run_detail.html", {**_live_context(run), **context}, status=status)


# Helpers -----------------------------------------------------------------------------------------


def _live_context(run: RewardModelRun) -> dict:
    loss = run.curve("loss")
    eval_loss = run.curve("eval_loss")
    eval_accuracy = run.curve("eval_accuracy")
    return {
        "run": run,
        "loss_chart": line_chart([("train loss", "train", loss), ("eval loss", "eval", eval_loss)]),
        "accuracy_chart": line_chart([("eval accuracy", "eval", eval_accuracy)], y_range=(0.0, 1.0)),
    }


def line_chart(
    series: list[tuple[str, str, list[tuple[int, float]]]],
    width: int = 480,
    height: int = 180,
    pad: int = 36,
    y_range: tuple[float, float] | None = None,
) -> dict | None:
    """Geometry for an inline SVG line chart: one polyline per (label, css class, points).

    None when there is nothing to draw yet.
    """
    all_points = [p for _, _, points in series for p in points]
    if not all_points:
        return None
    x_max = max(x for x, _ in all_points) or 1
    if y_range is None:
        ys = [y for _, y in all_points]
        y_range = (min(ys), max(ys))
    y_min, y_max = y_range
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    plot_w, plot_h = width - 2 * pad, height - 2 * pad

    def xy(x: float, y: float) -> str:
        return f"{pad + plot_w * x / x_max:.1f},{pad + plot_h * (1 - (y - y_min) / (y_max - y_min)):.1f}"

    lines = [
        {"label": label, "css": css, "points": " ".join(xy(x, y) for x, y in points), "single": len(points) == 1}
        for label, css, points in series
        if points
    ]
    return {
        "width": width,
        "height": height,
        "left": pad,
        "right": width - pad,
        "top": pad,
        "bottom": height - pad,
        "y_min": y_min,
        "y_max": y_max,
        "x_max": x_max,
        "lines": lines,
    }


class _ZipPipe(io.RawIOBase):
    """A write-only sink whose bytes are handed out as they come (zipfile on an unseekable stream)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def _zip_stream(folder: Path, root_name: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Zip `folder` into a stream, a chunk at a time: a large model never sits whole in memory."""
    pipe = _ZipPipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            arcname = f"{root_name}/{path.relative_to(folder).as_posix()}"
            large = path.stat().st_size > zipfile.ZIP64_LIMIT
            with path.open("rb") as source, archive.open(arcname, "w", force_zip64=large) as target:
                while block := source.read(chunk_size):
                    target.write(block)
                    yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()
