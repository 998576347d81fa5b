"""REINFORCE against a reward function, with a frozen reference policy for the KL term (one clear training loop)."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.checkpoint import (
    checkpoint_due,
    load_resume_checkpoint,
    restore_rng_states,
    rng_states,
    save_resume_checkpoint,
)
from rlhf.distributed import distributed_context, wrap_ddp
from rlhf.prompts import check_messages
from rlhf.training import TrainingStopped

from .card import policy_card
from .config import ReinforceConfig
from .evaluation import compare_with_reference
from .loading import load_policy
from .lora import (
    load_trainable_state_dict,
    make_trainable_from,
    reference_policy,
    save_policy,
    trainable_parameters,
    trainable_state_dict,
)
from .loss import compute_baseline, k3_kl, reinforce_loss, token_kl, whiten
from .sampling import Rollout, decode_responses, make_generator, response_logprobs, rollout_prompts

RewardFn = Callable[[list[list[dict]], list[str]], list[float]]
LogFn = Callable[[int, dict], None]
SamplesFn = Callable[[int, list[dict]], None]
StopFn = Callable[[], bool]
# (step, total_steps, phase[, done, total]): told of every step and phase ("loading", "tokenizing", "training",
# "evaluating", "saving"), and while evaluating of the answers sampled (done) of all it samples (total); must be cheap.
ProgressFn = Callable[..., None]
AnswersFn = Callable[[int], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, extra: dict) -> str:
    """save_pretrained into a temporary sibling, then rename: a half-written checkpoint never has the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(model, tmp)  # a LoRA model's merged weights, its adapter in tmp/adapter
    tokenizer.save_pretrained(tmp)
    (tmp / "training_state.json").write_text(json.dumps(extra, indent=2, default=str))
    (tmp / "README.md").write_text(policy_card(tokenizer, extra))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return str(target)


def score(reward_fn: RewardFn, prompts: list[list[dict]], responses: list[str]) -> list[float]:
    rewards = [float(value) for value in reward_fn(prompts, responses)]
    if len(rewards) != len(responses):
        raise ValueError(f"reward_fn returned {len(rewards)} rewards for {len(responses)} responses")
    return rewards


def _validate_prompts(name: str, prompts: list[list[dict]]) -> None:
    if not prompts:
        raise ValueError(f"{name} is empty")
    for index, messages in enumerate(prompts):
        try:
            check_messages(messages, allow_empty=True)
        except ValueError as error:
            raise ValueError(f"{name}[{index}]: {error}") from None


class _PromptCycle:
    """Shuffled passes over the training prompts, reproducible from the seed."""

    def __init__(self, prompts: list[list[dict]], seed: int) -> None:
        self.prompts = prompts
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def take(self, count: int) -> list[list[dict]]:
        batch = []
        while len(batch) < count:
            if not self.order:
                self.order = list(range(len(self.prompts)))
                self.rng.shuffle(self.order)
            batch.append(self.prompts[self.order.pop()])
        return batch


