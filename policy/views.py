"""Policy dashboard (staff only): list, start, watch, read samples, cancel, download, send to annotators."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from annotate.models import Batch, Judgment
from policy.errors import PolicyRunError
from policy.evaluation import (
    SEND_PAIRWISE,
    human_win_rate,
    ranked_win_rate,
    send_to_annotators,
    send_to_simulated_annotators,
)
from policy.forms import DPORunForm, ReinforceRunForm, SFTRunForm, checkpoint_choices
from policy.lineage import lineage_of
from policy.models import PolicyRun, PolicySample
from policy.services import cancel_policy_run, start_policy_run
from rewardmodel.models import RewardModelRun
from rlhf.numbers import INT32_MAX, parse_whole_number
from rlhf.rankings import MAX_RANKING_SIZE, MIN_RANKING_SIZE
from runs import storage
from runs.dashboard import cancel_and_redirect, line_chart, render_polled, resume_and_redirect, zip_download
from runs.permissions import permission_required
from runs.watchdog import watch_from_web

# The lineage page's subjects, as its URL names them.
LINEAGE_KINDS = {"batch": Batch, "reward": RewardModelRun, "policy": PolicyRun}
# Samples shown per step and kind in the browser.
SAMPLES_PER_PAGE = 50


@permission_required("policy.view_policyrun")
def run_list(request: HttpRequest) -> HttpResponse:
    watch_from_web()  # a listed run whose worker died shows as failed, with no worker or run page watching
    runs = PolicyRun.objects.select_related("created_by", "reward_run", "base_run", "data_batch")
    return render(request, "policy/run_list.html", {"runs": runs})


def _start(request: HttpRequest, form_class: type, kind: str, template_title: str) -> HttpResponse:
    # "Use as base" links pre-select the base run (?base_run=<id>).
    initial = {"base_run": request.GET.get("base_run")} if request.GET.get("base_run") else {}
    form = form_class(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = start_policy_run(request.user, kind, **form.start_kwargs())
        except PolicyRunError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{run} is queued.", extra_tags="run-queued")
            return redirect(run)
    return render(request, "policy/run_new.html", {"form": form, "title": template_title, "kind": kind})


@permission_required("policy.add_policyrun")
def base_checkpoints(request: HttpRequest) -> HttpResponse:
    """The start form's base-checkpoint options for the base run picked (htmx swaps them into the select)."""
    choices = checkpoint_choices(request.GET.get("base_run", ""))
    return render(request, "policy/run_new.html#checkpoint-options", {"choices": choices})


@permission_required("policy.add_policyrun")
def run_new(request: HttpRequest) -> HttpResponse:
    return _start(request, ReinforceRunForm, PolicyRun.Kind.REINFORCE, "Start a REINFORCE run")


@permission_required("policy.add_policyrun")
def run_new_sft(request: HttpRequest) -> HttpResponse:
    return _start(request, SFTRunForm, PolicyRun.Kind.SFT, "Start an SFT run")


@permission_required("policy.add_policyrun")
def run_new_dpo(request: HttpRequest) -> HttpResponse:
    return _start(request, DPORunForm, PolicyRun.Kind.DPO, "Start a DPO run")


@permission_required("policy.view_policyrun")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(PolicyRun.objects.select_related("reward_run", "base_run", "annotation_batch"), pk=pk)
    context = {
        **_live_context(run, request.GET.get("x")),
        **_samples_context(run, request.GET),
        **_human_context(run),
        **_ranked_context(run),
    }
    return render(request, "policy/run_detail.html", context)


@permission_required("policy.view_policyrun")
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the run page; the last poll (run finished) answers 286."""
    run = get_object_or_404(PolicyRun, pk=pk)
    return render_polled(
        request,
        "policy/run_detail.html#live",
        _live_context(run, request.GET.get("x")),
        done=run.is_finished,
        refresh_when_done=True,
    )


@permission_required("policy.view_policyrun")
def run_samples(request: HttpRequest, pk: int) -> HttpResponse:
    """The sample browser: one step's prompts, responses and rewards."""
    run = get_object_or_404(PolicyRun, pk=pk)
    context = _samples_context(run, request.GET)
    if request.htmx:
        return render(request, "policy/run_detail.html#samples", context)
    return render(request, "policy/run_detail.html", {**_live_context(run), **context, **_human_context(run)})


@permission_required("policy.change_policyrun")
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return cancel_and_redirect(request, get_object_or_404(PolicyRun, pk=pk), cancel_policy_run)


@permission_required("policy.change_policyrun")
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return resume_and_redirect(request, get_object_or_404(PolicyRun, pk=pk))


