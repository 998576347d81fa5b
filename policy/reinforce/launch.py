"""REINFORCE as a torchrun entry point (Django-free): `python -m torch.distributed.run --standalone
--nproc-per-node N -m policy.reinforce.launch WORK_DIR`, started by rlhf.distributed.launch_torchrun.

The service writes the job into WORK_DIR with `write_job` (prompts, config, the policy to start from and the reward
model's folder); each rank loads the reward model itself and scores its own samples with it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from policy.reinforce.config import ReinforceConfig
from rlhf.distributed import JOB_FILE, RankChannel, rank_main, write_json


def write_job(
    work_dir: Path,
    policy_path: str,
    reward_model_path: str,
    reward_model_loader: str,
    prompts: list[list[dict]],
    eval_prompts: list[list[dict]],
    config: ReinforceConfig,
    output_dir: str | Path,
    resume_path: str | Path | None = None,
    judge_model_path: str | None = None,
) -> None:
    job = {
        "policy_path": str(policy_path),
        "reward_model_path": str(reward_model_path),
        "reward_model_loader": reward_model_loader,  # "module:function"
        "prompts": prompts,
        "eval_prompts": eval_prompts,
        "config": config.to_dict(),
        "output_dir": str(output_dir),
        "resume_path": str(resume_path) if resume_path else None,
        "judge_model_path": judge_model_path,  # an independent judge's folder (same loader), or None
    }
    write_json(work_dir / JOB_FILE, job)


def train(job: dict, channel: RankChannel) -> dict:
    from policy.reinforce.train import train_reinforce

    module_name, _, function_name = job["reward_model_loader"].partition(":")
    load_reward_model = getattr(importlib.import_module(module_name), function_name)
    scorer = load_reward_model(job["reward_model_path"], device=str(channel.context.device))

    def reward_fn(prompts: list[list[dict]], responses: list[str]) -> list[float]:
        return [float(r) for r in scorer.score_batch(prompts, responses)]

    judge_fn = None
    if job.get("judge_model_path") and channel.context.master_process:  # rank 0 alone evaluates
        judge = load_reward_model(job["judge_model_path"], device=str(channel.context.device))

        def judge_fn(prompts: list[list[dict]], responses: list[str]) -> list[float]:
            return [float(r) for r in judge.score_batch(prompts, responses)]

    return train_reinforce(
        job["policy_path"],
        reward_fn,
        job["prompts"],
        job["eval_prompts"],
        ReinforceConfig(**job["config"]),
        job["output_dir"],
        on_log=channel.on_log,
        on_samples=channel.on_samples,
        should_stop=channel.should_stop,
        on_progress=channel.on_progress,
        resume_path=job["resume_path"],
        judge_fn=judge_fn,
    )


if __name__ == "__main__":
    rank_main(train)