class _AnswerCount:
    """An evaluation's answers sampled so far, reported as the phase's progress."""

    def __init__(self, step: int, total: int, progress: Callable[..., None]) -> None:
        self.step, self.total, self.done, self.progress = step, total, 0, progress
        progress(step, "evaluating", 0, total)

    def add(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        self.progress(self.step, "evaluating", self.done, self.total)


def train_reinforce(
    policy_path: str | os.PathLike,
    reward_fn: RewardFn,
    prompts: list[list[dict]],
    eval_prompts: list[list[dict]],
    config: ReinforceConfig,
    output_dir: str | os.PathLike,
    on_log: LogFn | None = None,
    on_samples: SamplesFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
    resume_path: str | os.PathLike | None = None,
    judge_fn: RewardFn | None = None,
) -> dict:
    """Train the policy at policy_path with REINFORCE on reward_fn.

    `judge_fn`, an independent scorer (a reward model trained on other judgments), scores the held-out answers of
    every evaluation beside reward_fn; it never touches training.

    With `resume_path`, saves a resumable checkpoint there every `config.checkpoint_every` steps (beside the
    downloadable checkpoint-<step> folder) and continues from it when it exists, as an uninterrupted run would.

    Returns the last evaluation on eval_prompts (reward_policy, reward_reference, win_rate with win_wins, win_n,
    win_low, win_high; the judge's judge_win_rate and the rest when there is one; kl, response_length),
    model_path (output_dir/final) and eval_samples: the policy's and the reference's answer to each held-out prompt.

    Started by torchrun (policy.reinforce.launch), every rank takes the same prompts for a step and samples, scores
    and trains on its equal share (its own sampling seed: seed + rank); rewards are gathered so that whitening and
    the baseline see the whole step, DDP averages the gradients, and rank 0 alone evaluates, checkpoints and saves
    (the other ranks return {}).
    """

    def progress(step: int, phase: str, *counts: int) -> None:
        if on_progress is not None:
            on_progress(step, config.steps, phase, *counts)

    progress(0, "loading")
    _validate_prompts("prompts", prompts)
    _validate_prompts("eval_prompts", eval_prompts)
    eval_prompts = eval_prompts[: config.eval_max_prompts]
    output_dir = Path(output_dir)
    seed_everything(config.seed)
    ctx = distributed_context()
    master_process = ctx.master_process
    # Master weights stay float32 (bf16 comes from autocast on CUDA), so the reference is exact at step 0.
    policy, tokenizer = load_policy(policy_path, device=ctx.device, dtype=torch.float32)
    device = next(policy.parameters()).device
    # Every weight, LoRA adapters or the top blocks; the reference shares whatever stays frozen (LoRA: the same
    # model with its adapters off).
    policy = make_trainable_from(policy, config)
    reference = reference_policy(policy)
    # No dropout: the sampled distribution and the trained one must be the same model.
    policy.eval()
    trained = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=config.weight_decay)
    cycle = _PromptCycle(prompts, config.seed)  # the same global order on every rank
    generator = make_generator(device, config.seed + ctx.rank)
    n = config.samples_per_prompt
    state = {"config": config.to_dict(), "policy_path": str(policy_path)}
    evaluation: dict = {}
    reference_eval: dict | None = None
    started = time.monotonic()

    first_step = 1
    resume = load_resume_checkpoint(resume_path)
    if resume is not None:
        load_trainable_state_dict(policy, resume["model"])  # the reference stays the starting weights
        optimizer.load_state_dict(resume["optimizer"])
        cycle.rng.setstate(resume["prompt_rng"])
        cycle.order = resume["prompt_order"]
        generator.set_state(resume.get("generators", [resume["generator"]])[ctx.rank])
        reference_eval = resume["reference_eval"]
        restore_rng_states(resume["rng"])
        first_step = resume["step"] + 1

    def stop_requested() -> None:
        if should_stop is not None and should_stop():
            raise TrainingStopped(f"stopped at step {step} of {config.steps}")

    # Sampling and evaluation use the raw policy (no gradient, no collective); the update goes through DDP.
    trained_policy = wrap_ddp(policy, ctx)
    progress(first_step - 1, "training")
    for step in range(first_step, config.steps + 1):
        stop_requested()
        timings = {}
        # 1. Rollouts: n samples of every prompt, grouped prompt by prompt (the leave-one-out baseline relies on it).
        tick = time.perf_counter()
        step_prompts = ctx.shard(cycle.take(config.prompts_per_step))  # this rank's share (prompts_per_step divides)
        batch_prompts = [messages for messages in step_prompts for _ in range(n)]
        rollout = rollout_prompts(
            policy,
            tokenizer,
            step_prompts,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            max_prompt_tokens=config.max_prompt_tokens,
            generator=generator,
            samples_per_prompt=n,
        )
        responses = decode_responses(tokenizer, rollout)
        timings["time_rollout"] = time.perf_counter() - tick

        # 2. Scores from the reward function on the decoded text (its tokenizer may differ from ours).
        tick = time.perf_counter()
        scores = torch.tensor(score(reward_fn, batch_prompts, responses), device=device)
        timings["time_scoring"] = time.perf_counter() - tick
        stop_requested()

        # 3. Update: log-probs with gradients, the reference's without, the lecture's objective.
        tick = time.perf_counter()
        logprobs = response_logprobs(trained_policy, rollout, config.temperature)
        with torch.no_grad():
            ref_logprobs = response_logprobs(reference, rollout, config.temperature)
        mask = rollout.response_mask
        kl_tokens = token_kl(logprobs.detach(), ref_logprobs, mask)
        sequence_kl = kl_tokens.sum(dim=1)
        # The KL reported (logs, page, API): k3 summed over the response, >= 0 for every sample (the k1 penalty above
        # is an unbiased estimate too, but one sample of it can be negative).
        reported_kl = k3_kl(logprobs.detach(), ref_logprobs, mask).sum(dim=1)
        rewards = scores.clone()
        if config.no_eos_penalty is not None:
            rewards = rewards - config.no_eos_penalty * (~rollout.ended).float()
        if config.kl_mode == "reward":
            # The per-token penalty -beta * (log p - log p_ref), summed over the response, joins its reward.
            rewards = rewards - config.kl_coef * sequence_kl
        # Whitening and the batch-mean baseline see the whole step's rewards (all ranks'), as in one process.
        all_rewards = ctx.all_gather(rewards)
        if config.whiten_rewards:
            all_rewards = whiten(all_rewards)
        all_baseline = compute_baseline(all_rewards, n, config.baseline)
        mine = slice(ctx.rank * len(rewards), (ctx.rank + 1) * len(rewards))
        rewards, baseline = all_rewards[mine], all_baseline[mine]
        loss, loss_stats = reinforce_loss(logprobs, mask, rewards, baseline, n)
        if config.kl_mode == "loss":
            loss = loss + config.kl_coef * k3_kl(logprobs, ref_logprobs, mask).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, config.max_grad_norm)
        optimizer.step()
        timings["time_update"] = time.perf_counter() - tick
        progress(step, "training")

        # The step's metrics over every rank's samples (loss_stats stay this rank's).
        all_scores = ctx.all_gather(scores)
        all_sequence_kl = ctx.all_gather(reported_kl)
        all_lengths = ctx.all_gather(rollout.lengths.float())
        all_ended = ctx.all_gather(rollout.ended.float())
        (loss_sum,) = ctx.all_reduce_sum([loss.item()])
        elapsed = time.monotonic() - started
        metrics = {
            "step": step,
            "total_steps": config.steps,
            "reward_mean": all_scores.mean().item(),
            "reward_std": all_scores.std().item() if len(all_scores) > 1 else 0.0,
            "total_reward_mean": all_rewards.mean().item(),
            "kl": all_sequence_kl.mean().item(),
            "response_length": all_lengths.mean().item(),
            "ended_fraction": all_ended.mean().item(),
            "loss": loss_sum / ctx.world_size,
            "grad_norm": float(grad_norm),
            **loss_stats,
            **timings,
            "elapsed_s": elapsed,
            "eta_s": elapsed / step * (config.steps - step),
        }
        if on_samples is not None and (step % config.log_every == 0 or step == config.steps):
            train_samples = [
                {"prompt": messages, "response": response, "reward": reward, "kind": "train"}
                for messages, response, reward in zip(batch_prompts, responses, scores.tolist(), strict=True)
            ]
            train_samples = [sample for part in ctx.all_gather_objects(train_samples) for sample in part]
            if master_process:
                on_samples(step, train_samples)

        if step % config.eval_every == 0 or step == config.steps:
            stop_requested()
        if master_process and (step % config.eval_every == 0 or step == config.steps):
            answered = _AnswerCount(
                step,
                len(eval_prompts) * config.evaluation_passes(step, with_reference=reference_eval is None),
                progress,
            )
            if reference_eval is None:
                # The reference never changes: its eval answers are sampled and scored once.
                reference_eval = _sample_and_score(
                    reference, tokenizer, reward_fn, eval_prompts, config, device, answered.add
                )
                if judge_fn is not None:
                    reference_eval["judge_rewards"] = score(judge_fn, eval_prompts, reference_eval["responses"])
                if on_samples is not None:
                    on_samples(step, _eval_samples(eval_prompts, reference_eval, "reference"))
            evaluation = _evaluate(
                policy,
                reference,
                tokenizer,
                reward_fn,
                eval_prompts,
                config,
                device,
                reference_eval,
                judge_fn,
                answered.add,
            )
            if on_samples is not None:
                on_samples(step, _eval_samples(eval_prompts, evaluation["policy"], "eval"))
            if step == config.steps:
                # n answers of the final policy to each held-out prompt, for a ranking batch (its n vs the reference).
                ranked = _sample_n_and_score(policy, tokenizer, reward_fn, eval_prompts, config, device, answered.add)
            metrics.update(evaluation["metrics"])
            progress(step, "training")

        if master_process and step % config.checkpoint_every == 0 and step != config.steps:
            progress(step, "saving")
            save_model_dir(policy, tokenizer, output_dir / f"checkpoint-{step}", {**state, "step": step})
            progress(step, "training")
        log_due = step % config.log_every == 0 or step == config.steps or "eval_win_rate" in metrics
        if master_process and on_log is not None and log_due:
            on_log(step, metrics)
        if checkpoint_due(step, config.steps, config.checkpoint_every, resume_path):
            generators = ctx.all_gather_objects(generator.get_state())  # each rank samples with its own
            if not master_process:
                continue
            # After the step's log and samples are saved: a resumed run continues with step + 1.
            save_resume_checkpoint(
                {
                    "model": trainable_state_dict(policy),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "prompt_rng": cycle.rng.getstate(),
                    "prompt_order": list(cycle.order),
                    "generator": generator.get_state(),
                    "generators": generators,
                    "rng": rng_states(),
                    # The reference's eval answers (sampled once): what the final comparison needs of them.
                    "reference_eval": None
                    if reference_eval is None
                    else {
                        key: reference_eval[key]
                        for key in ("responses", "rewards", "judge_rewards")
                        if key in reference_eval
                    },
                    "config": config.to_dict(),
                },
                resume_path,
            )

    if not master_process:
        return {}
    progress(config.steps, "saving")
    final_path = save_model_dir(policy, tokenizer, output_dir / "final", {**state, "step": config.steps})
    eval_metrics = evaluation["metrics"]
    return {
        "steps": config.steps,
        **final_evaluation(eval_metrics, len(eval_prompts)),
        "train_reward_mean": metrics["reward_mean"],
        "elapsed_s": time.monotonic() - started,
        "model_path": final_path,
        "eval_samples": held_out_answers(eval_prompts, evaluation, reference_eval, ranked),
    }


