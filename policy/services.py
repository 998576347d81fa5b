"""Policy runs: start, train (on the worker or in a command) and cancel; one function per action, shared by
the dashboard, the API, the Celery task and the commands. Data in: policy.data; configs: policy.configs;
human evaluation: policy.evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from annotate.models import Batch
from annotate.quality import flagged_annotators
from arbiter.options import model_location
from policy import reinforce as trainer  # torch loads on the first call into it, not at import
from policy.configs import build_config, config_fields
from policy.data import (
    Messages,
    batch_demonstrations,
    batch_preference_pairs,
    batch_prompts,
    parse_dialogues_jsonl,
    parse_prompts_jsonl,
    read_run_data,
    read_upload,
    split_eval_prompts,
)
from policy.errors import PolicyRunError
from policy.models import PolicyRun, PolicySample
from policy.reinforce import ReinforceConfig, SFTConfig
from rewardmodel.models import RewardModelRun
from rewardmodel.services import REWARD_MODEL_LOADER, scorer_for
from rewardmodel.train import split_by_group
from rlhf.options import OptionError
from rlhf.training import TrainingStopped
from runs.models import EvaluationPlan, OnLog, RunQueueError, RunStatus, check_run_queue

# Starting and running ----------------------------------------------------------------------------


def start_policy_run(
    user,
    kind: str,
    *,
    reward_run: RewardModelRun | None = None,
    judge_run: RewardModelRun | None = None,
    base_run: PolicyRun | None = None,
    base_path: str = "",
    base_checkpoint: str = "",
    data_batch: Batch | None = None,
    data_file: IO[bytes] | None = None,
    dispatch: bool = True,
    queue: str = "",
    aggregate: str = "each",
    ranking_aggregate: str = "each",
    exclude_annotators: Any = (),
    exclude_flagged: bool = False,
    **options,
) -> PolicyRun:
    """Create a queued run and (by default) hand it to a worker once the row is committed.

    REINFORCE needs a succeeded reward-model run and prompts, and may name a second succeeded reward-model run as
    an independent judge of its held-out answers (`check_judge_run`); SFT needs demonstrations.
    Data comes from `data_batch` or an uploaded JSONL `data_file` (checked here, line by line,
    and kept under MEDIA_ROOT so the worker reads exactly what was uploaded).
    DPO learns from a batch's judgments, taken as a reward run takes them (`aggregate`, `ranking_aggregate`,
    `exclude_annotators`, `exclude_flagged`: see rewardmodel.services.start_reward_run); its optional reward run
    judges the held-out answers at the end, as a REINFORCE run's are.
    """
    config = build_config(kind, **options)
    try:
        queue = check_run_queue(queue)
    except RunQueueError as exc:
        raise PolicyRunError(str(exc)) from None
    if kind == PolicyRun.Kind.REINFORCE and reward_run is None:
        raise PolicyRunError("Pick a reward-model run: REINFORCE needs a reward model.")
    if kind in (PolicyRun.Kind.REINFORCE, PolicyRun.Kind.DPO) and reward_run is not None:
        if reward_run.status != RunStatus.SUCCEEDED:
            raise PolicyRunError(
                f"Reward run {reward_run.pk} is {reward_run.get_status_display().lower()}; pick a run that succeeded."
            )
        if reward_run.artifact_location is None:
            raise PolicyRunError(f"Reward run {reward_run.pk} has no trained model on disk any more.")
        if judge_run is not None:
            check_judge_run(judge_run, reward_run)
    else:
        reward_run = judge_run = None
    base_path = (base_path or "").strip()
    if base_run is not None and base_path:
        raise PolicyRunError("Give either a base policy run or a base path, not both.")
    if base_path:
        try:
            base_path = model_location(base_path, "base_path")  # here, so no caller can skip it
        except OptionError as exc:
            raise PolicyRunError(str(exc)) from None
    if base_run is not None and base_run.artifact_location is None:
        raise PolicyRunError(f"Base {base_run} has no trained model (status: {base_run.get_status_display()}).")
    base_checkpoint = (base_checkpoint or "").strip()
    if base_checkpoint == "final":
        base_checkpoint = ""
    if base_checkpoint and base_run is None:
        raise PolicyRunError("A base checkpoint names one of a base policy run's checkpoints: pick the run too.")
    if base_checkpoint and base_checkpoint not in base_run.checkpoint_names():
        saved = ", ".join(base_run.checkpoint_names()) or "none"
        raise PolicyRunError(f"Base {base_run} has no checkpoint {base_checkpoint!r} (saved: {saved}).")
    if kind == PolicyRun.Kind.DPO and (data_file is not None or data_batch is None):
        raise PolicyRunError("DPO learns from a batch's judgments: pick a batch (files of pairs are not taken).")
    if (data_batch is None) == (data_file is None):
        raise PolicyRunError("Give the data either as a batch or as an uploaded file (exactly one).")

    extra: dict[str, Any] = {}
    file_content = b""
    if data_file is not None:
        name = Path(getattr(data_file, "name", "data.jsonl")).name
        file_content, lines = read_upload(data_file, name)
        data = parse_dialogues_jsonl(lines, name) if kind == PolicyRun.Kind.SFT else parse_prompts_jsonl(lines, name)
    else:
        name = ""
        if kind == PolicyRun.Kind.DPO:
            data = []  # the judgments are read below, by the reward run's rules
        elif kind == PolicyRun.Kind.SFT:
            data = batch_demonstrations(data_batch)
            if not data:
                raise PolicyRunError(f"Batch {data_batch.name} has no judgments to take demonstrations from.")
        else:
            data = batch_prompts(data_batch)
    total_steps = getattr(config, "steps", 0)
    if kind == PolicyRun.Kind.DPO:
        extra, total_steps = _dpo_data(
            data_batch, config, aggregate, ranking_aggregate, exclude_annotators, exclude_flagged
        )
    elif kind == PolicyRun.Kind.REINFORCE:
        train, held_out = split_eval_prompts(data, seed=config.seed, max_eval=config.eval_max_prompts)
        extra = {"train_prompts": len(train), "eval_prompts": len(held_out)}
    else:
        extra = {"dialogues": len(data)}

    with transaction.atomic():
        run = PolicyRun(
            kind=kind,
            created_by=user if getattr(user, "pk", None) else None,
            reward_run=reward_run,
            judge_run=judge_run,
            base_run=base_run,
            base_path=base_path,
            base_checkpoint=base_checkpoint,
            data_batch=data_batch,
            config={**config.to_dict(), **extra},
            total_steps=total_steps,
            queue=queue,
        )
        run.save()
        if data_file is not None:
            run.data_file.save(f"run-{run.pk}-{name}", ContentFile(file_content), save=True)
        if dispatch:
            from policy.tasks import train_policy_run  # the task module imports this one

            run.dispatch_on_commit(train_policy_run)
    return run


def check_judge_run(judge_run: RewardModelRun, reward_run: RewardModelRun) -> None:
    """A judge is a reward model that succeeded, other than the one the policy is trained against (a judge that
    is the training reward model only repeats what the policy learnt to please)."""
    if judge_run.pk == reward_run.pk:
        raise PolicyRunError(
            f"The judge must not be the run's own reward model (reward run {reward_run.pk}): pick a reward model "
            "trained on other judgments, e.g. the other half of a prompt-disjoint split."
        )
    if judge_run.status != RunStatus.SUCCEEDED:
        raise PolicyRunError(
            f"Judge reward run {judge_run.pk} is {judge_run.get_status_display().lower()}; pick a run that succeeded."
        )
    if judge_run.artifact_location is None:
        raise PolicyRunError(f"Judge reward run {judge_run.pk} has no trained model on disk any more.")


def _dpo_data(
    batch: Batch, config, aggregate: str, ranking_aggregate: str, exclude_annotators, exclude_flagged: bool
) -> tuple[dict, int]:
    """What a DPO run records of its data (how the judgments are taken, the pair counts) and its step count; refuses
    a batch without pairs to learn from or without a pair to train on after the held-out split."""
    exclude_ids = {getattr(a, "pk", a) for a in exclude_annotators}
    if exclude_flagged:
        exclude_ids |= flagged_annotators([batch]).keys()
    exclude_ids = sorted(exclude_ids)
    pairs = batch_preference_pairs(batch, aggregate, ranking_aggregate, exclude_ids)
    if not pairs:
        raise PolicyRunError(f"Batch {batch.name} has no (untied) judgments to learn from.")
    train, held_out = split_by_group(pairs, config.eval_fraction, config.seed)
    extra = {
        "aggregate": aggregate,
        "ranking_aggregate": ranking_aggregate,
        "exclude_flagged": exclude_flagged,
        "exclude_annotators": exclude_ids,
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
    }
    return extra, -(-len(train) // config.batch_size) * config.epochs


def artifact_dir_for(run: PolicyRun) -> Path:
    return run.planned_artifact_dir


def base_model_path(run: PolicyRun) -> str:
    """The starting weights: the base run's final model (or the checkpoint picked), a path / hub id, or the default
    SmolLM2 (converted once)."""
    if run.base_run_id and run.base_checkpoint:
        folder = run.base_run.artifact_dir
        if folder is None or not (folder / run.base_checkpoint).is_dir():
            raise PolicyRunError(f"Base {run.base_run} has no {run.base_checkpoint} any more.")
        return str(folder / run.base_checkpoint)
    if run.base_run_id:
        model_dir = run.base_run.model_dir
        if model_dir is None:
            raise PolicyRunError(f"Base {run.base_run} has no trained model any more.")
        return str(model_dir)
    if run.base_path:
        return run.base_path
    return trainer.default_policy_path(Path(settings.VAR_DIR) / "models")


def run_policy_training(run: PolicyRun, on_log: OnLog | None = None) -> PolicyRun:
    """Train a queued run to its end, in this process. Never raises for a training failure.

    Used by the Celery task and by the foreground commands; see TrainingRun.execute for the claim,
    the `policy-<id>.partial` folder renamed once complete, and how cancels and failures end.
    """
    final_dir = artifact_dir_for(run)

    def finish(result: dict) -> dict:
        eval_samples = result.pop("eval_samples", [])
        if "model_path" in result:  # the trainer wrote into the partial folder, renamed just now
            result["model_path"] = str(final_dir / "final")
        PolicyRun.objects.filter(pk=run.pk).update(eval_samples=eval_samples)
        return _json_safe(result)

    run.execute(final_dir, lambda output_dir: _train(run, output_dir, on_log), stopped=TrainingStopped, finish=finish)
    return run


def _json_safe(value: Any) -> Any:
    """Metrics as plain JSON (floats from tensors, NaN as None)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def save_policy_samples(run: PolicyRun, step: int, samples: list[dict]) -> None:
    """The trainer's `on_samples`: one row per sampled answer."""
    PolicySample.objects.bulk_create(
        PolicySample(
            run_id=run.pk,
            step=step,
            kind=sample.get("kind") or PolicySample.Kind.TRAIN,
            prompt=sample["prompt"],
            response=sample["response"],
            reward=_json_safe(sample.get("reward")),
        )
        for sample in samples
    )


