"""Answer an open batch as simulated annotators who prefer by a reward model, in the foreground."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Batch
from annotate.simulation import SimulationError
from rewardmodel.models import RewardModelRun
from rewardmodel.services import RewardRunError, simulate_with_run


class Command(BaseCommand):
    help = (
        "Answer an open pairwise or ranking batch as N simulated annotators (users simulated-1..N, marked simulated) "
        "through the same services people use: each prefers by a reward model's scores with Bradley-Terry noise. "
        'Ends with one JSON line: {"batch", "annotators", "hits", "judgments"}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch", help="The batch's name.")
        parser.add_argument("--reward-run", type=int, required=True, metavar="ID", help="A succeeded reward-model run.")
        parser.add_argument("--annotators", type=int, default=3, metavar="N", help="Simulated annotators (default 3).")
        parser.add_argument(
            "--temperature", type=float, default=1.0, help="Bradley-Terry temperature: higher is noisier (default 1)."
        )
        parser.add_argument(
            "--position-bias",
            type=float,
            default=0.0,
            help="Logit added in favour of the response shown first (default 0: none).",
        )
        parser.add_argument(
            "--random-share", type=float, default=0.0, help="Share of answers given at random (default 0)."
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        batch = Batch.objects.filter(name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"No batch named {options['batch']!r}.")
        run = RewardModelRun.objects.filter(pk=options["reward_run"]).first()
        if run is None:
            raise CommandError(f"No reward-model run {options['reward_run']}.")
        try:
            result = simulate_with_run(
                batch,
                run,
                options["annotators"],
                temperature=options["temperature"],
                position_bias=options["position_bias"],
                random_share=options["random_share"],
                seed=options["seed"],
            )
        except (SimulationError, RewardRunError) as exc:
            raise CommandError(str(exc)) from None
        summary = {
            "batch": batch.name,
            "annotators": result.annotators,
            "hits": result.hits,
            "judgments": result.judgments,
        }
        self.stdout.write(json.dumps(summary))
