"""Resumable checkpoints, nanoGPT style: one torch.save'd dict with everything needed to continue a run exactly
(weights, optimizer, scheduler, step, data position, RNG states), written atomically.

Next to `resume.pt` goes `resume.json` ({"step": N}) so a process without torch (the web app) can tell which
step a run would resume from. Used by the reward trainer and by the policy trainers (REINFORCE, SFT).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import torch


def rng_states() -> dict:
    """The global RNG states a training step draws from (Python's, torch's CPU and CUDA generators)."""
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_resume_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save `state` (it must hold "step") to `path` through a temporary file and a rename: a checkpoint
    under the final name is always whole, even if the process dies while writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    step_tmp = path.with_name(f".{path.stem}.json.tmp-{os.getpid()}")
    step_tmp.write_text(json.dumps({"step": int(state["step"])}))
    os.replace(step_tmp, path.with_suffix(".json"))


def load_resume_checkpoint(path: str | os.PathLike | None) -> dict | None:
    """The state saved at `path`, or None when there is nothing to resume from."""
    if not path or not Path(path).is_file():
        return None
    # Our own file (it holds Python RNG state and plain Python objects, not only tensors).
    return torch.load(path, map_location="cpu", weights_only=False)


def checkpoint_due(step: int, total_steps: int, every: int, path: str | os.PathLike | None) -> bool:
    """Whether to save a resumable checkpoint after `step` (never after the last: the run is then done)."""
    return bool(path) and every > 0 and step % every == 0 and step < total_steps
