"""SFT as a torchrun entry point (Django-free): `python -m torch.distributed.run --standalone --nproc-per-node N
-m policy.reinforce.sft_launch WORK_DIR`, started by rlhf.distributed.launch_torchrun.

The service writes the job into WORK_DIR with `write_job` (the dialogues, the config, the model to start from);
each rank reads it back and runs `train_sft`, which takes its rank from torchrun's environment.
"""

from __future__ import annotations

from pathlib import Path

from policy.reinforce.config import SFTConfig
from rlhf.distributed import JOB_FILE, RankChannel, rank_main, write_json


def write_job(
    work_dir: Path,
    base_path: str,
    dialogues: list[list[dict]],
    config: SFTConfig,
    output_dir: str | Path,
    resume_path: str | Path | None = None,
) -> None:
    job = {
        "base_path": str(base_path),
        "dialogues": dialogues,
        "config": config.to_dict(),
        "output_dir": str(output_dir),
        "resume_path": str(resume_path) if resume_path else None,
    }
    write_json(work_dir / JOB_FILE, job)


def train(job: dict, channel: RankChannel) -> dict:
    from policy.reinforce.sft import train_sft

    return train_sft(
        job["base_path"],
        job["dialogues"],
        SFTConfig(**job["config"]),
        job["output_dir"],
        on_log=channel.on_log,
        should_stop=channel.should_stop,
        on_progress=channel.on_progress,
        resume_path=job["resume_path"],
    )


if __name__ == "__main__":
    rank_main(train)
