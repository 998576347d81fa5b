"""Policy runs: one function per action, shared by the dashboard, the Celery task and the commands."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, NamedTuple

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import ngettext

from annotate.importers import ImportFileError, Record, add_items, parse_record
from annotate.models import Batch, Judgment
from policy import reinforce as trainer  # torch loads on the first call into it, not at import
from policy.models import PolicyRun, PolicySample
from policy.reinforce import ReinforceConfig, SFTConfig
from rewardmodel.models import RewardModelRun
from rewardmodel.services import REWARD_MODEL_LOADER, scorer_for
from rlhf.options import OptionError
from rlhf.prompts import MessageError, check_messages, prompt_group_id
from rlhf.training import TrainingStopped
from runs.models import OnLog, RunQueueError, RunStatus, check_run_queue

# Held-out prompts for evaluation: this share of the distinct prompts, at least 1, at most MAX_EVAL_PROMPTS.
EVAL_FRACTION = 0.2
MAX_EVAL_PROMPTS = 16
# An uploaded prompts / dialogues file larger than this is refused before it is read.
MAX_DATA_FILE_BYTES = 50 * 1024 * 1024
# Batch settings for "send to annotators": HITs of this many comparisons.
ANNOTATION_SAMPLES_PER_HIT = 6
ANNOTATION_GUIDELINES = (
    "Each sample shows one prompt and two AI responses to it. Pick the response you would rather get, "
    "and say whether it is clearly or only slightly better."
)


class PolicyRunError(Exception):
    """A run that cannot be started, sent or read (the message says why)."""


Messages = list[dict]


# Data in -----------------------------------------------------------------------------------------


def _check_messages(messages: Any, where: str, *, last_role: str) -> Messages:
    """A prompt string (one user turn) or a message list, checked by the one message rule (rlhf.prompts)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    try:
        return check_messages(messages, last_role=last_role)
    except MessageError as exc:
        raise PolicyRunError(f"{where}, {exc}.") from None


