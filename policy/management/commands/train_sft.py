"""Supervised fine-tuning (an SFT warm start) on demonstrations, in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandParser

from arbiter.options import add_option_arguments
from policy.management.foreground import PolicyTrainingCommand
from policy.models import PolicyRun
from policy.reinforce import SFTConfig


class Command(PolicyTrainingCommand):
    help = (
        "Fine-tune a policy on demonstrations (a batch's chosen responses or a JSONL file of dialogues), with the "
        "loss on assistant tokens only. Prints progress and ends with one JSON line of final metrics."
    )
    kind = PolicyRun.Kind.SFT

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_base_arguments(parser)
        data = parser.add_mutually_exclusive_group(required=True)
        data.add_argument("--batch", metavar="NAME", help="Each judged item's prompt with its chosen response.")
        data.add_argument("--file", metavar="FILE", help='JSONL, one {"messages": [...]} dialogue per line.')
        add_option_arguments(parser, SFTConfig)
        self.add_queue_argument(parser)

    def handle(self, *args, **options) -> None:
        training = self.checked_options(SFTConfig, options)
        self.start_and_train(options, options["batch"], options["file"], **training)
