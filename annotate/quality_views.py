"""Staff dashboard for annotation quality and preference exports."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from annotate.export import (
    FORMATS,
    PARQUET_TABLES,
    ExportError,
    ExportFilters,
    ExportOptionError,
    PreferenceExport,
    check_date_range,
)
from annotate.forms import BatchesChoiceField, DateInput, batches_with_counts
from annotate.models import Batch, Rating
from annotate.quality import THRESHOLDS, annotator_quality, annotator_report, batch_quality
from arbiter.options import ConfigOptionsForm
from runs.permissions import permission_required, refusal


@dataclass
class Bar:
    label: str
    value: float | None
    text: str
    y: int
    width: float
    warn: bool


CHART_WIDTH = 220  # pixels for the full scale
BAR_HEIGHT = 16
LABEL_WIDTH = 110


def bar_chart(title: str, values: list[tuple[str, float | None, bool]], scale: float = 1.0, percent: bool = True):
    """Bars for a small server-rendered SVG: (label, value, warn) each; None draws no bar."""
    bars = []
    for index, (label, value, warn) in enumerate(values):
        text = "–" if value is None else (f"{value:.0%}" if percent else f"{value:g}")
        width = 0 if value is None or scale <= 0 else max(0.0, min(value / scale, 1.0)) * CHART_WIDTH
        bars.append(Bar(label[:16], value, text, index * (BAR_HEIGHT + 4), round(width, 1), warn))
    return {
        "title": title,
        "bars": bars,
        "height": max(len(bars), 1) * (BAR_HEIGHT + 4),
        "bar_height": BAR_HEIGHT,
        "label_width": LABEL_WIDTH,
        "chart_width": CHART_WIDTH,
        "total_width": LABEL_WIDTH + CHART_WIDTH + 50,
    }


def _annotator_charts(annotators) -> list[dict]:
    t = THRESHOLDS
    return [
        bar_chart(
            "Agreement with the others",
            [(a.username, a.agreement, a.agreement is not None and a.agreement < t.agreement) for a in annotators],
        ),
        bar_chart(
            "Gold accuracy",
            [
                (a.username, a.gold_accuracy, a.gold_accuracy is not None and a.gold_accuracy < t.gold_accuracy)
                for a in annotators
            ],
        ),
        bar_chart(
            "Chose the response shown first",
            [(a.username, a.first_shown_share, (a.first_shown_p_value or 1) < 0.05) for a in annotators],
        ),
        bar_chart("Chose the longer response", [(a.username, a.longer_share, False) for a in annotators]),
    ]


@permission_required("annotate.view_quality")
def quality_index(request: HttpRequest) -> HttpResponse:
    summaries = [batch_quality(batch) for batch in Batch.objects.all()]
    annotators = annotator_quality()
    return render(
        request,
        "quality/index.html",
        {
            "summaries": summaries,
            "annotators": annotators,
            "thresholds": THRESHOLDS,
            "import_username": settings.IMPORT_USERNAME,
        },
    )


@permission_required("annotate.view_quality")
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    quality = batch_quality(batch)
    return render(
        request,
        "quality/batch.html",
        {
            "quality": quality,
            "charts": _annotator_charts(quality.annotators),
            "thresholds": THRESHOLDS,
            "import_username": settings.IMPORT_USERNAME,
        },
    )


@permission_required("annotate.view_quality")
def annotator_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    annotator = get_object_or_404(get_user_model(), pk=user_id)
    report = annotator_report(annotator)
    total = sum(r["count"] for r in report["ratings"])
    ratings_chart = bar_chart(
        "Ratings given",
        [(f"{r['rating']:+d}", r["count"] / total if total else None, False) for r in report["ratings"]],
    )
    overall = report["overall"]
    per_batch = [(row["batch"], row["figures"]) for row in report["per_batch"]]
    return render(
        request,
        "quality/annotator.html",
        {
            "annotator": annotator,
            "overall": overall,
            "overall_rows": [overall] if overall else [],
            "per_batch": per_batch,
            "rankings": report["rankings"],
            "ratings_chart": ratings_chart,
            "rating_labels": Rating.choices,
            "thresholds": THRESHOLDS,
        },
    )


class ExportForm(ConfigOptionsForm):
    """The export's filters: batches, dates and annotators here; the options derived from ExportFilters."""

    config_class = ExportFilters
    batches = BatchesChoiceField(
        queryset=Batch.objects.none(), to_field_name="name", required=False, help_text="None ticked: all batches."
    )
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="trl")
    table = forms.ChoiceField(
        choices=[(t, t) for t in PARQUET_TABLES], initial="trl", required=False, help_text="For parquet."
    )
    since = forms.DateField(required=False, widget=DateInput, help_text="Judgments made on or after this day.")
    until = forms.DateField(required=False, widget=DateInput, help_text="Judgments made on or before this day.")
    annotators = forms.CharField(required=False, help_text="Only these usernames, comma-separated.")
    exclude_annotators = forms.CharField(required=False, help_text="Leave out these usernames, comma-separated.")
    field_order = ["batches", "format", "table", "since", "until", "annotators", "exclude_annotators"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["batches"].queryset = batches_with_counts()

    def clean(self):
        cleaned = super().clean()
        try:
            check_date_range(cleaned.get("since"), cleaned.get("until"))  # ExportFilters' rule
        except ExportOptionError as exc:
            self.add_error(exc.name, str(exc))
        return cleaned

    def export(self) -> PreferenceExport:
        data = self.cleaned_data
        filters = ExportFilters.from_options(data)
        return PreferenceExport(fmt=data["format"], table=data["table"] or "trl", filters=filters)


@permission_required("annotate.export_judgments")
def export(request: HttpRequest) -> HttpResponse:
    """The form (GET without a format) or the streamed download (GET with one)."""
    form = ExportForm(request.GET if "format" in request.GET else None)
    if form.is_bound and form.is_valid():
        if form.cleaned_data.get("usernames"):
            # Real usernames are personal data: a permission of their own, beyond exporting pseudonyms.
            reason = refusal(request.user, ["annotate.export_usernames"])
            if reason is not None:
                raise PermissionDenied(reason)
        try:
            preference_export = form.export()
            chunks = preference_export.chunks()
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            response = StreamingHttpResponse(chunks, content_type=preference_export.content_type)
            response["Content-Disposition"] = f'attachment; filename="{preference_export.filename}"'
            return response
    return render(request, "quality/export.html", {"form": form}, status=400 if form.is_bound else 200)