def _jsonl_records(lines: Iterable[str], name: str) -> Iterable[tuple[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise PolicyRunError(f"{where}: not valid JSON ({exc.msg}).") from None


def parse_prompts_jsonl(lines: Iterable[str], name: str = "prompts file") -> list[Messages]:
    """Prompts from JSONL: each line a string, or an object whose "prompt" (or "messages") is a
    string or a message list ending with a user turn."""
    prompts = []
    for where, record in _jsonl_records(lines, name):
        if isinstance(record, dict):
            key = "prompt" if "prompt" in record else "messages" if "messages" in record else None
            if key is None:
                raise PolicyRunError(f"{where}: needs a 'prompt' field.")
            record = record[key]
        prompts.append(_check_messages(record, f"{where}, field 'prompt'", last_role="user"))
    if not prompts:
        raise PolicyRunError(f"{name} has no prompts.")
    return prompts


def parse_dialogues_jsonl(lines: Iterable[str], name: str = "dialogues file") -> list[Messages]:
    """Demonstrations from JSONL: each line {"messages": [...]} ending with an assistant turn,
    or {"prompt": str | messages, "response": str}."""
    dialogues = []
    for where, record in _jsonl_records(lines, name):
        if not isinstance(record, dict):
            raise PolicyRunError(f"{where}: expected an object with 'messages' or 'prompt' and 'response'.")
        if "messages" in record:
            dialogues.append(_check_messages(record["messages"], f"{where}, field 'messages'", last_role="assistant"))
            continue
        if "prompt" not in record or not isinstance(record.get("response"), str) or not record["response"].strip():
            raise PolicyRunError(f"{where}: expected 'messages', or 'prompt' and a non-empty 'response'.")
        prompt = _check_messages(record["prompt"], f"{where}, field 'prompt'", last_role="user")
        dialogues.append([*prompt, {"role": "assistant", "content": record["response"]}])
    if not dialogues:
        raise PolicyRunError(f"{name} has no dialogues.")
    return dialogues


def batch_prompts(batch: Batch) -> list[Messages]:
    """The distinct prompts of a batch's items, in item order."""
    return unique_prompts(item.chat_messages() for item in batch.items.order_by("pk"))


def batch_demonstrations(batch: Batch) -> list[Messages]:
    """One dialogue per judgment of the batch: the prompt followed by the chosen response."""
    judgments = Judgment.objects.filter(item__batch=batch).select_related("item").order_by("pk")
    return [[*j.item.chat_messages(), {"role": "assistant", "content": j.chosen_text}] for j in judgments]


def unique_prompts(prompts: Iterable[Messages]) -> list[Messages]:
    seen, unique = set(), []
    for prompt in prompts:
        key = prompt_group_id(prompt)
        if key not in seen:
            seen.add(key)
            unique.append(prompt)
    return unique


def split_eval_prompts(prompts: list[Messages], seed: int = 0) -> tuple[list[Messages], list[Messages]]:
    """(train, eval): a deterministic held-out share, chosen by a hash of each prompt, never on both sides."""
    prompts = unique_prompts(prompts)
    if len(prompts) < 2:
        raise PolicyRunError(f"Need at least 2 distinct prompts (one to train on, one held out); got {len(prompts)}.")
    n_eval = min(MAX_EVAL_PROMPTS, max(1, round(EVAL_FRACTION * len(prompts))))

    def rank(prompt: Messages) -> str:
        return hashlib.sha256(f"{seed}:{prompt_group_id(prompt)}".encode()).hexdigest()

    held_out = {prompt_group_id(p) for p in sorted(prompts, key=rank)[:n_eval]}
    train = [p for p in prompts if prompt_group_id(p) not in held_out]
    evaluate = [p for p in prompts if prompt_group_id(p) in held_out]
    return train, evaluate


def read_run_data(run: PolicyRun) -> list[Messages]:
    """The run's prompts (REINFORCE) or dialogues (SFT), from its batch or its uploaded file."""
    if run.data_batch_id:
        batch = run.data_batch
        data = batch_demonstrations(batch) if run.kind == PolicyRun.Kind.SFT else batch_prompts(batch)
        if not data:
            what = "judged items" if run.kind == PolicyRun.Kind.SFT else "items"
            raise PolicyRunError(f"Batch {batch.name} has no {what}.")
        return data
    if run.data_file:
        with run.data_file.open("rb") as handle:
            lines = [line.decode("utf-8", errors="replace") for line in handle]
        parse = parse_dialogues_jsonl if run.kind == PolicyRun.Kind.SFT else parse_prompts_jsonl
        return parse(lines, Path(run.data_file.name).name)
    raise PolicyRunError(f"Run {run.pk} has neither a batch nor a file of data.")


def _read_upload(upload: IO[bytes], name: str) -> tuple[bytes, list[str]]:
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_DATA_FILE_BYTES:
        raise PolicyRunError(f"{name} is larger than {MAX_DATA_FILE_BYTES // (1024 * 1024)} MB.")
    content = upload.read()
    if isinstance(content, str):
        content = content.encode()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyRunError(f"{name} is not UTF-8 text (byte {exc.start}).") from None
    return content, text.splitlines()


# Configs ----------------------------------------------------------------------------------------


def config_class(kind: str) -> type:
    if kind == PolicyRun.Kind.REINFORCE:
        return ReinforceConfig
    if kind == PolicyRun.Kind.SFT:
        return SFTConfig
    raise PolicyRunError(f"kind must be 'reinforce' or 'sft', not {kind!r}.")


def config_fields(kind: str) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class(kind))}


def build_config(kind: str, **options) -> ReinforceConfig | SFTConfig:
    """The trainer's config: its defaults, overridden by `options` (unknown names are an error)."""
    unknown = sorted(set(options) - config_fields(kind))
    if unknown:
        label = ngettext("option", "options", len(unknown))
        raise PolicyRunError(f"Unknown {kind} {label}: {', '.join(unknown)}.")
    try:
        return config_class(kind)(**{k: v for k, v in options.items() if v is not None})
    except OptionError as exc:
        raise PolicyRunError(str(exc)) from exc  # names the option, as the form and the command say it
    except (TypeError, ValueError) as exc:
        raise PolicyRunError(f"Bad {kind} option: {exc}") from exc


# Starting and running ----------------------------------------------------------------------------


