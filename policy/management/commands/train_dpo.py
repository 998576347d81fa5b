"""DPO (or IPO) of a policy on a batch's judgments, in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandParser

from arbiter.options import add_option_arguments
from policy.management.foreground import PolicyTrainingCommand
from policy.models import PolicyRun
from policy.reinforce import DPOConfig
from rlhf.preferences import AGGREGATIONS
from rlhf.rankings import RANKING_AGGREGATIONS


class Command(PolicyTrainingCommand):
    help = (
        "Direct preference optimization of a policy on a batch's judgments (taken as a reward run takes them), in "
        "this process. Prints progress and ends with one JSON line: loss, held-out implicit-reward accuracy and, with "
        "--reward-run, the reward-model win rate over the reference and KL."
    )
    kind = PolicyRun.Kind.DPO
    progress_keys = ("loss", "accuracy", "margin", "eval_loss", "eval_accuracy", "eval_margin")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True, metavar="NAME", help="Learn from this batch's judgments.")
        parser.add_argument("--aggregate", choices=AGGREGATIONS, default="each", help="Several judgments of an item.")
        parser.add_argument(
            "--ranking-aggregate", choices=RANKING_AGGREGATIONS, default="each", help="Several rankings of an item."
        )
        parser.add_argument("--exclude-flagged", action="store_true", help="Leave out the flagged annotators.")
        parser.add_argument(
            "--reward-run", type=int, metavar="ID", help="A succeeded reward-model run to judge the held-out answers."
        )
        self.add_base_arguments(parser)
        add_option_arguments(parser, DPOConfig)
        self.add_queue_argument(parser)

    def handle(self, *args, **options) -> None:
        reward_run = self.reward_run(options.get("reward_run"))
        training = self.checked_options(DPOConfig, options)
        self.start_and_train(
            options,
            options["batch"],
            None,
            reward_run=reward_run,
            aggregate=options["aggregate"],
            ranking_aggregate=options["ranking_aggregate"],
            exclude_flagged=options["exclude_flagged"],
            **training,
        )
