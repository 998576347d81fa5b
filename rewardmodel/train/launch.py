"""The reward trainer as a torchrun entry point (Django-free): `python -m torch.distributed.run --standalone
--nproc-per-node N -m rewardmodel.train.launch WORK_DIR`, started by rlhf.distributed.launch_torchrun.

The service writes the job into WORK_DIR with `write_job` (pairs as JSON lines, the config and the paths as JSON);
each rank reads it back and runs `train_reward_model`, which takes its rank from torchrun's environment.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rewardmodel.train.config import RewardTrainConfig
from rewardmodel.train.data import PreferencePair, RankedResponses
from rlhf.distributed import JOB_FILE, RankChannel, rank_main, write_json

PAIRS_FILE = "pairs.jsonl"
RANKINGS_FILE = "rankings.jsonl"


def write_job(
    work_dir: Path,
    pairs: list[PreferencePair],
    config: RewardTrainConfig,
    output_dir: str | Path,
    data_description: dict | None = None,
    resume_path: str | Path | None = None,
    rankings: list[RankedResponses] | None = None,
) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in ((PAIRS_FILE, pairs), (RANKINGS_FILE, rankings or [])):
        with open(work_dir / name, "w") as handle:
            for row in rows:
                handle.write(json.dumps(dataclasses.asdict(row)) + "\n")
    job = {
        "config": config.to_dict(),
        "device": config.device,
        "output_dir": str(output_dir),
        "data_description": data_description,
        "resume_path": str(resume_path) if resume_path else None,
    }
    write_json(work_dir / JOB_FILE, job)


def train(job: dict, channel: RankChannel) -> dict:
    from rewardmodel.train.trainer import train_reward_model

    with open(channel.work_dir / PAIRS_FILE) as handle:
        pairs = [PreferencePair(**json.loads(line)) for line in handle if line.strip()]
    with open(channel.work_dir / RANKINGS_FILE) as handle:
        rankings = [RankedResponses(**json.loads(line)) for line in handle if line.strip()]
    return train_reward_model(
        pairs,
        RewardTrainConfig(**job["config"]),
        job["output_dir"],
        on_log=channel.on_log,
        should_stop=channel.should_stop,
        data_description=job["data_description"],
        on_progress=channel.on_progress,
        resume_path=job["resume_path"],
        rankings=rankings,
    )


if __name__ == "__main__":
    rank_main(train)