def _evaluation_plan(config: ReinforceConfig, data: Any) -> EvaluationPlan:
    """The held-out evaluations a REINFORCE run will sample, for its ETA."""
    _, held_out = split_eval_prompts(data, seed=config.seed)
    eval_prompts = min(len(held_out), config.eval_max_prompts)
    return EvaluationPlan(
        answers_from=lambda step: config.evaluation_answers_from(step, eval_prompts),
        answers_per_step=config.prompts_per_step * config.samples_per_prompt,
    )


def _train(run: PolicyRun, output_dir: Path, on_log: OnLog | None) -> dict:
    kind = run.kind
    options = {k: v for k, v in run.config.items() if k in config_fields(kind)}
    config = build_config(kind, check_models=False, **options)  # checked by start_policy_run
    data = read_run_data(run)
    base = base_model_path(run)

    log = run.progress_logger(on_log, clean=_json_safe)
    should_stop = run.stop_checker()
    evaluations = _evaluation_plan(config, data) if kind == PolicyRun.Kind.REINFORCE else None
    on_progress = run.progress_recorder(evaluations=evaluations)

    if kind == PolicyRun.Kind.SFT and config.processes > 1:
        return _train_sft_distributed(run, config, base, data, output_dir, log, should_stop, on_progress)
    if kind == PolicyRun.Kind.SFT:
        return trainer.train_sft(
            base,
            data,
            config,
            str(output_dir),
            on_log=log,
            should_stop=should_stop,
            on_progress=on_progress,
            resume_path=run.resume_checkpoint,
        )

    def save_samples(step: int, samples: list[dict]) -> None:
        save_policy_samples(run, step, samples)

    if kind == PolicyRun.Kind.DPO:
        return trainer.train_dpo(
            base,
            data,
            config,
            str(output_dir),
            reward_fn=_reward_fn(run.reward_run) if run.reward_run_id else None,
            on_log=log,
            on_samples=save_samples,
            should_stop=should_stop,
            on_progress=on_progress,
            resume_path=run.resume_checkpoint,
        )
    if run.reward_run is None:
        raise PolicyRunError("REINFORCE needs a reward-model run.")
    if config.processes > 1:
        return _train_reinforce_distributed(run, config, base, data, output_dir, log, should_stop, on_progress)

    judge_fn = None
    if run.judge_run is not None:
        judge = scorer_for(run.judge_run)

        def judge_fn(prompts: list[Messages], responses: list[str]) -> list[float]:
            return [float(r) for r in judge.score_batch(prompts, responses)]

    train, held_out = split_eval_prompts(data, seed=config.seed, max_eval=config.eval_max_prompts)
    return trainer.train_reinforce(
        base,
        _reward_fn(run.reward_run),
        train,
        held_out,
        config,
        str(output_dir),
        on_log=log,
        on_samples=save_samples,
        should_stop=should_stop,
        on_progress=on_progress,
        resume_path=run.resume_checkpoint,
        judge_fn=judge_fn,
    )


