"""Send a finished REINFORCE run's held-out answers to annotators, as the run page's button does."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from policy.errors import PolicyRunError
from policy.evaluation import SEND_KINDS, SEND_PAIRWISE, send_to_annotators
from policy.models import PolicyRun


class Command(BaseCommand):
    help = (
        "Make a batch of a REINFORCE run's held-out answers: the policy's answer vs the reference's (pairwise), or "
        "the policy's n answers and the reference's as one K = n + 1 ranking item per prompt (--kind ranking). "
        "Prints one JSON line: the batch's id, name, kind and items. Sending again prints the batch made before."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, metavar="RUN_ID", help="A succeeded REINFORCE run.")
        parser.add_argument("--kind", choices=SEND_KINDS, default=SEND_PAIRWISE)
        parser.add_argument("--overlap", type=int, default=1, help="Judgments (or rankings) per item. Default: 1.")

    def handle(self, *args, **options) -> None:
        run = PolicyRun.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No policy run {options['run']}.")
        try:
            batch = send_to_annotators(run, None, overlap=options["overlap"], kind=options["kind"])
        except PolicyRunError as exc:
            raise CommandError(str(exc)) from None
        body = {"batch": batch.pk, "name": batch.name, "kind": batch.kind, "items": batch.items.count()}
        self.stdout.write(json.dumps(body))