def start_policy_run(
    user,
    kind: str,
    *,
    reward_run: RewardModelRun | None = None,
    base_run: PolicyRun | None = None,
    base_path: str = "",
    data_batch: Batch | None = None,
    data_file: IO[bytes] | None = None,
    dispatch: bool = True,
    queue: str = "",
    **options,
) -> PolicyRun:
    """Create a queued run and (by default) hand it to a worker once the row is committed.

    REINFORCE needs a succeeded reward-model run and prompts; SFT needs demonstrations.
    Data comes from `data_batch` or an uploaded JSONL `data_file` (checked here, line by line,
    and kept under MEDIA_ROOT so the worker reads exactly what was uploaded).
    """
    config = build_config(kind, **options)
    try:
        queue = check_run_queue(queue)
    except RunQueueError as exc:
        raise PolicyRunError(str(exc)) from None
    if kind == PolicyRun.Kind.REINFORCE:
        if reward_run is None:
            raise PolicyRunError("Pick a reward-model run: REINFORCE needs a reward model.")
        if reward_run.status != RunStatus.SUCCEEDED:
            raise PolicyRunError(
                f"Reward run {reward_run.pk} is {reward_run.get_status_display().lower()}; pick a run that succeeded."
            )
        if reward_run.artifact_location is None:
            raise PolicyRunError(f"Reward run {reward_run.pk} has no trained model on disk any more.")
    else:
        reward_run = None
    base_path = (base_path or "").strip()
    if base_run is not None and base_path:
        raise PolicyRunError("Give either a base policy run or a base path, not both.")
    if base_run is not None and base_run.artifact_location is None:
        raise PolicyRunError(f"Base {base_run} has no trained model (status: {base_run.get_status_display()}).")
    if (data_batch is None) == (data_file is None):
        raise PolicyRunError("Give the data either as a batch or as an uploaded file (exactly one).")

    extra: dict[str, Any] = {}
    file_content = b""
    if data_file is not None:
        name = Path(getattr(data_file, "name", "data.jsonl")).name
        file_content, lines = _read_upload(data_file, name)
        data = parse_dialogues_jsonl(lines, name) if kind == PolicyRun.Kind.SFT else parse_prompts_jsonl(lines, name)
    else:
        name = ""
        if kind == PolicyRun.Kind.SFT:
            data = batch_demonstrations(data_batch)
            if not data:
                raise PolicyRunError(f"Batch {data_batch.name} has no judgments to take demonstrations from.")
        else:
            data = batch_prompts(data_batch)
    if kind == PolicyRun.Kind.REINFORCE:
        train, held_out = split_eval_prompts(data, seed=config.seed)
        extra = {"train_prompts": len(train), "eval_prompts": len(held_out)}
    else:
        extra = {"dialogues": len(data)}

    with transaction.atomic():
        run = PolicyRun(
            kind=kind,
            created_by=user if getattr(user, "pk", None) else None,
            reward_run=reward_run,
            base_run=base_run,
            base_path=base_path,
            data_batch=data_batch,
            config={**config.to_dict(), **extra},
            total_steps=getattr(config, "steps", 0),
            queue=queue,
        )
        run.save()
        if data_file is not None:
            run.data_file.save(f"run-{run.pk}-{name}", ContentFile(file_content), save=True)
        if dispatch:
            from policy.tasks import train_policy_run  # the task module imports this one

            run.dispatch_on_commit(train_policy_run)
    return run


def artifact_dir_for(run: PolicyRun) -> Path:
    return run.planned_artifact_dir


def base_model_path(run: PolicyRun) -> str:
    """The starting weights: the base run's final model, a path / hub id, or the default SmolLM2 (converted once)."""
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


def _train(run: PolicyRun, output_dir: Path, on_log: OnLog | None) -> dict:
    kind = run.kind
    options = {k: v for k, v in run.config.items() if k in config_fields(kind)}
    config = build_config(kind, **options)
    data = read_run_data(run)
    base = base_model_path(run)

    log = run.progress_logger(on_log, clean=_json_safe)
    should_stop = run.stop_checker()
    on_progress = run.progress_recorder()

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

    if run.reward_run is None:
        raise PolicyRunError("REINFORCE needs a reward-model run.")
    if config.processes > 1:
        return _train_reinforce_distributed(run, config, base, data, output_dir, log, should_stop, on_progress)
    scorer = scorer_for(run.reward_run)

    def reward_fn(prompts: list[Messages], responses: list[str]) -> list[float]:
        return [float(r) for r in scorer.score_batch(prompts, responses)]

    def save_samples(step: int, samples: list[dict]) -> None:
        save_policy_samples(run, step, samples)

    train, held_out = split_eval_prompts(data, seed=config.seed)
    return trainer.train_reinforce(
        base,
        reward_fn,
        train,
        held_out,
        config,
        str(output_dir),
        on_log=log,
        on_samples=save_samples,
        should_stop=should_stop,
        on_progress=on_progress,
        resume_path=run.resume_checkpoint,
    )


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
    from rlhf.distributed import launch_torchrun

    if run.reward_run.artifact_dir is None:
        raise PolicyRunError(f"Reward run {run.reward_run.pk} has no trained model on disk any more.")
    train, held_out = split_eval_prompts(data, seed=config.seed)
    work_dir = run.launch_dir
    shutil.rmtree(work_dir, ignore_errors=True)
    try:
        work_dir.mkdir(parents=True)
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
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def cancel_policy_run(run: PolicyRun) -> bool:
    """Stop a run: at once when queued, at the trainer's next step when running."""
    return run.request_cancel()


