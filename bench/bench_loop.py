"""The whole loop as a new user runs it, from an empty database, with the product's own commands and defaults, timed
phase by phase: import the HH file (as judgments) -> reward model -> REINFORCE (its held-out evaluation included).
NOT part of CI (about 15+ minutes of CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_loop.py [--steps 20] [--policy-option --lora-rank=16 ...]

Each run uses a fresh SQLite database and var folder under a temporary directory (the demo policy's conversion is
copied from --models when it is there, else timed as its own one-time phase, as bin/run does it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reward import HH_FILE  # noqa: E402


def run(phase: str, arguments: list[str], env: dict, timings: dict) -> str:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    timings[phase] = round(time.perf_counter() - started, 1)
    print(json.dumps({"phase": phase, "seconds": timings[phase]}), flush=True)
    if done.returncode:
        raise SystemExit(f"{phase} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="REINFORCE steps")
    parser.add_argument("--models", default=str(REPO / "var" / "models"), help="where a converted demo policy is")
    parser.add_argument(
        "--policy-option", action="append", default=[], help="extra train_policy flag, e.g. --lora-rank=16"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as var:
        env = {**os.environ, "ARBITER_VAR_DIR": var, "DEBUG": "true", "HF_HUB_OFFLINE": "1"}
        env.pop("DATABASE_URL", None)  # the embedded SQLite default, empty
        converted = Path(args.models) / "smollm2-135m-instruct"
        if converted.is_dir():
            shutil.copytree(converted, Path(var) / "models" / converted.name)
        timings: dict = {}
        run("migrate", ["migrate", "--noinput"], env, timings)
        run("prepare_policy", ["prepare_policy"], env, timings)
        run(
            "import",
            ["import_comparisons", str(HH_FILE), "--batch", "hh", "--format", "hh", "--as-judgments"],
            env,
            timings,
        )
        run("reward_model", ["train_reward_model", "--batch", "hh"], env, timings)
        latest = "from rewardmodel.models import RewardModelRun as R; print(R.objects.latest('pk').pk)"
        reward_run = run("lookup", ["shell", "-c", latest], env, {}).strip().splitlines()[-1]
        out = run(
            "reinforce",
            ["train_policy", "--reward-run", reward_run, "--prompts-batch", "hh", "--steps", str(args.steps)]
            + args.policy_option,
            env,
            timings,
        )
        print(
            json.dumps(
                {"timings_s": timings, "total_s": round(sum(timings.values()), 1), "final": out.splitlines()[-1:]}
            )
        )


if __name__ == "__main__":
    main()
