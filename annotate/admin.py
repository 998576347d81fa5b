from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import ngettext

from annotate.batch_settings import kind_setting_errors
from annotate.import_jobs import runs_in_background, start_import_job
from annotate.importers import (
    FORMAT_CHOICES,
    MAX_GUIDELINES_CHARS,
    MAX_OVERLAP,
    MAX_SAMPLES_PER_HIT,
    NEW_BATCH_SETTINGS,
    ImportFileError,
    import_comparisons,
    item_errors,
    size_limit_message,
)
from annotate.models import Batch, Hit, HitSlot, ImportJob, Item, Judgment
from annotate.rendering import visible_controls


class ImportComparisonsForm(forms.Form):
    file = forms.FileField(help_text="JSON array or JSONL, optionally gzipped.")
    batch_name = forms.CharField(
        max_length=200, help_text="A new batch is created; an existing one gets the items added."
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="auto")
    as_judgments = forms.BooleanField(
        required=False,
        label="As judgments",
        help_text="Also store the file's known preference (hh, trl) or order (ranking) as judgments by the import "
        "user.",
    )
    allow_ties = forms.BooleanField(
        required=False,
        label="Allow ties",
        help_text="Ranking files: the new batch allows ties (nested lists in ranking, equal scores).",
    )
    # A choice rather than a checkbox: "not ticked" could not tell "inactive" from "the usual default".
    active = forms.TypedChoiceField(
        label="Active for annotators",
        choices=[("", "Default: no when imported as judgments, otherwise yes"), ("yes", "Yes"), ("no", "No")],
        coerce=lambda value: {"yes": True, "no": False}.get(value),
        empty_value=None,
        required=False,
        help_text="Annotators get items only from active batches; staff can pause and resume on the Queue page.",
    )
    # A new batch's settings; empty: the batch defaults. An existing batch keeps its own (change them on its page).
    guidelines = forms.CharField(
        required=False,
        max_length=MAX_GUIDELINES_CHARS,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="New batch: the instructions annotators see above every HIT (Markdown).",
    )
    overlap = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_OVERLAP,
        help_text="New batch: how many annotators judge each item (default 1).",
    )
    samples_per_hit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SAMPLES_PER_HIT,
        label="Samples per HIT",
        help_text="New batch: items in one HIT (default 6).",
    )

    def batch_settings(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in NEW_BATCH_SETTINGS}