@torch.no_grad()
def _sample_n_and_score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_fn: RewardFn,
    prompts: list[list[dict]],
    config: ReinforceConfig,
    device: torch.device,
    on_answers: AnswersFn | None = None,
) -> dict:
    """samples_per_prompt answers to each prompt and their rewards, as lists per prompt."""
    n = config.samples_per_prompt
    generator = make_generator(device, config.seed + 2_000_003)
    _, responses = _rollouts(model, tokenizer, prompts, config, generator, config.prompts_per_step, n, on_answers)
    rewards = score(reward_fn, [messages for messages in prompts for _ in range(n)], responses) if responses else []
    return {
        "responses": [responses[i * n : (i + 1) * n] for i in range(len(prompts))],
        "rewards": [rewards[i * n : (i + 1) * n] for i in range(len(prompts))],
    }


def _eval_generator(device: torch.device, config: ReinforceConfig) -> torch.Generator:
    # The same seed at every evaluation, so curves move with the weights rather than with sampling noise.
    return make_generator(device, config.seed + 1_000_003)


def _sample_and_score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_fn: RewardFn,
    prompts: list[list[dict]],
    config: ReinforceConfig,
    device: torch.device,
    on_answers: AnswersFn | None = None,
) -> dict:
    generator = _eval_generator(device, config)
    batch_size = config.prompts_per_step * config.samples_per_prompt
    rollouts, responses = _rollouts(model, tokenizer, prompts, config, generator, batch_size, 1, on_answers)
    return {"rollouts": rollouts, "responses": responses, "rewards": score(reward_fn, prompts, responses)}


