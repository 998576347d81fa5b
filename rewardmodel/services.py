"""Reward-model runs: one function per action, shared by the dashboard, the Celery task and commands."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import ngettext

from annotate.models import Batch, Judgment
from annotate.quality import flagged_annotators
from arbiter.options import build_options
from rewardmodel import train as trainer  # torch loads on the first call into it, not at import
from rewardmodel.models import RewardModelRun, ScoreJob
from rewardmodel.train import DEFAULT_BACKBONE, PreferencePair, RankedResponses, RewardTrainConfig
from rlhf.options import OptionError, option_fields
from rlhf.preferences import Preference, check_aggregation, item_preferences, loss_margin
from rlhf.prompts import join_input, prompt_group_id, prompt_half
from rlhf.rankings import check_ranking_aggregation, item_rankings
from rlhf.training import TrainingStopped
from runs.models import OnLog, RunQueueError, RunStatus, check_run_queue

logger = logging.getLogger(__name__)


class RewardRunError(Exception):
    """A run that cannot be started, scored or read (the message says why)."""


# Data in -----------------------------------------------------------------------------------------


def judgments_for(
    batches: Iterable[Batch], exclude_annotators: Iterable = (), include_simulated: bool = False
) -> QuerySet[Judgment]:
    """The batches' kept judgments; the simulated annotators' (annotate.simulation) only when asked for."""
    judgments = Judgment.objects.kept() if include_simulated else Judgment.objects.kept().by_people()
    return (
        judgments.filter(item__batch__in=list(batches))
        .exclude(annotator__in=list(exclude_annotators))
        .select_related("item")
        .order_by("pk")
    )


def judgments_fingerprint(judgments: Iterable[Judgment]) -> tuple[int, str]:
    """(count, sha256 over sorted (id, rating or ranking, updated_at)): what went into a run."""
    rows = sorted((j.pk, j.rating if j.ranking is None else j.ranking, j.updated_at.isoformat()) for j in judgments)
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return len(rows), digest


def preference_pairs(
    batches: Iterable[Batch],
    aggregate: str = "each",
    exclude_annotators: Iterable = (),
    ranking_aggregate: str = "each",
) -> list[PreferencePair]:
    """Training pairs from the batches' judgments, aggregated by `rlhf.preferences` (as the export does).

    "each": one pair per judgment (an item judged by three people counts three times).
    "majority": one pair per item in its majority direction; ties are dropped.
    "agreed": one pair per item whose judgments all agree; the others are dropped.
    The level is the pair's strength: "clear" when the mean rating toward the winner is >= 1.5.
    Rankings give their pairs as `RankedResponses.pairs` does, one ranking per judgment ("each") or per item ("borda").
    """
    return pairs_from_judgments(judgments_for(batches, exclude_annotators), aggregate, ranking_aggregate)


def pairs_from_judgments(
    judgments: Iterable[Judgment], aggregate: str = "each", ranking_aggregate: str = "each"
) -> list[PreferencePair]:
    """One pair per rating judgment ("each", in the judgments' order) or per kept item (in order of first judgment),
    then the pairs of the rankings (`rankings_from_judgments`)."""
    _check_aggregations(aggregate, ranking_aggregate)
    # Judgments staff marked wrong in the review queue never train (judgments_for leaves them out already; this
    # covers callers that pass their own).
    judgments = [judgment for judgment in judgments if judgment.excluded_at is None]
    rated = [judgment for judgment in judgments if judgment.ranking is None]
    groups = [[judgment] for judgment in rated] if aggregate == "each" else _by_item(rated)
    pairs = []
    for group in groups:
        item = group[0].item
        for preference in item_preferences([j.rating for j in group], aggregate):
            pairs.append(preference_pair(item.prompt, item.prompt_input, item.response_1, item.response_2, preference))
    for key, ranking in rankings_from_judgments(judgments, ranking_aggregate):
        pairs.extend(ranking.pairs(key))
    return pairs


def _by_item(judgments: list[Judgment]) -> list[list[Judgment]]:
    """The judgments grouped by item, items in order of their first judgment."""
    first_seen: dict[int, int] = {}
    for index, judgment in enumerate(judgments):
        first_seen.setdefault(judgment.item_id, index)
    ordered = sorted(judgments, key=lambda j: (first_seen[j.item_id], j.pk))
    return [list(group) for _, group in groupby(ordered, key=lambda j: j.item_id)]


def rankings_from_judgments(
    judgments: Iterable[Judgment], ranking_aggregate: str = "each"
) -> list[tuple[str, RankedResponses]]:
    """(key, ranking) for the ranking judgments: one per judgment ("each") or one per item, the Borda count of its
    judgments ("borda", rlhf.rankings.borda). The key names where the ranking came from; its pairs share it."""
    _check_aggregations(ranking_aggregate=ranking_aggregate)
    ranked = [judgment for judgment in judgments if judgment.ranking is not None]
    # "each" keeps the judgments' order; "borda" gives one ranking per item (in order of first judgment).
    groups = [[judgment] for judgment in ranked] if ranking_aggregate == "each" else _by_item(ranked)
    result = []
    for group in groups:
        item = group[0].item
        messages = join_input(item.prompt, item.prompt_input)
        for tiers, index in item_rankings([j.ranking for j in group], item.response_count, ranking_aggregate):
            key = f"item-{item.pk}" if index is None else f"judgment-{group[index].pk}"
            result.append((key, RankedResponses(messages, item.responses, tiers, prompt_group_id(messages))))
    return result


def preference_pair(
    prompt: list[dict], prompt_input: str, response_1: str, response_2: str, preference: Preference | int
) -> PreferencePair:
    """The training pair of one comparison; `preference` is an aggregated Preference or just the winner (1 or 2).

    A bare winner (a file's known answer) gives a pair without level or margin.
    """
    messages = join_input(prompt, prompt_input)
    responses = {1: response_1, 2: response_2}
    winner = preference if isinstance(preference, int) else preference.winner
    return PreferencePair(
        prompt=messages,
        chosen=responses[winner],
        rejected=responses[3 - winner],
        level="" if isinstance(preference, int) else preference.strength,
        margin=0.0 if isinstance(preference, int) else loss_margin(preference.strength),
        group=prompt_group_id(messages),
    )


def _check_aggregations(aggregate: str = "each", ranking_aggregate: str = "each") -> None:
    """rlhf.preferences.check_aggregation and rlhf.rankings.check_ranking_aggregation, as RewardRunError."""
    try:
        check_aggregation(aggregate)
        check_ranking_aggregation(ranking_aggregate)
    except ValueError as error:
        raise RewardRunError(f"{error}.") from None


# Starting and running ----------------------------------------------------------------------------


def train_config_fields() -> set[str]:
    """The trainer settings a run takes: RewardTrainConfig's declared options. Its other fields (device,
    level_margins) are the worker's business: a name outside the declaration is refused before a run exists."""
    return {f.name for f in option_fields(RewardTrainConfig)}


def build_config(check_models: bool = True, **options) -> RewardTrainConfig:
    """The trainer's config: its defaults, overridden by `options` (unknown names are an error)."""
    unknown = sorted(set(options) - train_config_fields())
    if unknown:
        label = ngettext("Unknown training option", "Unknown training options", len(unknown))
        raise RewardRunError(f"{label}: {', '.join(unknown)}.")
    options = {k: v for k, v in options.items() if v is not None}
    options.setdefault("backbone", DEFAULT_BACKBONE)
    try:
        config = build_options(RewardTrainConfig, options, check_models)  # model folders against the roots; validates
    except OptionError as exc:
        raise RewardRunError(str(exc)) from exc  # names the option, as the form and the command say it
    except (TypeError, ValueError) as exc:
        raise RewardRunError(f"Bad training option: {exc}") from exc
    return config


def start_reward_run(
    user,
    batches: Iterable[Batch],
    *,
    aggregate: str = "each",
    ranking_aggregate: str = "each",
    exclude_annotators: Iterable = (),
    exclude_flagged: bool = False,
    base_run: RewardModelRun | None = None,
    dispatch: bool = True,
    queue: str = "",
    **options,
) -> RewardModelRun:
    """Create a queued run on the batches' judgments and (by default) hand it to a worker.

    `exclude_flagged` leaves out the annotators the quality page flags on these batches (as they stand now;
    the run keeps the resulting ids). `base_run`: start from that succeeded run's trained model (its weights and
    reward head) instead of a fresh head on a backbone; pick its batches again to train on old and new data. The
    task is sent only once the row is committed, so the worker always finds it.
    """
    batches = list(batches)
    if not batches:
        raise RewardRunError("Pick at least one batch.")
    _check_aggregations(aggregate, ranking_aggregate)
    if base_run is not None:
        if base_run.artifact_location is None:
            raise RewardRunError(
                f"Base {base_run} has no trained model to start from (status: {base_run.get_status_display()})."
            )
        # The record says which backbone is underneath; the weights come from the base run's folder when it trains.
        base_backbone = base_run.config.get("backbone") or DEFAULT_BACKBONE
        if options.get("backbone") not in (None, "", base_backbone):
            raise RewardRunError(
                f"Base {base_run} was trained on backbone {base_backbone}; leave the backbone as it is "
                "or start without a base run."
            )
        options["backbone"] = base_backbone
    try:
        queue = check_run_queue(queue)
    except RunQueueError as exc:
        raise RewardRunError(str(exc)) from None
    exclude_ids = {getattr(a, "pk", a) for a in exclude_annotators}
    if exclude_flagged:
        exclude_ids |= flagged_annotators(batches).keys()
    exclude_ids = sorted(exclude_ids)
    config = build_config(**options)
    judgments = list(judgments_for(batches, exclude_ids, config.include_simulated))
    if not judgments:
        names = ", ".join(b.name for b in batches)
        raise RewardRunError(
            ngettext("No judgments to train on in batch", "No judgments to train on in batches", len(batches))
            + f" {names}."
        )
    count, digest = judgments_fingerprint(judgments)
    with transaction.atomic():
        run = RewardModelRun.objects.create(
            created_by=user if getattr(user, "pk", None) else None,
            config={
                **config.to_dict(),
                "aggregate": aggregate,
                "ranking_aggregate": ranking_aggregate,
                "exclude_flagged": exclude_flagged,
                "exclude_annotators": exclude_ids,
            },
            judgments_count=count,
            judgments_hash=digest,
            queue=queue,
            base_run=base_run,
        )
        run.batches.set(batches)
        if dispatch:
            from rewardmodel.tasks import train_reward_run  # the task module imports this one

            run.dispatch_on_commit(train_reward_run)
    return run


def artifact_dir_for(run: RewardModelRun) -> Path:
    return run.planned_artifact_dir


def run_reward_training(run: RewardModelRun, on_log: OnLog | None = None) -> RewardModelRun:
    """Train a queued run to its end, in this process. Never raises for a training failure.

    Used by the Celery task and by the foreground command; see TrainingRun.execute for the claim,
    the `reward-<id>.partial` folder renamed once complete, and how cancels and failures end.
    """
    run.execute(artifact_dir_for(run), lambda output_dir: _train(run, output_dir, on_log), stopped=TrainingStopped)
    run.refresh_from_db()
    if run.status == RunStatus.SUCCEEDED:
        from rewardmodel.ordering import refresh_after_run  # it imports this module

        refresh_after_run(run)  # model-ordered batches that follow the latest run get rescored
    return run


def _train(run: RewardModelRun, output_dir: Path, on_log: OnLog | None) -> dict:
    options = {k: v for k, v in run.config.items() if k in train_config_fields()}
    config = build_config(check_models=False, **options)  # checked by start_reward_run; the worker's roots may differ
    if run.base_run_id:
        base_dir = run.base_run.artifact_dir
        if base_dir is None:
            raise RewardRunError(f"Base {run.base_run} has no trained model any more.")
        config.backbone = str(base_dir)  # its weights and reward head, not a fresh head
    judgments = list(
        judgments_for(run.batches.all(), run.config.get("exclude_annotators", []), config.include_simulated)
    )
    ranking_aggregate = run.config.get("ranking_aggregate", "each")
    pairs = pairs_from_judgments(judgments, run.config.get("aggregate", "each"), ranking_aggregate)
    if not pairs:
        raise RewardRunError("No preference pairs: the batches have no (untied) judgments.")
    rankings = [ranking for _, ranking in rankings_from_judgments(judgments, ranking_aggregate)]
    if config.split_half != "none":
        pairs = [pair for pair in pairs if prompt_half(pair.group_id()) == config.split_half]
        rankings = [ranking for ranking in rankings if prompt_half(ranking.group_id()) == config.split_half]
        if not pairs:
            raise RewardRunError(f"No preference pairs in the {config.split_half} half of the prompts.")
    count, digest = judgments_fingerprint(judgments)
    type(run).objects.filter(pk=run.pk).update(judgments_count=count, judgments_hash=digest, pairs_count=len(pairs))
    description = {
        "batches": ", ".join(run.batches.order_by("name").values_list("name", flat=True)),
        "judgments": count,
        "aggregate": run.config.get("aggregate", "each"),
    }
    if config.split_half != "none":
        description["prompt_half"] = config.split_half
    if rankings:
        description["rankings"] = len(rankings)
        description["ranking_aggregate"] = ranking_aggregate
    if run.base_run_id:
        description["started_from"] = str(run.base_run)
    if config.processes > 1:
        return _train_distributed(run, config, pairs, output_dir, description, on_log, rankings)
    return trainer.train_reward_model(
        pairs,
        config,
        str(output_dir),
        on_log=run.progress_logger(on_log),
        should_stop=run.stop_checker(),
        data_description=description,
        on_progress=run.progress_recorder(),
        resume_path=run.resume_checkpoint,
        rankings=rankings,
    )


def _train_distributed(
    run: RewardModelRun,
    config: RewardTrainConfig,
    pairs: list[PreferencePair],
    output_dir: Path,
    description: dict,
    on_log: OnLog | None,
    rankings: list[RankedResponses] | None = None,
) -> dict:
    """The same training on `config.processes` processes (torchrun, see rlhf.distributed): the inputs go to files in
    `reward-<id>.work/`, rank 0's reports come back as the same progress and log calls."""
    from rewardmodel.train.launch import write_job
    from rlhf.distributed import fresh_launch_dir, launch_torchrun

    with fresh_launch_dir(run.launch_dir) as work_dir:
        write_job(work_dir, pairs, config, output_dir, description, run.resume_checkpoint, rankings)
        return launch_torchrun(
            "rewardmodel.train.launch",
            work_dir,
            config.processes,
            on_log=run.progress_logger(on_log),
            on_progress=run.progress_recorder(),
            should_stop=run.stop_checker(),
        )


def cancel_reward_run(run: RewardModelRun) -> bool:
    """Stop a run: at once when queued, at the trainer's next step when running."""
    return run.request_cancel()


# Using a trained model ---------------------------------------------------------------------------


# How a process without Django (a torchrun rank of a policy run) loads a reward model: "module:function", called
# with the model folder and a device. Handed over as data, so the policy's training package names no other app.
REWARD_MODEL_LOADER = "rewardmodel.train.scoring:load_reward_model"


@lru_cache(maxsize=2)
def _scorer(artifact_path: str):
    return trainer.load_reward_model(artifact_path)


def scorer_for(run: RewardModelRun):
    if run.artifact_dir is None:
        raise RewardRunError(f"Run {run.pk} has no trained model (status: {run.get_status_display()}).")
    return _scorer(str(run.artifact_dir))


def check_score_entry(run: RewardModelRun, prompt: str, response_1: str, response_2: str) -> None:
    """RewardRunError when the entry cannot be scored: a blank field, or a run with no trained model."""
    if not prompt.strip():
        raise RewardRunError("Enter a prompt.")
    if not response_1.strip() or not response_2.strip():
        raise RewardRunError("Enter both responses.")
    if run.artifact_dir is None:
        raise RewardRunError(f"Run {run.pk} has no trained model (status: {run.get_status_display()}).")


def start_score_job(run: RewardModelRun, user, prompt: str, response_1: str, response_2: str) -> ScoreJob:
    """Queue the scoring of one entry in a worker (queue `celery`): loading a model takes seconds and hundreds of
    MB, which a web process must not spend. Checked first (RewardRunError), sent through the outbox on commit."""
    check_score_entry(run, prompt, response_1, response_2)
    job = ScoreJob.objects.create(run=run, prompt=prompt, response_1=response_1, response_2=response_2, created_by=user)
    job.dispatch_on_commit()
    return job


def run_score_job(job_id: int) -> str:
    """Score a queued job's entry (the worker's side). A redelivered message finds the job claimed and does nothing."""
    claimed = ScoreJob.objects.filter(pk=job_id, status=ScoreJob.Status.QUEUED).update(
        status=ScoreJob.Status.LOADING, started_at=timezone.now()
    )
    if not claimed:
        return "not queued"
    job = ScoreJob.objects.select_related("run").get(pk=job_id)
    done = ScoreJob.objects.filter(pk=job_id)
    try:
        scorer_for(job.run)  # loads (or finds cached) the model: the "loading" phase
        done.update(status=ScoreJob.Status.SCORING)
        reward_1, reward_2 = score_with_run(job.run, job.prompt, job.response_1, job.response_2)
    except RewardRunError as exc:
        done.update(status=ScoreJob.Status.FAILED, error=str(exc), finished_at=timezone.now())
        return "failed"
    except Exception as exc:
        logger.exception("Score job %s failed", job_id)
        error = f"scoring stopped ({type(exc).__name__}: {exc})"
        done.update(status=ScoreJob.Status.FAILED, error=error, finished_at=timezone.now())
        return "failed"
    done.update(status=ScoreJob.Status.DONE, reward_1=reward_1, reward_2=reward_2, finished_at=timezone.now())
    return "done"


def score_with_run(run: RewardModelRun, prompt: str, response_1: str, response_2: str) -> tuple[float, float]:
    """Both responses' rewards for a one-turn prompt (in the calling process: workers and commands, not pages)."""
    check_score_entry(run, prompt, response_1, response_2)
    messages = [{"role": "user", "content": prompt}]
    reward_1, reward_2 = scorer_for(run).score_batch([messages, messages], [response_1, response_2])
    return float(reward_1), float(reward_2)


def simulate_with_run(batch: Batch, run: RewardModelRun, annotators: int, **settings):
    """Answer an open batch as `annotators` simulated annotators preferring by the run's rewards
    (annotate.simulation.simulate_annotators; `settings`: temperature, position_bias, random_share, seed)."""
    from annotate.simulation import SimulationSettings, simulate_annotators

    SimulationSettings(annotators, **settings)  # refuse bad settings before the model loads
    if run.status != RunStatus.SUCCEEDED:
        raise RewardRunError(f"Reward run {run.pk} is {run.get_status_display().lower()}; pick a run that succeeded.")
    scorer = scorer_for(run)

    def score(prompts: list[list[dict]], responses: list[str]) -> list[float]:
        return [float(r) for r in scorer.score_batch(prompts, responses)]

    return simulate_annotators(batch, score, annotators, **settings)


def evaluate_run(run: RewardModelRun, pairs: list[PreferencePair]) -> dict:
    """Accuracy of the run's model on pairs with known answers."""
    if not pairs:
        raise RewardRunError("No preference pairs to evaluate.")
    return trainer.evaluate_pairs(scorer_for(run), pairs)
