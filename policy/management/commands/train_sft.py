"""Supervised fine-tuning (an SFT warm start) on demonstrations, in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandParser

from policy.management.foreground import PolicyTrainingCommand
from policy.models import PolicyRun


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
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--max-length", type=int)
        parser.add_argument("--seed", type=int)

    def handle(self, *args, **options) -> None:
        training = self.given(options, ("epochs", "learning_rate", "batch_size", "max_length", "seed"))
        self.start_and_train(options, options["batch"], options["file"], **training)
