"""REINFORCE with the default policy (SmolLM2-135M-Instruct): where an iteration's time goes, our sampler against
plain model.generate, and (with a reward model) quality after N steps. NOT part of CI.

Timing (rollout / scoring / update per iteration, and rollout tokens/s of both samplers on the same batch):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_reinforce.py --iterations 4
Quality, with a trained reward-model dir (or --train-reward-model N to train one on N HH pairs first):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_reinforce.py --reward-model PATH --steps 20
What to train, full fine-tuning against LoRA and top blocks, each (mode, shape) in its own process for its peak RSS,
optionally against another checkout's full fine-tuning (--baseline-repo, e.g. HEAD's tree from `git archive`):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_reinforce.py --modes full,lora16,top4 --shapes 2x4,4x8 \
        --iterations 2 --baseline-repo /tmp/head
    (modes: full, loraR (rank R, all linear layers), loraR-qv (q_proj,v_proj), topK (top K blocks))
One iteration's rollout and update only (no loading in the timing, no evaluation or saving: cheap enough for a busy
machine), each mode in its own process, "head" being HEAD's update (whole sequences, a full reference copy):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_reinforce.py --update-only --modes head,full,lora16,top4 --shapes 2x4
Prompts are HH-RLHF dialogues from ../shared/data (up to the last Assistant turn); RL prompts and held-out
evaluation prompts are disjoint from any reward-model training pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# BENCH_REPO: import the project from another checkout (the baseline's), this script unchanged.
sys.path.insert(0, os.environ.get("BENCH_REPO") or str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from bench_reward import HH_FILE, load_hh  # noqa: E402  (this folder is on sys.path when run as a script)

from policy.reinforce import ReinforceConfig, default_policy_path, load_policy, train_reinforce  # noqa: E402
from policy.reinforce.sampling import encode_prompts, make_generator, sample  # noqa: E402


def hh_rows() -> list[tuple[list[dict], str, str]]:
    """(prompt messages, chosen answer, rejected answer) per HH row, split as the reward bench splits them."""
    return [(pair.prompt, pair.chosen, pair.rejected) for pair in load_hh(HH_FILE)]


def length_reward(prompts: list[list[dict]], responses: list[str]) -> list[float]:
    # Stand-in when no reward model is given: costs nothing, so "scoring" time is then ~0.
    return [min(len(response.split()), 20) / 20 for response in responses]


def time_samplers(
    policy_path: str,
    prompts: list[list[dict]],
    samples_per_prompt: int,
    new_tokens: int,
    max_prompt_tokens: int,
    repeats: int,
) -> dict:
    """Same model, same left-padded prompts, samples_per_prompt samples of each, exactly new_tokens per sample for
    both (EOS ignored), sampling at T=1. generate gets num_return_sequences, so it too sees each prompt once."""
    model, tokenizer = load_policy(policy_path)
    model.eval()
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, max_prompt_tokens, device)
    ours, plain = [], []
    for repeat in range(repeats):
        started = time.perf_counter()
        sample(
            model,
            prompt_ids,
            prompt_mask,
            max_new_tokens=new_tokens,
            temperature=1.0,
            top_p=1.0,
            eos_ids=[-1],
            pad_token_id=tokenizer.pad_token_id,
            generator=make_generator(device, repeat),
            samples_per_prompt=samples_per_prompt,
        )
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                num_return_sequences=samples_per_prompt,
                pad_token_id=tokenizer.pad_token_id,
            )
        plain.append(time.perf_counter() - started)
    tokens = len(prompts) * samples_per_prompt * new_tokens
    ours_tps, plain_tps = tokens / statistics.median(ours), tokens / statistics.median(plain)
    return {
        "prompts": len(prompts),
        "samples_per_prompt": samples_per_prompt,
        "prompt_tokens_padded": prompt_ids.shape[1],
        "new_tokens": new_tokens,
        "ours_tokens_per_s": round(ours_tps, 1),
        "generate_tokens_per_s": round(plain_tps, 1),
        "ratio": round(ours_tps / plain_tps, 2),
    }


def mode_options(mode: str) -> dict:
    """The ReinforceConfig options of a mode name: full, loraR, loraR-qv, topK."""
    if mode == "full":
        return {}
    if mode.startswith("lora"):
        rank, _, targets = mode[4:].partition("-")
        return {"lora_rank": int(rank), **({"lora_target_modules": "q_proj,v_proj"} if targets == "qv" else {})}
    if mode.startswith("top"):
        return {"trainable_top_blocks": int(mode[3:])}
    raise ValueError(f"unknown mode {mode!r}")


def time_mode(policy_path: str, prompts: list[list[dict]], mode: str, shape: str, iterations: int) -> dict:
    """Seconds per iteration by phase (median after a warm-up iteration) and the process's peak RSS."""
    prompts_per_step, samples = (int(part) for part in shape.split("x"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logs: list[dict] = []
    config = ReinforceConfig(
        steps=iterations + 1,
        prompts_per_step=prompts_per_step,
        samples_per_prompt=samples,
        eval_every=10_000,
        checkpoint_every=10_000,
        eval_max_prompts=1,
        **mode_options(mode),
    )
    with tempfile.TemporaryDirectory() as out:
        train_reinforce(
            policy_path, length_reward, prompts, prompts[:1], config, out, on_log=lambda s, m: logs.append(m)
        )
    phases = {
        phase: round(statistics.median(m[f"time_{phase}"] for m in logs[1:]), 2)
        for phase in ("rollout", "scoring", "update")
    }
    return {
        "mode": mode,
        "shape": shape,
        **phases,
        "total_s": round(sum(phases.values()), 2),
        "response_tokens": round(statistics.mean(m["response_length"] for m in logs[1:]), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_imports_mb": round(rss_before),
    }


def time_update(policy_path: str, prompts: list[list[dict]], mode: str, shape: str, updates: int = 2) -> dict:
    """One rollout, then `updates` REINFORCE updates on it (the last one timed) as train_reinforce makes them."""
    import copy
    import dataclasses

    from policy.reinforce.lora import make_trainable, reference_policy, trainable_parameters
    from policy.reinforce.loss import compute_baseline, reinforce_loss, token_kl
    from policy.reinforce.sampling import decode_responses, response_logprobs, rollout_prompts

    prompts_per_step, n = (int(part) for part in shape.split("x"))
    config = ReinforceConfig(prompts_per_step=prompts_per_step, samples_per_prompt=n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    policy, tokenizer = load_policy(policy_path, dtype=torch.float32)
    policy = make_trainable(policy, **mode_options("full" if mode == "head" else mode))
    # HEAD: a whole copy for the reference, every sampled sequence read whole.
    reference = copy.deepcopy(policy).requires_grad_(False).eval() if mode == "head" else reference_policy(policy)
    policy.eval()
    trained = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate)
    started = time.perf_counter()
    rollout = rollout_prompts(
        policy, tokenizer, prompts[:prompts_per_step], max_new_tokens=config.max_new_tokens,
        temperature=config.temperature, top_p=config.top_p, max_prompt_tokens=config.max_prompt_tokens,
        generator=make_generator(torch.device("cpu"), 0), samples_per_prompt=n,
    )  # fmt: skip
    rewards = torch.tensor(length_reward([], decode_responses(tokenizer, rollout)))
    time_rollout = time.perf_counter() - started
    if mode == "head":
        rollout = dataclasses.replace(rollout, samples_per_prompt=1)
    for _ in range(updates):
        started = time.perf_counter()
        logprobs = response_logprobs(policy, rollout, config.temperature)
        with torch.no_grad():
            ref_logprobs = response_logprobs(reference, rollout, config.temperature)
        kl = token_kl(logprobs.detach(), ref_logprobs, rollout.response_mask).sum(dim=1)
        total = rewards - config.kl_coef * kl
        loss, _ = reinforce_loss(logprobs, rollout.response_mask, total, compute_baseline(total, n, "loo"), n)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, config.max_grad_norm)
        optimizer.step()
        time_update = time.perf_counter() - started
    return {
        "mode": mode,
        "shape": shape,
        "rollout": round(time_rollout, 2),
        "update": round(time_update, 2),
        "total_s": round(time_rollout + time_update, 2),
        "prompt_tokens_padded": rollout.prompt_ids.shape[1],
        "response_tokens": round(float(rollout.lengths.float().mean()), 1),
        "trainable_params": sum(parameter.numel() for parameter in trained),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_imports_mb": round(rss_before),
    }


def compare_modes(args, policy_path: str) -> list[dict]:
    """Every (shape, mode) in a fresh process, modes interleaved shape by shape so that load changes hit them alike."""
    results = []
    for shape in args.shapes.split(","):
        runs = [(mode, None) for mode in args.modes.split(",")]
        if args.baseline_repo:
            runs.insert(0, ("full", args.baseline_repo))
        for mode, repo in runs:
            command = [sys.executable, __file__, "--one-mode", mode, "--shapes", shape, "--policy", policy_path]
            command += ["--iterations", str(args.iterations)] + (["--update-only"] if args.update_only else [])
            env = {**os.environ, **({"BENCH_REPO": repo} if repo else {})}
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["code"] = "baseline" if repo else "this tree"
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", help="policy dir (default: the converted SmolLM2 under $ARBITER_VAR_DIR/models)")
    parser.add_argument("--reward-model", help="trained reward-model dir; without it a length reward stands in")
    parser.add_argument("--train-reward-model", type=int, default=0, help="first train a reward model on N HH pairs")
    parser.add_argument("--iterations", type=int, default=4, help="REINFORCE iterations to time")
    parser.add_argument("--steps", type=int, default=0, help="quality run: REINFORCE steps (needs a reward model)")
    parser.add_argument("--eval-prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="sampler comparison repeats (median)")
    parser.add_argument("--modes", help="compare what is trained: e.g. full,lora16,top4 (then only that)")
    parser.add_argument("--shapes", default="2x4,4x8", help="prompts x samples per prompt, for --modes")
    parser.add_argument("--baseline-repo", help="also time full fine-tuning with the project at this path")
    parser.add_argument("--update-only", action="store_true", help="--modes: one rollout and update per mode")
    parser.add_argument("--one-mode", help=argparse.SUPPRESS)
    args = parser.parse_args()

    var_dir = Path(os.environ.get("ARBITER_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
    policy_path = args.policy or default_policy_path(var_dir / "models")
    rows = hh_rows()
    if args.one_mode or args.modes:
        rl_prompts = [prompt for prompt, _, _ in rows[len(rows) // 2 :]]
        if args.one_mode:
            timer = time_update if args.update_only else time_mode
            print(json.dumps(timer(policy_path, rl_prompts, args.one_mode, args.shapes, args.iterations)))
            return
        print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, policy {policy_path}", flush=True)
        compare_modes(args, policy_path)
        return
    config = ReinforceConfig()
    report: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "policy": policy_path,
        "config": config.to_dict(),
    }
    # Reward-model pairs come from the front of the file, RL prompts from the back: never the same rows.
    rl_rows = rows[len(rows) // 2 :]
    train_prompts = [prompt for prompt, _, _ in rl_rows[: -args.eval_prompts]]
    eval_prompts = [prompt for prompt, _, _ in rl_rows[-args.eval_prompts :]]

    reward_fn = length_reward
    reward_path = args.reward_model
    if args.train_reward_model:
        from rewardmodel.train import PreferencePair, RewardTrainConfig, train_reward_model

        pairs = [PreferencePair(p, c, r) for p, c, r in rows[: args.train_reward_model]]
        reward_path = tempfile.mkdtemp(prefix="bench-rm-")
        started = time.perf_counter()
        rm_metrics = train_reward_model(pairs, RewardTrainConfig(max_length=256), reward_path)
        report["reward_model_training"] = {
            "pairs": len(pairs),
            "seconds": round(time.perf_counter() - started, 1),
            "eval_accuracy": rm_metrics.get("eval_accuracy"),
        }
    if reward_path:
        from rewardmodel.train import load_reward_model

        reward_fn = load_reward_model(reward_path).score_batch
    report["reward"] = reward_path or "length stand-in"

    # 1. One iteration split into its phases, default config, first iteration dropped as warm-up.
    logs: list[dict] = []
    timing_config = ReinforceConfig(steps=args.iterations + 1, eval_every=10_000, checkpoint_every=10_000)
    with tempfile.TemporaryDirectory() as out:
        train_reinforce(
            policy_path,
            reward_fn,
            train_prompts,
            eval_prompts[:2],
            timing_config,
            out,
            on_log=lambda step, metrics: logs.append(metrics),
        )
    phases = {}
    for phase in ("time_rollout", "time_scoring", "time_update"):
        phases[phase] = round(statistics.median(m[phase] for m in logs[1:]), 3)
    total = sum(phases.values())
    report["iteration"] = {
        **phases,
        "total_s": round(total, 3),
        "rollout_share": round(phases["time_rollout"] / total, 3),
        "samples_per_iteration": config.prompts_per_step * config.samples_per_prompt,
        "mean_response_tokens": round(statistics.mean(m["response_length"] for m in logs[1:]), 1),
    }
    print(json.dumps({"iteration": report["iteration"]}), flush=True)

    # 2. Our sampler against model.generate: the training shape (prompts x n), and n distinct prompts of one sample.
    n = config.samples_per_prompt
    report["sampler"] = [
        time_samplers(
            policy_path,
            train_prompts[: config.prompts_per_step],
            n,
            config.max_new_tokens,
            config.max_prompt_tokens,
            args.repeats,
        ),
        time_samplers(
            policy_path,
            train_prompts[: config.prompts_per_step * n],
            1,
            config.max_new_tokens,
            config.max_prompt_tokens,
            args.repeats,
        ),
    ]
    print(json.dumps({"sampler": report["sampler"]}), flush=True)

    # 3. Quality after N steps, judged by the reward model on held-out prompts.
    if args.steps:
        if not reward_path:
            parser.error("--steps needs --reward-model or --train-reward-model")
        quality_config = ReinforceConfig(steps=args.steps, eval_every=args.steps, checkpoint_every=10_000)
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            result = train_reinforce(policy_path, reward_fn, train_prompts, eval_prompts, quality_config, out)
        report["quality"] = {
            "steps": args.steps,
            "eval_prompts": len(eval_prompts),
            "reward_policy": round(result["reward_policy"], 3),
            "reward_reference": round(result["reward_reference"], 3),
            "win_rate": round(result["win_rate"], 3),
            "kl": round(result["kl"], 3),
            "seconds": round(time.perf_counter() - started, 1),
            "example": result["eval_samples"][0],
        }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