class BatchForm(forms.ModelForm):
    """The admin's batch form (the admin adds the model and every field): kind settings checked together."""

    def clean(self) -> dict:
        cleaned = super().clean()
        errors = kind_setting_errors(
            self.instance if self.instance.pk else None,
            cleaned.get("kind", Batch.Kind.PAIRWISE),
            cleaned.get("ranking_size"),
            cleaned.get("allow_ties", False),
        )
        for name, message in errors.items():
            self.add_error(name, message)
        return cleaned


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    form = BatchForm
    list_display = [
        "shown_name", "kind", "ranking_size", "active", "priority", "samples_per_hit", "overlap", "created_at",
    ]  # fmt: skip
    list_filter = ["active", "kind"]

    @admin.display(description="name", ordering="name")
    def shown_name(self, batch: Batch) -> str:
        return str(batch)  # the name with its bidirectional controls visible (Batch.__str__)

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_comparisons_view)
        job_view = self.admin_site.admin_view(self.import_job_view)
        return [
            path("import/", import_view, name="annotate_batch_import"),
            path("import/<int:job_id>/", job_view, name="annotate_batch_import_job"),
            *super().get_urls(),
        ]

    def _check_import_permission(self, request: HttpRequest) -> None:
        if not (self.has_add_permission(request) and request.user.has_perm("annotate.add_item")):
            raise PermissionDenied

    def import_comparisons_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a comparisons file: the same all-or-nothing import as the command.

        The upload goes to a temporary file on disk (FILE_UPLOAD_MAX_MEMORY_SIZE), is refused while it arrives
        when over IMPORT_MAX_BYTES, and is imported by a Celery task with a progress page when over
        IMPORT_BACKGROUND_BYTES.
        """
        self._check_import_permission(request)
        form = ImportComparisonsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and getattr(request, "upload_refused", False):
            form = ImportComparisonsForm(request.POST)  # the file was dropped: say why rather than "required"
            form.is_valid()
            form.errors.pop("file", None)
            form.add_error(None, f"{size_limit_message('The upload is larger than')}. Nothing was imported.")
        elif request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if runs_in_background(upload):
                job = start_import_job(
                    upload,
                    upload.name,
                    form.cleaned_data["batch_name"],
                    fmt=form.cleaned_data["format"],
                    as_judgments=form.cleaned_data["as_judgments"],
                    active=form.cleaned_data["active"],
                    created_by=request.user,
                    allow_ties=form.cleaned_data["allow_ties"],
                    batch_settings=form.batch_settings(),
                )
                return HttpResponseRedirect(reverse("admin:annotate_batch_import_job", args=[job.pk]))
            try:
                result = import_comparisons(
                    upload,
                    form.cleaned_data["batch_name"],
                    fmt=form.cleaned_data["format"],
                    as_judgments=form.cleaned_data["as_judgments"],
                    created_by=request.user,
                    active=form.cleaned_data["active"],
                    allow_ties=form.cleaned_data["allow_ties"],
                    batch_settings=form.batch_settings(),
                )
            except ImportFileError as exc:
                form.add_error(None, f"{upload.name}: {exc}. Nothing was imported.")
            else:
                items = ngettext("%(n)d item", "%(n)d items", result.count) % {"n": result.count}
                message = f"Imported {items} into batch {result.batch.name}."
                if result.judgment_count:
                    count = result.judgment_count
                    judgments = ngettext("%(n)d judgment", "%(n)d judgments", count) % {"n": count}
                    message += f" Stored {judgments} by {result.judgments_by}."
                message += " The batch is active." if result.batch.active else " The batch is inactive (paused)."
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:annotate_batch_change", args=[result.batch.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import comparisons",
            "form": form,
        }
        return TemplateResponse(request, "admin/annotate/batch/import_comparisons.html", context)

    def import_job_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """A background import's progress; the page polls itself (htmx) until the job ends."""
        self._check_import_permission(request)
        job = get_object_or_404(ImportJob.objects.select_related("batch"), pk=job_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": visible_controls(f"Import of {job.file_name}"),
            "job": job,
        }
        template = "admin/annotate/batch/import_job.html"
        if request.htmx:
            template += "#job-progress"
        return TemplateResponse(request, template, context)


class ItemForm(forms.ModelForm):
    """The admin's item form: the importer's checks (item_errors), so an item saved here is one an import writes."""

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors or cleaned.get("batch") is None:
            return cleaned
        fields = ("batch", "external_id", "prompt", "prompt_input", "response_1", "response_2", "more_responses")
        item = Item(**{name: cleaned.get(name, getattr(self.instance, name, None)) for name in fields})
        for name, message in item_errors(item).items():
            self.add_error(name if name in self.fields else None, message)
        return cleaned


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    form = ItemForm
    list_display = ["shown_external_id", "batch", "gold", "created_at"]
    list_filter = ["batch"]
    search_fields = ["external_id"]

    @admin.display(description="external id", ordering="external_id")
    def shown_external_id(self, item: Item) -> str:
        return visible_controls(item.external_id)


class HitSlotInline(admin.TabularInline):
    model = HitSlot
    extra = 0
    raw_id_fields = ["item"]


@admin.register(Hit)
class HitAdmin(admin.ModelAdmin):
    list_display = ["pk", "annotator", "batch", "created_at", "submitted_at"]
    list_filter = ["batch"]
    inlines = [HitSlotInline]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["item", "annotator", "rating", "swapped", "time_ms", "updated_at"]
    list_filter = ["item__batch", "rating"]
    raw_id_fields = ["item", "hit"]
    # Set on the Review page (annotate.review), shown here for the record.
    readonly_fields = ["excluded_at", "excluded_by", "exclusion_note", "confirmed_at", "confirmed_by"]