def _rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[dict]],
    config: ReinforceConfig,
    generator: torch.Generator,
    prompts_per_call: int,
    samples_per_prompt: int,
    on_answers: AnswersFn | None = None,
) -> tuple[list[Rollout], list[str]]:
    """`samples_per_prompt` answers to every prompt, `prompts_per_call` prompts per generation call; `on_answers(k)`
    hears of each call's k prompts answered."""
    rollouts: list[Rollout] = []
    responses: list[str] = []
    for start in range(0, len(prompts), prompts_per_call):
        rollout = rollout_prompts(
            model,
            tokenizer,
            prompts[start : start + prompts_per_call],
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            max_prompt_tokens=config.max_prompt_tokens,
            generator=generator,
            samples_per_prompt=samples_per_prompt,
        )
        rollouts.append(rollout)
        responses.extend(decode_responses(tokenizer, rollout))
        if on_answers is not None:
            on_answers(len(prompts[start : start + prompts_per_call]) * samples_per_prompt)
    return rollouts, responses


# Evaluation metrics the final result repeats without the "eval_" prefix (win_wins, judge_win_rate, ...).
_FINAL_PREFIXES = ("eval_win_", "eval_judge_")


def final_evaluation(eval_metrics: dict, eval_prompts: int) -> dict:
    """What a policy run's result says of its last held-out evaluation (REINFORCE and DPO alike)."""
    return {
        "reward_policy": eval_metrics["eval_reward_policy"],
        "reward_reference": eval_metrics["eval_reward_reference"],
        "win_rate": eval_metrics["eval_win_rate"],
        **{key.removeprefix("eval_"): value for key, value in eval_metrics.items() if key.startswith(_FINAL_PREFIXES)},
        "eval_prompts": eval_prompts,
        "kl": eval_metrics["eval_kl"],
        "response_length": eval_metrics["eval_length"],
    }


