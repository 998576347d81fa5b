"""Resumable checkpoints, nanoGPT style: one torch.save'd dict with everything needed to continue a run exactly
(weights, optimizer, scheduler, step, data position, RNG states), written atomically.

Next to `resume.pt` goes `resume.json` ({"step": N, "file": name}) so a process without torch (the web app) can
tell which step a run would resume from. The sidecar is the commit point: the web app forgets what a run logged after
that step, so the trainer must resume from exactly that file, whenever the process died while saving
(`committed_checkpoint`, the one rule both sides read). Used by the reward trainer and by the policy trainers
(REINFORCE, SFT). torch is imported where it is used: the web app reads the sidecar without it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path


def rng_states() -> dict:
    """The global RNG states a training step draws from (Python's, torch's CPU and CUDA generators)."""
    import torch

    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    import torch

    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_resume_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save `state` (it must hold "step") as the checkpoint at `path`, so that a process dying at any moment
    leaves one whole checkpoint and a sidecar that names it with its step.

    The new state goes to `<path>.next`; the sidecar then commits it (step and file); `<path>.next` is renamed to
    `path`, and the sidecar says so. Killed before the first sidecar write: the previous checkpoint stands. Killed
    after it: `<path>.next`, or `path` once renamed, holds the committed step (`committed_checkpoint`).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    pending = path.with_name(path.name + ".next")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, pending)
    _write_sidecar(path, step, pending.name)
    os.replace(pending, path)
    _write_sidecar(path, step, path.name)


def _write_sidecar(path: Path, step: int, file_name: str) -> None:
    step_tmp = path.with_name(f".{path.stem}.json.tmp-{os.getpid()}")
    step_tmp.write_text(json.dumps({"step": step, "file": file_name}))
    os.replace(step_tmp, path.with_suffix(".json"))


def committed_checkpoint(path: str | os.PathLike) -> tuple[int, Path] | None:
    """(step, file) of the checkpoint to resume from for `path`, as its sidecar commits it; None when there is none.

    The sidecar names the file; when that file is gone it was `<path>.next`, already renamed to `path`.
    """
    path = Path(path)
    try:
        committed = json.loads(path.with_suffix(".json").read_text())
        step = int(committed["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for candidate in (path.with_name(str(committed.get("file") or path.name)), path):
        if candidate.is_file():
            return step, candidate
    return None


def load_resume_checkpoint(path: str | os.PathLike | None) -> dict | None:
    """The state committed for `path`, or None when there is nothing to resume from."""
    import torch

    committed = committed_checkpoint(path) if path else None
    if committed is None:
        return None
    # Our own file (it holds Python RNG state and plain Python objects, not only tensors).
    return torch.load(committed[1], map_location="cpu", weights_only=False)


def checkpoint_due(step: int, total_steps: int, every: int, path: str | os.PathLike | None) -> bool:
    """Whether to save a resumable checkpoint after `step` (never after the last: the run is then done)."""
    return bool(path) and every > 0 and step % every == 0 and step < total_steps
