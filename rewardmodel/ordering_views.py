"""Staff page for one batch's assignment order: import order, or the reward model's least certain items first."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.models import Batch
from rewardmodel.models import BatchOrdering, RewardModelRun
from rewardmodel.ordering import chosen_run, next_items, ordering_of, request_scoring, set_model_ordering
from rewardmodel.services import RewardRunError
from runs.models import RunStatus
from runs.permissions import permission_required


class OrderingForm(forms.Form):
    order = forms.ChoiceField(choices=Batch.AssignmentOrder.choices, widget=forms.RadioSelect)
    run = forms.ModelChoiceField(
        queryset=RewardModelRun.objects.none(),
        required=False,
        empty_label="The latest succeeded run on this batch",
        label="Reward model",
    )
    exploration_share = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Share of items handed out at random (0 to 1)."
    )
    refresh = forms.ChoiceField(choices=BatchOrdering.Refresh.choices, label="Rescore when a newer run succeeds")

    def __init__(self, *args, batch: Batch, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-pk")


def _context(batch: Batch, form: OrderingForm) -> dict:
    ordering = ordering_of(batch)
    return {
        "batch": batch,
        "ordering": ordering,
        "form": form,
        "target_run": chosen_run(ordering),
        "next_items": next_items(batch) if batch.assignment_order == Batch.AssignmentOrder.UNCERTAINTY else [],
    }


@permission_required("annotate.view_batch")
def ordering_page(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    ordering = ordering_of(batch)
    form = OrderingForm(
        initial={
            "order": batch.assignment_order,
            "run": ordering.run_id,
            "exploration_share": batch.exploration_share,
            "refresh": ordering.refresh,
        },
        batch=batch,
    )
    return render(request, "ordering/batch.html", _context(batch, form))


@permission_required("annotate.change_batch")
@require_POST
def ordering_save(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    form = OrderingForm(request.POST, batch=batch)
    if form.is_valid():
        data = form.cleaned_data
        try:
            set_model_ordering(
                batch,
                enabled=data["order"] == Batch.AssignmentOrder.UNCERTAINTY,
                run=data["run"],
                exploration_share=data["exploration_share"],
                refresh=data["refresh"],
            )
        except RewardRunError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved: {batch.name} is handed out in {_order_label(batch)}.")
            return redirect("ordering:batch", pk=batch.pk)
    batch.refresh_from_db()
    return render(request, "ordering/batch.html", _context(batch, form), status=400)


@permission_required("annotate.change_batch")
@require_POST
def ordering_rescore(request: HttpRequest, pk: int) -> HttpResponse:
    """The Rescore button: score the open items with the run that should order the batch now."""
    batch = get_object_or_404(Batch, pk=pk)
    ordering = ordering_of(batch)
    run = chosen_run(ordering)
    if run is None:
        messages.error(request, f"No succeeded reward-model run has been trained on {batch.name} yet.")
    else:
        request_scoring(ordering, run)
        messages.success(request, f"Scoring {batch.name}'s open items with {run}.")
    return redirect("ordering:batch", pk=batch.pk)


def _order_label(batch: Batch) -> str:
    batch.refresh_from_db()
    if batch.assignment_order == Batch.AssignmentOrder.UNCERTAINTY:
        return f"reward-model order ({batch.exploration_share:.0%} at random)"
    return "import order"
