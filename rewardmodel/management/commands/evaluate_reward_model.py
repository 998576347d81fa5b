"""Score a preference file with a trained run's model, without importing the file."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from annotate.importers import KNOWN_PREFERENCE_FORMATS, ImportFileError, parse_comparisons, read_text
from rewardmodel.models import RewardModelRun
from rewardmodel.services import RewardRunError, evaluate_run, preference_pair


class Command(BaseCommand):
    help = (
        "Score a preference file with known answers (HH-RLHF or TRL format, JSON or JSONL, gzip accepted) "
        'with a trained run\'s model. Ends with one JSON line: {"accuracy": ..., "pairs": ...}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="A succeeded reward-model run.")
        parser.add_argument("file", help="Preference file (hh or trl format).")

    def handle(self, *args, **options) -> None:
        run = RewardModelRun.objects.filter(pk=options["run_id"]).first()
        if run is None:
            raise CommandError(f"No reward-model run {options['run_id']}.")
        if run.artifact_dir is None:
            raise CommandError(f"Run {run.pk} has no trained model (status: {run.status}).")
        try:
            fmt, comparisons = parse_comparisons(read_text(options["file"]))
        except ImportFileError as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        if fmt not in KNOWN_PREFERENCE_FORMATS:
            raise CommandError(
                f"{options['file']}: {fmt} records have no known answer; use a preference file "
                f"({' or '.join(KNOWN_PREFERENCE_FORMATS)} format)."
            )
        # The same pair builder as training: input joined onto the instruction, the same prompt group.
        pairs = [preference_pair(c.prompt, c.prompt_input, c.response_1, c.response_2, c.chosen) for c in comparisons]
        pairs_text = ngettext("%(n)d %(fmt)s pair", "%(n)d %(fmt)s pairs", len(pairs)) % {"n": len(pairs), "fmt": fmt}
        self.stderr.write(f"Scoring {pairs_text} with run {run.pk}…")
        try:
            result = evaluate_run(run, pairs)
        except RewardRunError as exc:
            raise CommandError(str(exc)) from None
        summary = {"accuracy": result["accuracy"], "pairs": result["pairs"]}
        # Per-level figures only when the pairs had levels (HH and TRL files have none).
        for key in ("accuracy_clear", "accuracy_slight"):
            if result.get(key) is not None:
                summary[key] = result[key]
        if result.get("mean_margin") is not None:
            summary["mean_margin"] = result["mean_margin"]
        self.stdout.write(json.dumps(summary))
