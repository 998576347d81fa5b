"""Train a policy with REINFORCE against a finished reward model, in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandParser

from arbiter.options import add_option_arguments
from policy.management.foreground import PolicyTrainingCommand
from policy.models import PolicyRun
from policy.reinforce import ReinforceConfig


class Command(PolicyTrainingCommand):
    help = (
        "REINFORCE a policy against a reward-model run, in this process. Prints the run id, progress lines, "
        "and ends with one JSON line: reward of policy and reference, reward-model win rate with its count and 95 % "
        "interval (win_n, win_low, win_high; judge_win_rate and the rest with --judge-run), KL (k3, nats per answer)."
    )
    kind = PolicyRun.Kind.REINFORCE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reward-run", type=int, required=True, metavar="ID", help="A succeeded reward-model run.")
        parser.add_argument(
            "--judge-run",
            type=int,
            metavar="ID",
            help="Another succeeded reward-model run that scores the held-out answers as an independent judge.",
        )
        self.add_base_arguments(parser)
        prompts = parser.add_mutually_exclusive_group(required=True)
        prompts.add_argument("--prompts-batch", metavar="NAME", help="Use the distinct prompts of this batch.")
        prompts.add_argument("--prompts-file", metavar="FILE", help='JSONL, one {"prompt": ...} per line.')
        add_option_arguments(parser, ReinforceConfig)
        self.add_queue_argument(parser)

    def handle(self, *args, **options) -> None:
        reward_run = self.reward_run(options["reward_run"])
        judge_run = self.reward_run(options.get("judge_run"), "--judge-run")
        training = self.checked_options(ReinforceConfig, options)
        self.start_and_train(
            options,
            options["prompts_batch"],
            options["prompts_file"],
            reward_run=reward_run,
            judge_run=judge_run,
            **training,
        )