@permission_required("policy.view_policyrun")
def run_download(request: HttpRequest, pk: int, name: str = "final") -> HttpResponse:
    """A zip of the final model or of one checkpoint."""
    run = get_object_or_404(PolicyRun, pk=pk)
    if name not in run.checkpoint_names():
        return HttpResponse(f"{run} has no model named {name!r} to download.", status=404, content_type="text/plain")
    return zip_download(storage.join(run.artifact_location, name), f"policy-{run.pk}-{name}")


@permission_required("policy.send_policyrun")
@require_POST
def run_send(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(PolicyRun, pk=pk)
    kind = request.POST.get("kind") or SEND_PAIRWISE
    overlap = parse_whole_number(request.POST.get("overlap") or "1", 1, INT32_MAX)
    try:
        if overlap is None:
            raise ValueError
        batch = send_to_annotators(run, request.user, overlap=overlap, kind=kind)
    except ValueError:
        messages.error(request, "Judgments per comparison must be a whole number.")
    except PolicyRunError as exc:
        messages.error(request, str(exc))
    else:
        count = batch.items.count()
        if batch.is_ranking:
            what = ngettext("%(n)d ranking item", "%(n)d ranking items", count) % {"n": count}
        else:
            what = ngettext("%(n)d comparison", "%(n)d comparisons", count) % {"n": count}
        messages.success(request, f"Batch {batch.name} ({what}) is open to annotators.")
    return redirect(run)


@permission_required("policy.send_policyrun")
@require_POST
def run_simulate(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff action: the run's pairwise (or ranking) batch answered by simulated annotators, on a worker."""
    run = get_object_or_404(PolicyRun, pk=pk)
    try:
        judge = RewardModelRun.objects.filter(pk=int(request.POST.get("reward_run") or run.judge_run_id or 0)).first()
        annotators = int(request.POST.get("annotators") or 3)
        temperature = float(request.POST.get("temperature") or 1.0)
        batch = send_to_simulated_annotators(
            run, judge, kind=request.POST.get("kind") or SEND_PAIRWISE, annotators=annotators, temperature=temperature
        )
    except ValueError:
        messages.error(
            request, "The reward model and simulated annotators must be whole numbers, the temperature a number."
        )
    except PolicyRunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{annotators} simulated annotator{'s' if annotators != 1 else ''} preferring by {judge} are answering "
            f"batch {batch.name} on a worker.",
        )
    return redirect(run)


@permission_required("policy.view_policyrun", "rewardmodel.view_rewardmodelrun")
def lineage(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """The chain a reward model, policy or batch belongs to, with each step's headline figures."""
    if kind not in LINEAGE_KINDS:
        raise Http404(f"No lineage for {kind!r}.")
    subject = get_object_or_404(LINEAGE_KINDS[kind], pk=pk)
    return render(request, "policy/lineage.html", {"subject": subject, "lineage": lineage_of(subject)})


@permission_required("policy.view_policyrun")
def run_human(request: HttpRequest, pk: int) -> HttpResponse:
    """The human win rate panel, polled while annotators are still judging."""
    run = get_object_or_404(PolicyRun.objects.select_related("annotation_batch"), pk=pk)
    context = _human_context(run)
    return render_polled(request, "policy/run_detail.html#human", context, done=context["human_done"])


# Helpers -----------------------------------------------------------------------------------------


def _win_rate_curves(run: PolicyRun, x_axis: str) -> list[tuple[str, str, list]]:
    """The reward model's and the judge's held-out win rates per evaluation, against the step or (x_axis "kl") the
    held-out KL of the same evaluation: the over-optimisation picture (Gao et al., 2022)."""
    series = [("reward model", "eval", "eval_win_rate"), ("judge", "judge", "eval_judge_win_rate")]
    if x_axis != "kl":
        return [(label, css, run.curve(key)) for label, css, key in series]
    kl_at = dict(run.curve("eval_kl"))
    return [
        (label, css, [(round(kl_at[step], 4), rate) for step, rate in run.curve(key) if step in kl_at])
        for label, css, key in series
    ]


def _live_context(run: PolicyRun, x_axis: str | None = None) -> dict:
    x_axis = "kl" if x_axis == "kl" else "step"
    run.check_worker()  # every poll of a running run notices a dead worker (no write unless it is lost)
    if run.kind == PolicyRun.Kind.SFT:
        charts = [("Loss", line_chart([("train loss", "train", run.curve("loss"))], "loss"))]
    elif run.kind == PolicyRun.Kind.DPO:
        charts = _dpo_charts(run)
    else:
        charts = [
            (
                "Reward",
                line_chart(
                    [
                        ("rollouts", "train", run.curve("reward_mean")),
                        ("policy, held out", "eval", run.curve("eval_reward_policy")),
                        ("reference, held out", "reference", run.curve("eval_reward_reference")),
                    ],
                    "reward",
                ),
            ),
            (
                "KL to reference",
                line_chart(
                    [("rollouts", "train", run.curve("kl")), ("held out", "eval", run.curve("eval_kl"))], "KL (nats)"
                ),
            ),
            (
                "Response length (tokens)",
                line_chart(
                    [
                        ("rollouts", "train", run.curve("response_length")),
                        ("held out", "eval", run.curve("eval_length")),
                    ],
                    "tokens",
                ),
            ),
            (
                "Held-out win rate over reference",
                line_chart(
                    _win_rate_curves(run, x_axis),
                    "win rate",
                    y_range=(0.0, 1.0),
                    x_label="KL (nats per answer)" if x_axis == "kl" else "step",
                ),
            ),
        ]
    return {
        "run": run,
        "charts": [(title, chart) for title, chart in charts if chart],
        "win_x": x_axis,
        # The final evaluation's count (config: the split's, for runs from before it was logged).
        "held_out": (run.metrics or {}).get("eval_prompts") or run.config.get("eval_prompts") or 0,
        "model_rates": _model_rates(run),
    }


def _model_rates(run: PolicyRun) -> list[tuple[str, object]]:
    """(who judged, WinRate) for the final held-out evaluation: the reward model trained against, and the judge."""
    if not run.is_judged or run.status != "succeeded":
        return []
    rates = [("Reward model (trained against)" if run.is_reinforce else "Reward model", run.reward_model_win_rate)]
    if run.judge_run_id:
        rates.append((f"Judge: {run.judge_run}", run.judge_win_rate))
    return [(label, rate) for label, rate in rates if rate is not None]


def _dpo_charts(run: PolicyRun) -> list[tuple[str, dict | None]]:
    """What DPOTrainer users watch, on the training batches and the held-out pairs."""

    def train_and_eval(key: str) -> list[tuple[str, str, list]]:
        return [("training batches", "train", run.curve(key)), ("held-out pairs", "eval", run.curve(f"eval_{key}"))]

    return [
        ("Loss", line_chart(train_and_eval("loss"), "loss")),
        (
            "Implicit-reward accuracy (chosen above rejected)",
            line_chart(train_and_eval("accuracy"), "accuracy", y_range=(0.0, 1.0)),
        ),
        ("Mean implicit-reward margin", line_chart(train_and_eval("margin"), "β·h")),
        (
            "Log-probability of the answers (policy)",
            line_chart(
                [
                    ("chosen, training", "train", run.curve("logps_chosen")),
                    ("rejected, training", "reference", run.curve("logps_rejected")),
                    ("chosen, held out", "eval", run.curve("eval_logps_chosen")),
                    ("rejected, held out", "rejected", run.curve("eval_logps_rejected")),
                ],
                "log p (nats)",
            ),
        ),
    ]


def _samples_context(run: PolicyRun, query) -> dict:
    steps = run.sample_steps()
    step = parse_whole_number(query.get("step"), 0, INT32_MAX)
    if step is None:
        step = steps[-1] if steps else None
    kinds = [k for k in PolicySample.Kind.values if run.samples.filter(step=step, kind=k).exists()] if steps else []
    kind = query.get("kind") if query.get("kind") in kinds else (kinds[0] if kinds else None)
    samples = run.samples.filter(step=step, kind=kind).order_by("id")[:SAMPLES_PER_PAGE] if kind else []
    return {
        "run": run,
        "sample_steps": steps,
        "sample_step": step,
        "sample_kinds": [(k, PolicySample.Kind(k).label) for k in kinds],
        "sample_kind": kind,
        "samples": samples,
    }


def _human_context(run: PolicyRun) -> dict:
    batch = run.annotation_batch
    human = human_win_rate(run)
    done = True
    if batch is not None:
        wanted = batch.items.count() * batch.overlap
        done = human.n >= wanted
    simulated = (
        Judgment.objects.filter(item__batch_id=run.annotation_batch_id, rating__isnull=False).simulated().count()
        if batch is not None
        else 0
    )
    if simulated and simulated == human.n:
        label = "Simulated annotators"
    elif simulated:
        label = f"Annotators ({simulated} of {human.n} judgments simulated)"
    else:
        label = "Annotators"
    return {
        "run": run,
        "human": human,
        "human_done": done,
        "human_label": label,
        "model_rates": _model_rates(run),
        "judges": RewardModelRun.objects.filter(status="succeeded").exclude(pk=run.reward_run_id).order_by("-pk")[:50],
    }


def _ranked_context(run: PolicyRun) -> dict:
    """The ranking batch's figures, or the K a ranking batch of this run would have (0: it cannot make one)."""
    if run.ranking_batch_id:
        size = run.ranking_batch.ranking_size or 0
    else:
        answers = len((run.eval_samples or [{}])[0].get("policy_responses") or [])
        size = min(answers, MAX_RANKING_SIZE - 1) + 1 if answers >= MIN_RANKING_SIZE - 1 else 0
    return {"ranked": ranked_win_rate(run), "ranked_size": size, "lineage": lineage_of(run)}