@torch.no_grad()
def _evaluate(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_fn: RewardFn,
    prompts: list[list[dict]],
    config: ReinforceConfig,
    device: torch.device,
    reference_eval: dict,
    judge_fn: RewardFn | None = None,
    on_answers: AnswersFn | None = None,
) -> dict:
    sampled = _sample_and_score(policy, tokenizer, reward_fn, prompts, config, device, on_answers)
    kls, lengths = [], []
    for rollout in sampled["rollouts"]:
        logprobs = response_logprobs(policy, rollout, config.temperature)
        ref_logprobs = response_logprobs(reference, rollout, config.temperature)
        # KL(policy || reference) per answer: k3 summed over its tokens (>= 0), as in the training logs.
        kls.extend(k3_kl(logprobs, ref_logprobs, rollout.response_mask).sum(dim=1).tolist())
        lengths.extend(rollout.lengths.tolist())
    scorers = {"reward": reward_fn} if judge_fn is None else {"reward": reward_fn, "judge": judge_fn}
    known_reference = {"reward": reference_eval["rewards"]}
    if "judge_rewards" in reference_eval:
        known_reference["judge"] = reference_eval["judge_rewards"]
    comparison, _, _ = compare_with_reference(
        prompts,
        sampled["responses"],
        reference_eval["responses"],
        scorers,
        policy_scores={"reward": sampled["rewards"]},
        reference_scores=known_reference,
    )
    metrics = {**comparison, "eval_kl": sum(kls) / len(kls), "eval_length": sum(lengths) / len(lengths)}
    return {"metrics": metrics, "policy": sampled}


def held_out_answers(prompts: list[list[dict]], evaluation: dict, reference_eval: dict, ranked: dict) -> list[dict]:
    """The run's `eval_samples`: per held-out prompt, the policy's and the reference's answer and reward, and the
    policy's n answers (what "send to annotators" pairs or ranks)."""
    return [
        {
            "prompt": messages,
            "policy_response": evaluation["policy"]["responses"][index],
            "reference_response": reference_eval["responses"][index],
            "policy_reward": evaluation["policy"]["rewards"][index],
            "reference_reward": reference_eval["rewards"][index],
            "policy_responses": ranked["responses"][index],
            "policy_rewards": ranked["rewards"][index],
        }
        for index, messages in enumerate(prompts)
    ]


def _eval_samples(prompts: list[list[dict]], sampled: dict, kind: str) -> list[dict]:
    return [
        {"prompt": messages, "response": response, "reward": reward, "kind": kind}
        for messages, response, reward in zip(prompts, sampled["responses"], sampled["rewards"], strict=True)
    ]
