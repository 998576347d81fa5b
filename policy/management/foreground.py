"""What the two training commands share: names to rows, training in this process, progress lines, one JSON line."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Batch
from policy.models import PolicyRun
from policy.services import PolicyRunError, run_policy_training, start_policy_run
from rewardmodel.runs import RunStatus

PROGRESS_KEYS = (
    "loss",
    "reward_mean",
    "kl",
    "response_length",
    "eval_reward_policy",
    "eval_reward_reference",
    "eval_win_rate",
    "eval_kl",
)


class ForegroundTrainingCommand(BaseCommand):
    kind: str = PolicyRun.Kind.REINFORCE

    def add_base_arguments(self, parser: CommandParser) -> None:
        base = parser.add_mutually_exclusive_group()
        base.add_argument("--base", help="Local model folder or cached hub id (default: SmolLM2-135M-Instruct).")
        base.add_argument("--base-run", type=int, metavar="ID", help="Start from a finished policy run (e.g. SFT).")

    def start_and_train(self, options: dict, batch_name: str | None, file_name: str | None, **start) -> None:
        base_run = None
        if options.get("base_run") is not None:
            base_run = PolicyRun.objects.filter(pk=options["base_run"]).first()
            if base_run is None:
                raise CommandError(f"No policy run {options['base_run']}.")
        data_batch = None
        if batch_name is not None:
            data_batch = Batch.objects.filter(name=batch_name).first()
            if data_batch is None:
                raise CommandError(f"No batch named {batch_name!r}.")
        handle = None
        if file_name is not None:
            path = Path(file_name)
            if not path.is_file():
                raise CommandError(f"No file {file_name}.")
            handle = path.open("rb")
        try:
            run = start_policy_run(
                None,
                self.kind,
                base_run=base_run,
                base_path=options.get("base") or "",
                data_batch=data_batch,
                data_file=handle,
                dispatch=False,
                **start,
            )
        except PolicyRunError as exc:
            raise CommandError(str(exc)) from None
        finally:
            if handle is not None:
                handle.close()
        self.stdout.write(f"Run {run.pk}")
        self.stdout.flush()

        run = run_policy_training(run, on_log=self._print_progress)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or 'stopped'}")
        self.stdout.write(f"Model saved in {run.model_dir}")
        self.stdout.write(json.dumps({"run": run.pk, **run.metrics}, sort_keys=True))

    def _print_progress(self, step: int, metrics: dict) -> None:
        parts = [f"step {step}/{metrics.get('total_steps', '?')}"]
        for key in PROGRESS_KEYS:
            value = metrics.get(key)
            if value is not None:
                parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        self.stdout.write(" · ".join(parts))
        self.stdout.flush()
