"""Multi-process training with torch.distributed, Django-free: both sides of a `torchrun` launch.

The worker (parent) side, `launch_torchrun`: the service writes the run's inputs into a work dir, then this starts
`python -m torch.distributed.run --standalone --nproc-per-node N -m <entry module> <work dir>` in its own process
group and turns what rank 0 prints into the same on_log / on_progress / on_samples calls an in-process trainer makes.
Cancel: when should_stop() turns True it writes `<work dir>/stop`, which every rank polls (and all-reduces, so all
stop at the same step); ranks that do not stop within STOP_GRACE_SECONDS get SIGTERM. A rank that dies makes
torchrun exit non-zero (it stops the others): the run fails with the tail of stderr. In the end every process of
the launch (torchrun's group, and each rank: torchrun starts ranks in sessions of their own) is killed.

The rank side, `DistributedContext` and `RankChannel`: the process group from the environment torchrun sets
(gloo on CPU, nccl on CUDA), metric reductions, rank 0's back-channel (JSON lines on stdout), the stop file.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from rlhf.training import TrainingStopped

# Rank 0's back-channel: lines on stdout that start with this are events; anything else is passed through.
EVENT_PREFIX = "@arbiter-event "
STOP_FILE = "stop"
RESULT_FILE = "result.json"
STDERR_FILE = "stderr.log"
PID_FILE = "rank-{rank}.pid"
# How long ranks get to reach their next step and stop by themselves before SIGTERM.
STOP_GRACE_SECONDS = 30.0
# The last line of a Python traceback: "ValueError: no preference pairs".
RANK_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)(: |$)")
# How much of stderr a failed run keeps as its reason when it holds neither an exception nor a root cause.
STDERR_TAIL_LINES = 30
STRATEGIES = ("ddp", "fsdp")
# The entry modules (rewardmodel.train.launch, policy.reinforce.launch) import from here, whatever the cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The trainers that shard the model with FSDP; the others refuse it (REINFORCE samples a different number of tokens
# on each rank, and every forward of a sharded model is a collective all ranks must join).
FSDP_REINFORCE_MISSING = (
    "strategy fsdp is not available for REINFORCE: each rank samples its own prompts for a different number of "
    "tokens, and every forward of a sharded model must be run by all ranks together; use ddp."
)


class DistributedTrainingError(RuntimeError):
    """The torchrun launch failed (a rank died or raised); the message holds the tail of its stderr."""


# Parent side -------------------------------------------------------------------------------------------------------


def torchrun_command(entry_module: str, work_dir: Path, processes: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", f"--nproc-per-node={processes}", "--max-restarts=0",
        "-m", entry_module, str(work_dir),
    ]  # fmt: skip


def launch_torchrun(
    entry_module: str,
    work_dir: str | os.PathLike,
    processes: int,
    *,
    on_log: Callable[[int, dict], None] | None = None,
    on_progress: Callable[..., None] | None = None,
    on_samples: Callable[[int, list[dict]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_seconds: float = 0.2,
) -> dict:
    """Run `entry_module` on `processes` ranks and return what rank 0 wrote to result.json.

    The callbacks run in this thread (they may touch the database). Raises TrainingStopped when should_stop()
    ended the run, DistributedTrainingError when a rank failed.
    """
    work_dir = Path(work_dir)
    (work_dir / STOP_FILE).unlink(missing_ok=True)
    (work_dir / RESULT_FILE).unlink(missing_ok=True)
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    # The worker's threads are shared by the ranks: give each its share, not one thread per core each.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    callbacks = {"log": on_log, "progress": on_progress, "samples": on_samples}
    lines: queue.Queue[str | None] = queue.Queue()
    stop_requested_at: float | None = None
    terminated = False
    with open(work_dir / STDERR_FILE, "w") as stderr:
        process = subprocess.Popen(
            torchrun_command(entry_module, work_dir, processes),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            start_new_session=True,  # one group to signal, apart from the worker's
        )
        try:
            threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
            while True:
                try:
                    line = lines.get(timeout=poll_seconds)
                except queue.Empty:
                    line = ""
                if line is None:  # stdout closed: torchrun has ended
                    break
                if line.startswith(EVENT_PREFIX):
                    event = json.loads(line[len(EVENT_PREFIX) :])
                    callback = callbacks.get(event["kind"])
                    if callback is not None:
                        callback(*event["args"])
                elif line:
                    print(line, end="" if line.endswith("\n") else "\n", flush=True)
                if stop_requested_at is None and should_stop is not None and should_stop():
                    stop_requested_at = time.monotonic()
                    (work_dir / STOP_FILE).touch()
                if stop_requested_at and not terminated and time.monotonic() - stop_requested_at > STOP_GRACE_SECONDS:
                    terminated = True
                    _signal_group(process.pid, signal.SIGTERM)
            returncode = process.wait()
        finally:
            _kill_everything(process, work_dir, processes)
    if stop_requested_at is not None:
        raise TrainingStopped("stopped on request (all ranks)")
    if returncode != 0:
        raise DistributedTrainingError(
            f"a training process failed (torchrun exit code {returncode}): {stderr_tail(work_dir / STDERR_FILE)}"
        )
    result_path = work_dir / RESULT_FILE
    if not result_path.is_file():
        raise DistributedTrainingError(f"rank 0 ended without a result: {stderr_tail(work_dir / STDERR_FILE)}")
    return json.loads(result_path.read_text())


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def stderr_tail(path: Path, limit: int = STDERR_TAIL_LINES) -> str:
    """Why the launch failed, from its stderr: the first exception a rank raised and torchrun's root cause (which
    rank, its exit code or signal); the last lines when neither is there."""
    try:
        with open(path, errors="replace") as handle:
            lines = [line.rstrip() for line in handle if line.strip()]
    except OSError:
        return "(no stderr)"
    exceptions = [line for line in lines if RANK_EXCEPTION.match(line) and "ChildFailedError" not in line]
    root_cause: list[str] = []
    if "Root Cause (first observed failure):" in lines:
        block = lines[lines.index("Root Cause (first observed failure):") + 1 :]
        root_cause = [" ".join(line.split()) for line in block if line.strip().startswith(("rank", "exitcode"))]
    reason = "; ".join([*exceptions[:1], *root_cause])
    return reason or "\n".join(lines[-limit:]) or "(no stderr)"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def rank_pids(work_dir: Path, processes: int) -> list[int]:
    """The pids the ranks recorded when they started (those that got that far)."""
    pids = []
    for rank in range(processes):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((work_dir / PID_FILE.format(rank=rank)).read_text()))
    return pids


def _is_our_rank(pid: int, work_dir: Path) -> bool:
    """Whether `pid` is still a rank of this launch (its command line names the work dir): never kill a reused pid."""
    try:
        return str(work_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _kill_everything(process: subprocess.Popen, work_dir: Path, processes: int) -> None:
    """Leave nothing behind: torchrun's group, then every rank (each in a session of its own)."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(5)
    _signal_group(process.pid, signal.SIGKILL)  # anything torchrun left in its own group
    for pid in rank_pids(work_dir, processes):
        if _is_our_rank(pid, work_dir):
            _signal_group(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, default=str))
    os.replace(tmp, path)