# Human evaluation --------------------------------------------------------------------------------


def send_to_annotators(
    run: PolicyRun, user, *, overlap: int = 1, seed: int | None = None, priority: int | None = None
) -> Batch:
    """A new batch pairing the policy's answer with the reference's on each held-out prompt.

    Which of response_1 / response_2 is the policy is random per item (and the HIT page
    swaps sides at random again), so position says nothing; `Item.source` records it.
    Sending twice returns the batch made the first time. The batch goes to the front of the annotators' queue
    (a priority above every active batch) unless `priority` says otherwise.
    """
    if run.annotation_batch_id:
        return run.annotation_batch
    if not run.is_reinforce or run.status != RunStatus.SUCCEEDED:
        raise PolicyRunError(f"Only a REINFORCE run that succeeded can be sent to annotators ({run} is {run.status}).")
    if not run.eval_samples:
        raise PolicyRunError(f"{run} kept no held-out answers to compare.")
    if overlap < 1:
        raise PolicyRunError("Judgments per comparison (overlap) must be at least 1.")
    rng = random.Random(f"policy-{run.pk}" if seed is None else seed)
    with transaction.atomic():
        locked = PolicyRun.objects.select_for_update().get(pk=run.pk)
        if locked.annotation_batch_id:  # a concurrent click got there first
            run.annotation_batch = locked.annotation_batch
            return run.annotation_batch
        batch = Batch.objects.create(
            name=_free_batch_name(f"policy-{run.pk}-vs-reference"),
            guidelines=ANNOTATION_GUIDELINES,
            samples_per_hit=ANNOTATION_SAMPLES_PER_HIT,
            overlap=overlap,
            priority=Batch.objects.top_priority() if priority is None else priority,
            created_by=user if getattr(user, "pk", None) else None,
        )
        try:
            add_items(batch, _comparisons_of(run.pk, locked.eval_samples, rng), rng)
        except ImportFileError as exc:
            raise PolicyRunError(f"{run}: a held-out answer cannot be sent to annotators: {exc}") from None
        PolicyRun.objects.filter(pk=run.pk).update(annotation_batch=batch)
        run.annotation_batch = batch
    return batch


def _comparisons_of(run_pk: int, eval_samples: list[dict], rng: random.Random) -> list:
    """The held-out answers as import records ("plain" format), checked as an imported file's would be.

    Which of response_1 / response_2 is the policy is drawn per sample; `source` records it.
    """
    comparisons = []
    for number, sample in enumerate(eval_samples, start=1):
        policy_side = rng.choice((1, 2))
        responses = {policy_side: sample["policy_response"], 3 - policy_side: sample["reference_response"]}
        record = Record(
            {
                "id": f"policy-{run_pk}-eval-{number}",
                "prompt": sample["prompt"],
                "response_1": responses[1],
                "response_2": responses[2],
            },
            f"held-out answer {number}",
            number,
        )
        comparison = parse_record(record, "plain")
        comparison.source = {
            "policy_run": run_pk,
            "policy_response": policy_side,
            "reference_response": 3 - policy_side,
            "policy_reward": sample.get("policy_reward"),
            "reference_reward": sample.get("reference_reward"),
        }
        comparisons.append(comparison)
    return comparisons


def _free_batch_name(name: str) -> str:
    candidate, n = name, 1
    while Batch.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


class WinRate(NamedTuple):
    wins: int
    n: int
    rate: float | None
    low: float | None
    high: float | None


def wilson_interval(wins: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial share (95 % for the default z)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def human_win_rate(run: PolicyRun) -> WinRate:
    """How often annotators preferred the policy over the reference, with a 95 % Wilson interval.

    Every judgment counts once (the four-level scale always picks a side, so there are no ties).
    """
    if not run.annotation_batch_id:
        return WinRate(0, 0, None, None, None)
    judgments = Judgment.objects.filter(item__batch_id=run.annotation_batch_id).select_related("item")
    wins = n = 0
    for judgment in judgments:
        policy_side = judgment.item.source.get("policy_response")
        if policy_side not in (1, 2):
            continue
        n += 1
        wins += judgment.chosen == policy_side
    if n == 0:
        return WinRate(0, 0, None, None, None)
    low, high = wilson_interval(wins, n)
    return WinRate(wins, n, wins / n, low, high)
