"""What the run dashboards share (the reward-model and policy apps' pages): htmx polling that stops (and reloads
the page once the run is done), cancel, zip downloads and inline SVG charts.

Templates: `runs/_run.html` holds the chart partial that draws a `line_chart` and the status / progress / cancel
partial; the styles are in static/arbiter.css.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRefresh, HttpResponseStopPolling

from arbiter.streams import ChunkSink
from runs import storage
from runs.models import TrainingRun


def render_polled(
    request: HttpRequest, template_name: str, context: dict, *, done: bool, refresh_when_done: bool = False
) -> HttpResponse:
    """A polled fragment; once `done`, answered with 286 so htmx polls no more.

    `refresh_when_done` also asks htmx to reload the whole page (HX-Refresh) then: a finished run's page has
    more than the polled fragment (samples, human evaluation, score box), and the "… is queued." message of the
    page it was opened with is stale by then.
    """
    if not done:
        return render(request, template_name, context)
    content = render_to_string(template_name, context, request)
    if refresh_when_done and request.htmx:
        refresh = HttpResponseClientRefresh()
        refresh.status_code = HTMX_STOP_POLLING  # and poll no more while the page reloads
        refresh.content = content  # the fragment as it stands, for a client that does not reload
        return refresh
    return HttpResponseStopPolling(content)


def cancel_and_redirect(request: HttpRequest, run: TrainingRun, cancel: Callable[[TrainingRun], bool]) -> HttpResponse:
    """Ask `cancel(run)` (the app's service) to stop the run, say what happened, and go back to its page."""
    if cancel(run):
        messages.info(request, f"{run}: cancel requested." if run.is_active else f"{run} is cancelled.")
    else:
        messages.warning(request, f"{run} had already finished ({run.get_status_display().lower()}).")
    return redirect(run)


def resume_and_redirect(request: HttpRequest, run: TrainingRun) -> HttpResponse:
    """Queue a run that lost its worker again (from its last checkpoint), say so, and go back to its page."""
    step = run.resume_step
    if run.resume():
        queued = f"{run} is queued again, from step {step}." if step else f"{run} is queued again."
        messages.info(request, queued, extra_tags="run-queued")
    else:
        messages.warning(request, f"{run} cannot be resumed ({run.get_status_display().lower()}).")
    return redirect(run)


def zip_download(folder: Path | str, name: str) -> StreamingHttpResponse:
    """`folder` (a path, or a URL in the object store) as `<name>.zip`, streamed, its files under `<name>/`."""
    response = StreamingHttpResponse(zip_stream(folder, root_name=name), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


# Above this many points a line shows the curve better than a dot on each of them.
MAX_DOTS_PER_LINE = 60


def line_chart(
    series: list[tuple[str, str, list[tuple[int, float]]]],
    y_label: str,
    *,
    width: int = 480,
    height: int = 190,
    y_range: tuple[float, float] | None = None,
    x_label: str = "step",
) -> dict | None:
    """Geometry for an inline SVG chart (template `runs/_run.html#chart`): a polyline per (label, css class, points)
    and a dot on each point, so a series of one point (a 1-epoch eval, a 1-step run) still shows. The x axis is the
    step (or `x_label`: any non-negative quantity, e.g. KL), the y axis `y_label`.

    None when there is nothing to draw yet.
    """
    all_points = [p for _, _, points in series for p in points]
    if not all_points:
        return None
    x_max = max(x for x, _ in all_points) or 1
    if isinstance(x_max, float):
        x_max = round(x_max, 3) or 1
    if y_range is None:
        ys = [y for _, y in all_points]
        y_range = (min(ys), max(ys))
    y_min, y_max = y_range
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    # Room on the left for the y tick values and the rotated y label, below for the x ticks and label.
    left, right, top, bottom = 56, width - 16, 24, height - 34
    plot_w, plot_h = right - left, bottom - top

    def xy(x: float, y: float) -> tuple[float, float]:
        return round(left + plot_w * x / x_max, 1), round(top + plot_h * (1 - (y - y_min) / (y_max - y_min)), 1)

    lines = []
    for label, css, points in series:
        if not points:
            continue
        coordinates = [xy(x, y) for x, y in points]
        dots = len(points) <= MAX_DOTS_PER_LINE
        lines.append(
            {
                "label": label,
                "css": css,
                "points": " ".join(f"{cx},{cy}" for cx, cy in coordinates),
                "single": len(points) == 1,
                # (x, y, step, value) of each dot, for the circle and its tooltip.
                "dots": [(cx, cy, x, y) for (cx, cy), (x, y) in zip(coordinates, points, strict=True)] if dots else [],
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "top": top,
        "bottom": bottom,
        "y_min": y_min,
        "y_max": y_max,
        "x_min": 0,
        "x_max": x_max,
        "x_label": x_label,
        "y_label": y_label,
        "x_label_x": (left + right) // 2,
        "y_label_y": (top + bottom) // 2,
        "dot_radius": 2.5,
        "lines": lines,
    }


def zip_stream(folder: Path | str, root_name: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Zip `folder` into a stream, a chunk at a time: a large model never sits whole in memory.

    `folder` is a path or an object-store URL (runs.storage): files are read from where they live, a chunk at a time,
    never copied here first."""
    location = str(folder)
    pipe = ChunkSink()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for relative, size in storage.iter_files(location):
            arcname = f"{root_name}/{relative}"
            large = size > zipfile.ZIP64_LIMIT
            with (
                storage.open_file(location, relative) as source,
                archive.open(arcname, "w", force_zip64=large) as target,
            ):
                while block := source.read(chunk_size):
                    target.write(block)
                    yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()
