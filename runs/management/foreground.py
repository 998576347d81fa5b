"""What every foreground training command shares (train_reward_model here; train_policy and train_sft in the
policy app): the run id first, one progress line per logged step, and one JSON line of final metrics at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.options import build_options
from rlhf.options import OptionError, given_options
from runs.models import OnLog, RunStatus, TrainingRun

Run = TypeVar("Run", bound=TrainingRun)


class ForegroundTrainingCommand(BaseCommand):
    # The metrics a progress line shows, in this order, when the step logged them.
    progress_keys: tuple[str, ...] = ()

    @staticmethod
    def checked_options(config_class: type, options: dict) -> dict:
        """The trainer options given on the command line, checked as the form and the API check them
        (the rest keep the trainer's defaults)."""
        given = given_options(config_class, options)
        try:
            build_options(config_class, given)
        except OptionError as exc:
            raise CommandError(str(exc)) from None
        return given

    @staticmethod
    def add_queue_argument(parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            metavar="NAME",
            help="Send the run to the workers of this queue (one of RUN_QUEUES) instead of training it here.",
        )

    def report_queued(self, run: TrainingRun) -> None:
        """A run sent to a worker: its id and queue (the task leaves once the command's transaction commits)."""
        self.stdout.write(f"Run {run.pk} queued on {run.queue}")

    def train(self, run: Run, run_training: Callable[[Run, OnLog], Run]) -> Run:
        """Print the run id, train in this process with progress lines, and fail the command unless it succeeded."""
        self.stdout.write(f"Run {run.pk}")
        self.stdout.flush()
        run = run_training(run, self.print_progress)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or 'stopped'}")
        return run

    def report(self, model_path: object, summary: dict) -> None:
        self.stdout.write(f"Model saved in {model_path}")
        self.stdout.write(json.dumps(summary, sort_keys=True))

    def print_progress(self, step: int, metrics: dict) -> None:
        parts = [f"step {step}/{metrics.get('total_steps', '?')}"]
        for key in self.progress_keys:
            value = metrics.get(key)
            if value is not None:
                parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        self.stdout.write(" · ".join(parts))
        self.stdout.flush()
