"""Train a reward model on batches' judgments in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from annotate.models import Batch
from arbiter.options import add_option_arguments
from rewardmodel.models import RewardModelRun
from rewardmodel.services import RewardRunError, run_reward_training, start_reward_run
from rewardmodel.train import RewardTrainConfig
from rlhf.preferences import AGGREGATIONS
from rlhf.rankings import RANKING_AGGREGATIONS
from runs.management.foreground import ForegroundTrainingCommand


class Command(ForegroundTrainingCommand):
    help = (
        "Train a reward model on the judgments of one or more batches, in this process. "
        "Prints the run id, progress lines, and ends with one JSON line of final metrics."
    )
    progress_keys = ("epoch", "loss", "eval_loss", "eval_accuracy", "eval_kendall_tau", "pairs_per_second")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", action="append", required=True, metavar="NAME", help="Batch name (repeatable).")
        parser.add_argument("--aggregate", choices=AGGREGATIONS, default="each")
        parser.add_argument(
            "--ranking-aggregate",
            choices=RANKING_AGGREGATIONS,
            default="each",
            help="Several annotators' rankings of one item: each counts, or one Borda-count ranking per item.",
        )
        parser.add_argument(
            "--base-run",
            type=int,
            metavar="ID",
            help="Start from this succeeded reward-model run's model instead of a fresh head on the backbone.",
        )
        parser.add_argument(
            "--exclude-flagged", action="store_true", help="Leave out annotators the quality page flags."
        )
        add_option_arguments(parser, RewardTrainConfig)
        self.add_queue_argument(parser)

    def handle(self, *args, **options) -> None:
        names = list(dict.fromkeys(options["batch"]))
        batches = list(Batch.objects.filter(name__in=names))
        missing = sorted(set(names) - {b.name for b in batches})
        if missing:
            raise CommandError(f"No batch named {', '.join(repr(n) for n in missing)}.")
        training = self.checked_options(RewardTrainConfig, options)
        base_run = None
        if options["base_run"] is not None:
            base_run = RewardModelRun.objects.filter(pk=options["base_run"]).first()
            if base_run is None:
                raise CommandError(f"No reward-model run {options['base_run']}.")
        try:
            run = start_reward_run(
                None,
                batches,
                aggregate=options["aggregate"],
                ranking_aggregate=options["ranking_aggregate"],
                base_run=base_run,
                exclude_flagged=options["exclude_flagged"],
                dispatch=bool(options["queue"]),
                queue=options["queue"] or "",
                **training,
            )
        except RewardRunError as exc:
            raise CommandError(str(exc)) from None
        if options["queue"]:
            self.report_queued(run)
            return
        run = self.train(run, run_reward_training)
        self.report(run.artifact_path, run.metrics)
