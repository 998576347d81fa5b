"""What train_policy and train_sft share: the base options, and names and files to rows before training."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from annotate.models import Batch
from arbiter.options import model_location
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from policy.services import run_policy_training, start_policy_run
from rewardmodel.models import RewardModelRun
from rlhf.options import OptionError
from runs.management.foreground import ForegroundTrainingCommand


class PolicyTrainingCommand(ForegroundTrainingCommand):
    kind: str = PolicyRun.Kind.REINFORCE
    progress_keys = (
        "loss",
        "reward_mean",
        "kl",
        "response_length",
        "eval_reward_policy",
        "eval_reward_reference",
        "eval_win_rate",
        "eval_judge_win_rate",
        "eval_kl",
    )

    def add_base_arguments(self, parser: CommandParser) -> None:
        base = parser.add_mutually_exclusive_group()
        base.add_argument("--base", help="Local model folder or cached hub id (default: SmolLM2-135M-Instruct).")
        base.add_argument("--base-run", type=int, metavar="ID", help="Start from a finished policy run (e.g. SFT).")
        parser.add_argument(
            "--base-checkpoint",
            default="",
            metavar="NAME",
            help='With --base-run: "final" (the default) or one of its checkpoint-<step> folders.',
        )

    @staticmethod
    def reward_run(run_id: int | None, flag: str = "") -> RewardModelRun | None:
        """The reward-model run an option names (None when not given); CommandError when there is no such run."""
        if run_id is None:
            return None
        run = RewardModelRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No reward-model run {run_id}{f' ({flag})' if flag else ''}.")
        return run

    def start_and_train(self, options: dict, batch_name: str | None, file_name: str | None, **start) -> None:
        try:
            base_path = model_location(options.get("base") or "", "base_path")
        except OptionError as exc:
            raise CommandError(str(exc)) from None
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
                base_path=base_path,
                base_checkpoint=options.get("base_checkpoint") or "",
                data_batch=data_batch,
                data_file=handle,
                dispatch=bool(options.get("queue")),
                queue=options.get("queue") or "",
                **start,
            )
        except PolicyRunError as exc:
            raise CommandError(str(exc)) from None
        finally:
            if handle is not None:
                handle.close()
        if options.get("queue"):
            self.report_queued(run)
            return
        run = self.train(run, run_policy_training)
        self.report(run.model_dir, {"run": run.pk, **run.metrics})