# Rank side ---------------------------------------------------------------------------------------------------------


@dataclass
class DistributedContext:
    """Where this process stands in the job, nanoGPT style: `ddp` when torchrun started it, rank 0 is the master."""

    ddp: bool
    rank: int
    local_rank: int
    world_size: int
    device: Any  # torch.device

    @property
    def master_process(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's contiguous slice of a global batch (equal sizes when the batch divides evenly)."""
        per_rank, extra = divmod(len(items), self.world_size)
        start = self.rank * per_rank + min(self.rank, extra)
        return items[start : start + per_rank + (1 if self.rank < extra else 0)]

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """The sum over ranks of each value (the values themselves in one process)."""
        if not self.ddp:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on one of them (so all ranks take the same branch)."""
        return self.all_reduce_sum([1.0 if flag else 0.0])[0] > 0

    def all_gather(self, tensor):
        """The ranks' tensors (same shape on each), concatenated along dim 0 in rank order."""
        if not self.ddp:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def all_gather_objects(self, value: Any) -> list:
        if not self.ddp:
            return [value]
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def distributed_context(requested_device: str = "") -> DistributedContext:
    """The process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process.

    CUDA ranks each take the GPU of their local rank and talk over nccl; CPU ranks over gloo.
    """
    import torch
    import torch.distributed as dist

    from rlhf.devices import pick_device

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistributedContext(False, 0, 0, 1, pick_device(requested_device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(True, rank, local_rank, world_size, device)


def wrap_ddp(model, context: DistributedContext):
    """The model as DDP when distributed (the raw model otherwise). Buffers are not broadcast at each forward:
    ours are constants (position ids), and rank 0 may run the raw model alone (evaluation) between steps."""
    if not context.ddp:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def shard_fsdp(model, context: DistributedContext):
    """Shard `model` in place with FSDP2 (`fully_shard`): each transformer block (the classes the model names in
    `_no_split_modules`) is a unit of its own, and the root holds the rest (embeddings, head). Every rank then holds
    1/world of the weights, gradients and optimizer state; a forward gathers one block at a time, so every rank
    must run every forward (evaluation included). Build the optimizer after this: it must hold the sharded
    parameters. Returns the model (the same object, its class now an FSDP subclass)."""
    if not context.ddp:
        return model
    from torch.distributed.fsdp import fully_shard

    block_classes = set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules())[1:]:
        if type(module).__name__ in block_classes:
            fully_shard(module)
    fully_shard(model)
    return model


def set_gradient_sync(model, sync: bool) -> None:
    """Whether this backward all-reduces (DDP) or reduce-scatters (FSDP) the gradients: only on the last
    micro-batch of an accumulated step."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)
    else:
        model.require_backward_grad_sync = sync


def full_state_dicts(model, optimizer=None) -> tuple[dict, dict | None]:
    """The full (unsharded) model state dict, and the optimizer's keyed by parameter name, gathered to rank 0's CPU
    from an FSDP model: a collective every rank must call; the other ranks get empty dicts."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    optimizer_state = None if optimizer is None else get_optimizer_state_dict(model, optimizer, options=options)
    return model_state, optimizer_state


def load_full_optimizer_state(model, optimizer, state: dict) -> None:
    """Load an optimizer state that `full_state_dicts` gathered into the optimizer of the sharded model (every rank
    holds the full state; each keeps its shard)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


class RankChannel:
    """A rank's link to the launching worker: rank 0 prints events; every rank polls the stop file."""

    def __init__(self, work_dir: str | os.PathLike, context: DistributedContext) -> None:
        self.work_dir = Path(work_dir)
        self.context = context
        write_json(self.work_dir / PID_FILE.format(rank=context.rank), os.getpid())

    def emit(self, kind: str, *args: Any) -> None:
        if self.context.master_process:
            print(EVENT_PREFIX + json.dumps({"kind": kind, "args": list(args)}, default=str), flush=True)

    def on_log(self, step: int, metrics: dict) -> None:
        self.emit("log", step, metrics)

    def on_progress(self, step: int, total_steps: int, phase: str, *counts: int) -> None:
        self.emit("progress", step, total_steps, phase, *counts)  # counts: a phase's done and total, when it has them

    def on_samples(self, step: int, samples: list[dict]) -> None:
        self.emit("samples", step, samples)

    def should_stop(self) -> bool:
        """Whether the worker asked to stop; every rank answers the same (the trainers call it on every rank)."""
        return self.context.any_rank((self.work_dir / STOP_FILE).exists())

    def write_result(self, result: dict) -> None:
        if self.context.master_process:
            write_json(self.work_dir / RESULT_FILE, result)


JOB_FILE = "job.json"


def rank_main(train: Callable[[dict, RankChannel], dict], argv: list[str] | None = None) -> NoReturn:
    """What each rank's `python -m <entry module> WORK_DIR` does: read the job the service wrote, join the process
    group, train with rank 0 reporting through the channel, and write rank 0's result. A stop request ends quietly
    (the parent knows it asked); any other error propagates, so the rank exits non-zero and torchrun fails the job."""
    work_dir = Path((argv or sys.argv)[1])
    job = json.loads((work_dir / JOB_FILE).read_text())
    context = distributed_context(job.get("device", ""))
    channel = RankChannel(work_dir, context)
    try:
        channel.write_result(train(job, channel))
    except TrainingStopped:
        pass
    finally:
        shutdown(context)
    # Done: leave without the interpreter's and the C++ libraries' exit-time teardown. A rank that had finished
    # (result written, process group destroyed) was seen to abort there now and then ("terminate called without
    # an active exception", SIGABRT, no Python frame left), which made torchrun fail a run that had trained.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def shutdown(context: DistributedContext) -> None:
    if context.ddp:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def check_strategy(processes: int, strategy: str, fsdp_missing: str = "") -> None:
    """Refuse a strategy the trainer cannot use (OptionError naming the option); `fsdp_missing` says why a trainer
    cannot shard its model, when it cannot."""
    from rlhf.options import OptionError

    if strategy not in STRATEGIES:
        raise OptionError("strategy", f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")
    if strategy == "fsdp" and fsdp_missing:
        raise OptionError("strategy", fsdp_missing)


@contextlib.contextmanager
def fresh_launch_dir(work_dir: Path) -> Iterator[Path]:
    """An empty folder for one launch's job files (left over ones from a killed worker are removed first), removed
    again however the launch ends: the inputs may be large and are not the run's record."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        yield work_dir
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