def _reward_fn(reward_run: RewardModelRun):
    """The reward model's scores of (prompt, response) pairs, as the trainers take them."""
    scorer = scorer_for(reward_run)

    def reward_fn(prompts: list[Messages], responses: list[str]) -> list[float]:
        return [float(r) for r in scorer.score_batch(prompts, responses)]

    return reward_fn


def _train_reinforce_distributed(
    run: PolicyRun,
    config: ReinforceConfig,
    base: str,
    data: list[Messages],
    output_dir: Path,
    log: OnLog,
    should_stop,
    on_progress,
) -> dict:
    """REINFORCE on `config.processes` processes (torchrun, see rlhf.distributed): the inputs go to files in
    `policy-<id>.work/`, each rank loads the reward model from its run's folder, and rank 0's reports and samples
    come back as the same log, progress and sample rows."""
    from policy.reinforce.launch import write_job
    from rlhf.distributed import fresh_launch_dir, launch_torchrun

    if run.reward_run.artifact_dir is None:
        raise PolicyRunError(f"Reward run {run.reward_run.pk} has no trained model on disk any more.")
    judge_dir = None
    if run.judge_run is not None:
        judge_dir = run.judge_run.artifact_dir
        if judge_dir is None:
            raise PolicyRunError(f"Judge reward run {run.judge_run.pk} has no trained model on disk any more.")
    train, held_out = split_eval_prompts(data, seed=config.seed, max_eval=config.eval_max_prompts)
    with fresh_launch_dir(run.launch_dir) as work_dir:
        write_job(
            work_dir,
            base,
            str(run.reward_run.artifact_dir),
            REWARD_MODEL_LOADER,
            train,
            held_out,
            config,
            output_dir,
            run.resume_checkpoint,
            judge_model_path=str(judge_dir) if judge_dir is not None else None,
        )
        return launch_torchrun(
            "policy.reinforce.launch",
            work_dir,
            config.processes,
            on_log=log,
            on_progress=on_progress,
            on_samples=lambda step, samples: save_policy_samples(run, step, samples),
            should_stop=should_stop,
        )


def _train_sft_distributed(
    run: PolicyRun,
    config: SFTConfig,
    base: str,
    data: list[Messages],
    output_dir: Path,
    log: OnLog,
    should_stop,
    on_progress,
) -> dict:
    """SFT on `config.processes` processes (torchrun, see rlhf.distributed): the dialogues go to a file in
    `policy-<id>.work/`, and rank 0's reports come back as the same log and progress rows."""
    from policy.reinforce.sft_launch import write_job
    from rlhf.distributed import fresh_launch_dir, launch_torchrun

    with fresh_launch_dir(run.launch_dir) as work_dir:
        write_job(work_dir, base, data, config, output_dir, run.resume_checkpoint)
        return launch_torchrun(
            "policy.reinforce.sft_launch",
            work_dir,
            config.processes,
            on_log=log,
            on_progress=on_progress,
            should_stop=should_stop,
        )


def cancel_policy_run(run: PolicyRun) -> bool:
    """Stop a run: at once when queued, at the trainer's next step when running."""
    return run.request_cancel()
