"""Abstract bases for a long training job run by a Celery worker and watched from a page.

`TrainingRun` is the row a researcher starts, a worker claims and trains, and the
dashboard polls. Every state change is a conditional UPDATE, so a redelivered task
never trains twice and a late "failed" never overwrites a "cancelled". The reward-model
app and the policy app both subclass it:

    class RewardModelRun(TrainingRun): ...
    class RewardModelLog(TrainingLog):
        run = models.ForeignKey(RewardModelRun, on_delete=models.CASCADE, related_name="logs")

A subclass's log model must name its foreign key `run` with related_name="logs":
`log()` and `curve()` rely on it.

`execute()` is how a worker (or a foreground command) trains a run: claim it, train into
`<name>.partial`, rename, and record the outcome. Each app's service supplies the training.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import F
from django.utils import timezone

from rlhf.checkpoint import committed_checkpoint
from runs import storage

logger = logging.getLogger(__name__)

# How often a running trainer re-reads the cancel flag from the database.
CANCEL_POLL_SECONDS = 1.0


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_is_gone(worker: str) -> bool:
    """True when `worker` ("host:pid") names a process on this host that no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


OnLog = Callable[[int, dict], None]
# What a trainer calls at every step and phase change: (step, total_steps, phase). Trainers stay Django-free and
# name the phase with one of RunPhase's values.
# (step, total_steps, phase[, done, total]): done and total count the phase's own work (an evaluation's answers).
OnProgress = Callable[..., None]

# How many recent steps the ETA's pace is measured over: recent enough to follow a change of pace (an eval pass,
# a warmed-up GPU), long enough not to jump with every step, and never counting the time spent loading.
ETA_WINDOW_STEPS = 20

# The trainers' resumable checkpoint (a torch.save dict) and the step it holds (JSON, readable without torch),
# in `<final>.resume/`: outside `<final>.partial`, which a failed run removes.
RESUME_CHECKPOINT = "resume.pt"
# Sending a task to a broker that is down: give up fast (the request must answer), the outbox re-sends later.
DISPATCH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class RunQueueError(ValueError):
    """A queue name that is not one of RUN_QUEUES."""


def default_run_queue() -> str:
    """Where a run goes unless it names a queue: the first of RUN_QUEUES ("gpu" by default)."""
    return settings.RUN_QUEUES[0]


def check_run_queue(name: str | None) -> str:
    """`name` when it is one of RUN_QUEUES, the default queue when blank; RunQueueError otherwise."""
    name = (name or "").strip()
    if not name:
        return default_run_queue()
    if name not in settings.RUN_QUEUES:
        raise RunQueueError(f"Unknown queue {name!r}: pick one of {', '.join(settings.RUN_QUEUES)}.")
    return name


def run_queue_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in settings.RUN_QUEUES]


def resume_dir_for(final_dir: Path) -> Path:
    return final_dir.with_name(final_dir.name + ".resume")


def resume_checkpoint_step(resume_dir: Path) -> int | None:
    """The step of the resumable checkpoint in `resume_dir`, or None when there is none to resume from: the step the
    trainer will resume from (rlhf.checkpoint.committed_checkpoint, the rule both read)."""
    committed = committed_checkpoint(resume_dir / RESUME_CHECKPOINT)
    return None if committed is None else committed[0]


def format_duration(duration: timedelta | None) -> str:
    """ "1 h 02 min", "3 min 05 s", "42 s"; "" for None."""
    if duration is None:
        return ""
    seconds = max(0, round(duration.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunPhase(models.TextChoices):
    """What a running trainer is doing; the labels are what the run page says."""

    LOADING = "loading", "Loading the model…"
    TOKENIZING = "tokenizing", "Tokenizing the data…"
    TRAINING = "training", "Training…"
    EVALUATING = "evaluating", "Evaluating on held-out data…"
    SAVING = "saving", "Saving the model…"


class StepPace:
    """Steps per second over the last `window` steps, and the time left at that pace.

    Measured from the trainer's own step reports, so loading and tokenizing never count, and a pace that changes
    (evaluation passes, a warmed-up device) shows within `window` steps.
    """

    def __init__(self, window: int = ETA_WINDOW_STEPS) -> None:
        self.points: deque[tuple[int, float]] = deque(maxlen=window + 1)

    def add(self, step: int, at: float) -> None:
        if self.points and step < self.points[-1][0]:
            self.points.clear()  # a new count (another phase's steps): start over
        if self.points and step == self.points[-1][0]:
            return  # no new step: the pace is what it was
        self.points.append((step, at))

    def seconds_per_step(self) -> float | None:
        """None until two steps are known."""
        if len(self.points) < 2:
            return None
        (first_step, first_at), (last_step, last_at) = self.points[0], self.points[-1]
        if last_at <= first_at:
            return None
        return (last_at - first_at) / (last_step - first_step)

    def seconds_left(self, total_steps: int) -> float | None:
        """None until two steps are known."""
        seconds_per_step = self.seconds_per_step()
        if seconds_per_step is None:
            return None
        return max(0, total_steps - self.points[-1][0]) * seconds_per_step


@dataclass
class EvaluationPlan:
    """The held-out evaluations a trainer will still run, so the ETA counts them and not only the steps.

    `answers_from(step)` is how many answers the evaluations at `step` and after sample; `answers_per_step` how many
    a training step samples, to guess an answer's time from the training pace until an evaluation has measured it.
    """

    answers_from: Callable[[int], int]
    answers_per_step: int


@dataclass
class QueuePosition:
    """Where a queued run stands: the runs its queue's workers are training, and how many wait before it."""

    running: list[TrainingRun]
    waiting_before: int


def training_run_models() -> list[type[TrainingRun]]:
    """Every concrete run model (reward runs, policy runs): the apps above this one subclass TrainingRun."""
    return [model for model in apps.get_models() if issubclass(model, TrainingRun)]


class QueuedJob(models.Model):
    """Background work other than training (an import, a scoring), sent to the `celery` queue through the same
    transactional outbox as runs: the committed queued row is the intent, the Celery message only a wake-up call.

    A job whose message could not be sent (the broker was down) stays queued, not failed, and `runs.watchdog`
    re-sends every queued job never handed over, or handed over more than RUN_REDISPATCH_MINUTES ago; its task
    claims it with a conditional UPDATE from QUEUED, so a duplicate message does nothing. A subclass names its task
    (`task_name`) and has a `status` field whose queued value is `QUEUED_STATUS`.
    """

    QUEUED_STATUS: ClassVar[str] = "queued"
    task_name: ClassVar[str] = ""
    task_queue: ClassVar[str] = "celery"

    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def dispatch_on_commit(self) -> None:
        """Send the job's task once the transaction commits, so the worker finds the row."""
        transaction.on_commit(self.dispatch)

    def dispatch(self) -> bool:
        """Send the job's task now; False (logged, counted) when the broker cannot be reached: it stays queued."""
        from celery import current_app

        now = timezone.now()
        try:
            current_app.send_task(
                self.task_name, args=[self.pk], queue=self.task_queue, retry=True, retry_policy=DISPATCH_RETRY_POLICY
            )
        except Exception as exc:  # kombu's OperationalError, redis' ConnectionError, a refused socket...
            logger.warning("%s: could not send its task (%s); it stays queued and will be re-sent.", self, exc)
            type(self).objects.filter(pk=self.pk).update(dispatch_attempts=F("dispatch_attempts") + 1)
            self.dispatch_attempts += 1
            return False
        type(self).objects.filter(pk=self.pk).update(dispatched_at=now, dispatch_attempts=F("dispatch_attempts") + 1)
        self.dispatched_at, self.dispatch_attempts = now, self.dispatch_attempts + 1
        return True

    @property
    def waiting_for_broker(self) -> bool:
        """Queued and never handed to the broker (it was down): the watchdog re-sends it."""
        return self.status == self.QUEUED_STATUS and self.dispatched_at is None


class TrainingRun(models.Model):
    Status = RunStatus

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    # Everything the trainer was given (its config dataclass as a dict, plus data options).
    config = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=16, choices=RunPhase.choices, blank=True)
    # The phase's own progress where it counts something (an evaluation's answers sampled of all it samples).
    phase_done = models.PositiveIntegerField(null=True, blank=True)
    phase_total = models.PositiveIntegerField(null=True, blank=True)
    # The time left as estimated at the last progress report (`progress_at`): the page counts down from it, so the
    # ETA never grows while nothing new is known.
    eta_seconds = models.FloatField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    # The trainer's final metrics, set once the run succeeds.
    metrics = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Which process trains the run ("host:pid") and when it last said so: a redelivered task or a cancel
    # can then tell a run still training from one whose worker died (OOM, kill -9, lost machine).
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Transactional outbox: the row is the intent, the Celery message only a wake-up call. A queued run never
    # sent (broker down) or sent long ago and still queued (broker lost it) is re-sent by the periodic check.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    # Set when the run failed because its worker went away (not because training raised): it can be resumed.
    worker_lost_at = models.DateTimeField(null=True, blank=True)
    resumes = models.PositiveIntegerField(default=0)
    # The Celery queue the run is sent to (one of RUN_QUEUES): the kind of machine that may train it. The watchdog
    # re-sends it to the same queue.
    queue = models.CharField(max_length=100, default=default_run_queue)

    # The Celery task that trains a run of this kind, and the prefix of its folder under ARTIFACTS_DIR.
    task_name: ClassVar[str] = ""
    artifact_prefix: ClassVar[str] = "run"

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    # State changes. Each is one conditional UPDATE on the row; the in-memory
    # object is refreshed afterwards so callers see what the database holds.

    def _transition(self, from_statuses: tuple[str, ...], **fields: Any) -> bool:
        changed = type(self).objects.filter(pk=self.pk, status__in=from_statuses).update(**fields)
        self.refresh_from_db()
        return bool(changed)

    def dispatch_on_commit(self, task: Any = None) -> None:
        """Send the run's task once the transaction commits, so the worker finds the row.

        A broker that is down does not fail the caller: the committed queued row is the outbox, and
        `runs.watchdog` re-sends it (see `dispatch`)."""
        name = getattr(task, "name", None) or self.task_name
        transaction.on_commit(lambda: self.dispatch(name))

    def dispatch(self, task_name: str = "") -> bool:
        """Send the training task for this run now; False (logged, counted) when the broker cannot be reached.

        Sending twice is harmless: the task's claim is a conditional UPDATE."""
        from celery import current_app

        now = timezone.now()
        try:
            current_app.send_task(
                task_name or self.task_name,
                args=[self.pk],
                queue=self.queue or default_run_queue(),  # over CELERY_TASK_ROUTES
                retry=True,
                retry_policy=DISPATCH_RETRY_POLICY,
            )
        except Exception as exc:  # kombu's OperationalError, redis' ConnectionError, a refused socket...
            logger.warning("%s: could not send its task (%s); it stays queued and will be re-sent.", self, exc)
            type(self).objects.filter(pk=self.pk).update(dispatch_attempts=F("dispatch_attempts") + 1)
            self.dispatch_attempts += 1  # the caller's object (a request answering with it) says so too
            return False
        type(self).objects.filter(pk=self.pk).update(dispatched_at=now, dispatch_attempts=F("dispatch_attempts") + 1)
        self.dispatched_at, self.dispatch_attempts = now, self.dispatch_attempts + 1
        return True

    @property
    def waiting_for_broker(self) -> bool:
        """Queued and never handed to the broker (it was down): the periodic check re-sends it."""
        return self.status == RunStatus.QUEUED and self.dispatched_at is None

    def claim(self) -> bool:
        """Move queued -> running. False when another worker (or a cancel) got there first."""
        now = timezone.now()
        return self._transition(
            (RunStatus.QUEUED,),
            status=RunStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=this_process(),
            phase=RunPhase.LOADING,
            progress_at=now,
        )

    def beat(self) -> None:
        type(self).objects.filter(pk=self.pk).update(heartbeat_at=timezone.now())

    @contextmanager
    def beating(self) -> Iterator[None]:
        """Beat every RUN_HEARTBEAT_SECONDS from a thread while the block runs, whatever a step's length:
        the beats stop only when the process does, so a silent run has lost its worker."""
        stop = threading.Event()

        def beat_until_stopped() -> None:
            try:
                while not stop.wait(settings.RUN_HEARTBEAT_SECONDS):
                    try:
                        self.beat()
                    except Exception:  # a database blip must not end the run; the next beat retries
                        logger.warning("%s: heartbeat failed", self, exc_info=True)
            finally:
                connections.close_all()  # this thread's own connections

        thread = threading.Thread(target=beat_until_stopped, name=f"heartbeat-{self.pk}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)

    def lost_worker_reason(self) -> str | None:
        """Why a running run has lost its worker (its process is gone, or silent past RUN_STALE_MINUTES), or None."""
        if self.status != RunStatus.RUNNING:
            return None
        if self.worker and process_is_gone(self.worker):
            return f"its process {self.worker} is gone"
        last_sign = self.heartbeat_at or self.started_at
        if last_sign is None:
            return None
        silent = timezone.now() - last_sign
        if silent > timedelta(minutes=settings.RUN_STALE_MINUTES):
            return f"no heartbeat from {self.worker or 'its worker'} for {format_duration(silent)}"
        return None

    @property
    def worker_lost(self) -> bool:
        """A running run whose process is gone, or that has not beaten for RUN_STALE_MINUTES."""
        return self.lost_worker_reason() is not None

    def fail_if_worker_lost(self) -> bool:
        reason = self.lost_worker_reason()
        if reason is None:
            return False
        return self.mark_worker_lost(reason)

    def mark_worker_lost(self, reason: str) -> bool:
        """Fail a running run whose worker went away (killed, out of memory, shut down); it stays resumable."""
        now = timezone.now()
        return self._transition(
            (RunStatus.RUNNING,),
            status=RunStatus.FAILED,
            finished_at=now,
            worker_lost_at=now,
            error=f"The worker training this run stopped before it finished: {reason}. "
            "Resume it from its last checkpoint, or start a new run.",
        )

    # Resume after a lost worker.

    @property
    def planned_artifact_dir(self) -> Path:
        """Where the trained model goes: `<ARTIFACTS_DIR>/<prefix>-<id>`."""
        return Path(settings.ARTIFACTS_DIR) / f"{self.artifact_prefix}-{self.pk}"

    @property
    def launch_dir(self) -> Path:
        """Where a multi-process run's inputs, rank pids and stderr live while it trains (rlhf.distributed)."""
        return self.planned_artifact_dir.with_name(self.planned_artifact_dir.name + ".work")

    @property
    def resume_dir(self) -> Path:
        return resume_dir_for(self.planned_artifact_dir)

    @property
    def resume_checkpoint(self) -> Path:
        """The file the trainer saves its resumable state to every `checkpoint_every` steps."""
        return self.resume_dir / RESUME_CHECKPOINT

    @property
    def resume_step(self) -> int | None:
        return resume_checkpoint_step(self.resume_dir)

    @property
    def can_resume(self) -> bool:
        return self.status == RunStatus.FAILED and self.worker_lost_at is not None

    def forget_after(self, step: int) -> None:
        """Drop what training recorded after `step` (it is trained again). Subclasses drop their own rows too."""
        self.logs.filter(step__gt=step).delete()

    def resume(self) -> bool:
        """Queue a run that lost its worker again; it continues from its last resumable checkpoint (from the start
        when there is none). False when the run is not resumable (never failed that way, or already resumed)."""
        step = self.resume_step or 0
        with transaction.atomic():
            resumed = (
                type(self)
                .objects.filter(pk=self.pk, status=RunStatus.FAILED, worker_lost_at__isnull=False)
                .update(
                    status=RunStatus.QUEUED,
                    error="",
                    finished_at=None,
                    worker="",
                    heartbeat_at=None,
                    worker_lost_at=None,
                    cancel_requested=False,
                    dispatched_at=None,
                    step=step,
                    resumes=F("resumes") + 1,
                )
            )
            if resumed:
                self.forget_after(step)
                self.dispatch_on_commit()
        self.refresh_from_db()
        return bool(resumed)

    def check_worker(self) -> bool:
        """The periodic / per-poll check of a running run: fail it when its worker is gone, and resume it when
        RUN_AUTO_RESUME is on (at most RUN_MAX_AUTO_RESUMES times). True when the run was failed."""
        if not self.fail_if_worker_lost():
            return False
        logger.warning("%s lost its worker: %s", self, self.error)
        if settings.RUN_AUTO_RESUME and self.resumes < settings.RUN_MAX_AUTO_RESUMES:
            self.resume()
        return True

    def request_cancel(self) -> bool:
        """Cancel a queued run at once; ask a running one to stop at its next step.

        False when the run has already finished.
        """
        if self._transition(
            (RunStatus.QUEUED,), status=RunStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        ):
            return True
        if self.worker_lost:  # nobody is left to see the flag: end it here
            return self._transition(
                (RunStatus.RUNNING,), status=RunStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
            )
        return self._transition((RunStatus.RUNNING,), cancel_requested=True)

    def should_stop(self) -> bool:
        """Re-read the cancel flag from the database (one indexed lookup)."""
        return type(self).objects.filter(pk=self.pk, cancel_requested=True).exists()

    def mark_succeeded(self, metrics: dict, artifact_path: str) -> bool:
        return self._transition(
            (RunStatus.RUNNING,),
            status=RunStatus.SUCCEEDED,
            metrics=metrics,
            artifact_path=artifact_path,
            finished_at=timezone.now(),
        )

    def mark_failed(self, error: str) -> bool:
        return self._transition(
            (RunStatus.QUEUED, RunStatus.RUNNING), status=RunStatus.FAILED, error=error, finished_at=timezone.now()
        )

    def mark_cancelled(self) -> bool:
        return self._transition(
            (RunStatus.QUEUED, RunStatus.RUNNING), status=RunStatus.CANCELLED, finished_at=timezone.now()
        )

    def record_progress(
        self,
        step: int,
        total_steps: int,
        phase: str | None = None,
        eta_seconds: float | None = None,
        phase_done: int | None = None,
        phase_total: int | None = None,
    ) -> None:
        """Save the trainer's position without touching status (one UPDATE).

        `eta_seconds` is the time left as the trainer's recent pace says: `StepPace`, the one ETA rule, through
        `progress_recorder`; None while no pace is known.
        """
        now = timezone.now()
        fields: dict[str, Any] = {
            "step": step,
            "total_steps": total_steps,
            "eta_seconds": eta_seconds,
            "progress_at": now,
            "phase_done": phase_done,
            "phase_total": phase_total,
        }
        if phase is not None:
            fields["phase"] = phase
        for name, value in fields.items():
            setattr(self, name, value)
        type(self).objects.filter(pk=self.pk).update(**fields)

    def log(self, step: int, metrics: dict) -> None:
        """Keep one row of metrics over time (the subclass's `logs` relation)."""
        self.logs.create(step=step, metrics=metrics)

    def curve(self, key: str) -> list[tuple[int, float]]:
        """(step, value) for every log row that has `key`, in step order."""
        rows = self.logs.order_by("step", "id").values_list("step", "metrics")
        return [(step, float(metrics[key])) for step, metrics in rows if metrics.get(key) is not None]

    # Training in this process.

    def execute(
        self,
        final_dir: Path,
        train: Callable[[Path], dict],
        *,
        stopped: type[BaseException] | tuple[type[BaseException], ...],
        finish: Callable[[dict], dict] | None = None,
    ) -> None:
        """Claim this queued run and train it to its end here. Never raises for a training failure.

        `train(output_dir)` writes the model into `<final_dir>.partial` and returns the final metrics;
        the folder is renamed to `final_dir` once complete, so a folder under the final name is always
        whole. `finish(metrics)`, when given, runs after the rename and returns the metrics to keep.
        A `stopped` exception (the trainer saw the cancel flag) ends the run as cancelled; any other
        exception fails it with the reason. Either way the partial folder is removed. A run that is
        not queued (a redelivered task, a cancel that came first) is left alone.
        """
        if not self.claim():
            # A redelivered task: its run is either done, still training elsewhere, or orphaned by a dead worker.
            if self.check_worker():
                logger.warning("%s lost its worker; marked failed.", self)
            else:
                logger.info("%s is %s, not queued: nothing to do.", self, self.status)
            return
        partial_dir = final_dir.with_name(final_dir.name + ".partial")
        resume_dir = resume_dir_for(final_dir)
        try:
            if resume_checkpoint_step(resume_dir) is None:
                # A fresh start; a resumed run keeps what it wrote so far (a policy's checkpoint folders).
                shutil.rmtree(partial_dir, ignore_errors=True)
                shutil.rmtree(resume_dir, ignore_errors=True)
            partial_dir.parent.mkdir(parents=True, exist_ok=True)
            with self.beating():
                metrics = train(partial_dir)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            partial_dir.rename(final_dir)
            if finish is not None:
                metrics = finish(metrics)
            # Where readers find it: the folder itself, or its copy in the object store (ARTIFACT_STORAGE_URL).
            location = storage.publish(final_dir)
            self.mark_succeeded(metrics, location)
            shutil.rmtree(resume_dir, ignore_errors=True)
        except stopped:
            shutil.rmtree(partial_dir, ignore_errors=True)
            shutil.rmtree(resume_dir, ignore_errors=True)
            self.mark_cancelled()
        except Exception as exc:
            # Any failure is the run's, never the worker's: record it and carry on.
            logger.exception("%s failed", self)
            shutil.rmtree(partial_dir, ignore_errors=True)
            shutil.rmtree(resume_dir, ignore_errors=True)
            self.mark_failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except BaseException as exc:
            # Interrupts (Ctrl-C in a foreground command, worker shutdown) propagate; the run lost its worker
            # and keeps its folders, so it can be resumed from its last checkpoint.
            self.mark_worker_lost(f"interrupted ({type(exc).__name__})")
            raise

    def progress_logger(self, on_log: OnLog | None = None, clean: Callable[[dict], dict] | None = None) -> OnLog:
        """The trainer's `on_log`: saves a log row, then calls `on_log` (progress lines). The step itself is
        saved by `progress_recorder`, at every step."""

        def log(step: int, metrics: dict) -> None:
            if clean is not None:
                metrics = clean(metrics)
            self.log(step, metrics)
            if on_log is not None:
                on_log(step, metrics)

        return log

    def progress_recorder(
        self, clock: Callable[[], float] = time.monotonic, evaluations: EvaluationPlan | None = None
    ) -> OnProgress:
        """The trainer's `on_progress(step, total_steps, phase[, done, total])`: saves step, phase, the phase's own
        progress (an evaluation's answers done of total) and the ETA whenever one of them changes.

        One indexed UPDATE per training step, far cheaper than the step itself. The ETA is the steps left at the pace
        of the last ETA_WINDOW_STEPS training steps (StepPace; time spent evaluating or saving does not count), plus,
        with `evaluations`, the answers still to sample in evaluations at the pace the last evaluation measured
        (before the first one, guessed from the training pace). It is fixed until the next report.
        """
        pace = StepPace()
        last: tuple | None = None
        current_phase, phase_started = "", 0.0
        outside_training = 0.0  # seconds spent evaluating or saving since training began: not the steps' pace
        seconds_per_answer: float | None = None
        evaluated_step: int | None = None

        def seconds_left(step: int, total_steps: int, phase: str, done: int | None, total: int | None) -> float | None:
            seconds_per_step = pace.seconds_per_step()
            if seconds_per_step is None:
                return None
            left = max(0, total_steps - step) * seconds_per_step
            if evaluations is None:
                return left
            per_answer = seconds_per_answer
            if per_answer is None:
                per_answer = seconds_per_step / max(1, evaluations.answers_per_step)
            answers = 0
            if phase == RunPhase.EVALUATING and total:
                answers += max(0, total - (done or 0))
            if phase != RunPhase.SAVING or step < total_steps:
                answers += evaluations.answers_from(step + 1 if evaluated_step == step else step)
            return left + answers * per_answer

        def on_progress(
            step: int, total_steps: int, phase: str, done: int | None = None, total: int | None = None
        ) -> None:
            nonlocal last, current_phase, phase_started, outside_training, seconds_per_answer, evaluated_step
            if phase in (RunPhase.LOADING, RunPhase.TOKENIZING):  # before training: no pace to measure
                current_phase = phase
            else:
                now = clock()
                if phase != current_phase:
                    if current_phase in (RunPhase.EVALUATING, RunPhase.SAVING):
                        outside_training += now - phase_started
                    current_phase, phase_started = phase, now
                if phase == RunPhase.TRAINING:
                    pace.add(step, now - outside_training)
                elif phase == RunPhase.EVALUATING:
                    evaluated_step = step
                    if done:
                        seconds_per_answer = (now - phase_started) / done
            if (step, total_steps, phase, done, total) == last:
                return
            last = (step, total_steps, phase, done, total)
            self.record_progress(
                step,
                total_steps,
                phase,
                eta_seconds=seconds_left(step, total_steps, phase, done, total),
                phase_done=done,
                phase_total=total,
            )

        return on_progress

    def stop_checker(self) -> Callable[[], bool]:
        """The trainer's `should_stop`: reads the cancel flag at most every CANCEL_POLL_SECONDS, and
        beats the heartbeat every RUN_HEARTBEAT_SECONDS (the setting, as `beating` uses)."""
        last_check, last_beat = 0.0, time.monotonic()

        def should_stop() -> bool:
            nonlocal last_check, last_beat
            now = time.monotonic()
            if now - last_beat >= settings.RUN_HEARTBEAT_SECONDS:
                last_beat = now
                self.beat()
            if now - last_check < CANCEL_POLL_SECONDS:
                return False
            last_check = now
            return self.should_stop()

        return should_stop

    # Read-only helpers for pages.

    @property
    def artifact_location(self) -> str | None:
        """Where what training wrote lives (a folder's path, or its URL in the object store), once the run succeeded
        and only while it is there. Downloads stream from it (runs.storage)."""
        if self.status != RunStatus.SUCCEEDED or not self.artifact_path:
            return None
        return self.artifact_path if storage.exists(self.artifact_path) else None

    @property
    def artifact_dir(self) -> Path | None:
        """What training wrote (a reward model; a policy's final model and checkpoints) as a folder on this machine,
        to load a model from: the folder itself, or a local copy of the stored one (fetched on first use)."""
        location = self.artifact_location
        return None if location is None else storage.local_folder(location)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_finished

    @property
    def progress_percent(self) -> int:
        if self.status == RunStatus.SUCCEEDED:
            return 100
        if not self.total_steps:
            return 0
        return min(100, round(100 * self.step / self.total_steps))

    @property
    def elapsed(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def eta(self) -> timedelta | None:
        """Time left: the estimate of the last progress report, less the time since. It only counts down between
        reports, never up. None while nothing is known (no step done) and once finished."""
        if self.status != RunStatus.RUNNING or self.eta_seconds is None or self.progress_at is None:
            return None
        left = self.eta_seconds - (timezone.now() - self.progress_at).total_seconds()
        return timedelta(seconds=max(0, round(left)))

    @property
    def queued_behind(self) -> QueuePosition | None:
        """While this run is queued: what its queue's workers are busy with (runs of any kind on the same queue), and
        how many runs were queued before it there. None once it is no longer queued."""
        if self.status != RunStatus.QUEUED:
            return None
        running: list[TrainingRun] = []
        waiting_before = 0
        for model in training_run_models():
            same_queue = model.objects.filter(queue=self.queue)
            running.extend(same_queue.filter(status=RunStatus.RUNNING).order_by("started_at", "id"))
            earlier = same_queue.filter(status=RunStatus.QUEUED, created_at__lt=self.created_at)
            if model is type(self):
                earlier = earlier | same_queue.filter(
                    status=RunStatus.QUEUED, created_at=self.created_at, pk__lt=self.pk
                )
            waiting_before += earlier.count()
        return QueuePosition(running=running, waiting_before=waiting_before)

    @property
    def shows_steps(self) -> bool:
        """Whether "Step n of N" means something yet: once the step count is known and the model is loaded."""
        return bool(self.total_steps) and self.phase not in (RunPhase.LOADING, RunPhase.TOKENIZING)

    @property
    def phase_progress_text(self) -> str:
        """What a running trainer is doing, in words: "Evaluating on held-out data: 12 of 64 answers (after step 4 of
        4)", "Step 3 of 10 (30%)", or the phase alone before steps mean something."""
        if self.phase_total and self.phase in (RunPhase.EVALUATING, RunPhase.SAVING, RunPhase.LOADING):
            label = self.get_phase_display().rstrip("…")
            after = f" (after step {self.step} of {self.total_steps})" if self.total_steps else ""
            return f"{label}: {self.phase_done or 0} of {self.phase_total} answers{after}"
        if self.shows_steps:
            prefix = f"{self.get_phase_display()} " if self.phase in (RunPhase.EVALUATING, RunPhase.SAVING) else ""
            return f"{prefix}Step {self.step} of {self.total_steps} ({self.progress_percent}%)"
        return self.get_phase_display() or "Starting…"

    @property
    def bar_percent(self) -> int | None:
        """The progress bar's value: the phase's own progress while it counts something, else the steps'; None
        (the bar shows activity) while nothing is counted yet."""
        if self.phase_total:
            return min(100, round(100 * (self.phase_done or 0) / self.phase_total))
        return self.progress_percent if self.shows_steps else None

    @property
    def elapsed_text(self) -> str:
        return format_duration(self.elapsed)

    @property
    def eta_text(self) -> str:
        return format_duration(self.eta)


def train_by_id(model: type[TrainingRun], run_id: int, run_training: Callable[[Any], TrainingRun]) -> str:
    """What a Celery task does with its run id: train that run (see `execute`), or report it gone."""
    run = model.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("%s %s does not exist (deleted before it started?).", model._meta.verbose_name, run_id)
        return "missing"
    return run_training(run).status


class TrainingLog(models.Model):
    """One row of metrics at one step. Subclasses add `run = ForeignKey(..., related_name="logs")`."""

    step = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["step", "id"]
