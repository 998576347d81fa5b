from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from annotate.importers import FORMAT_CHOICES, NEW_BATCH_SETTINGS, ImportFileError, import_comparisons


class Command(BaseCommand):
    help = (
        "Import comparisons (AlpacaFarm, HH-RLHF, TRL or plain pairs, or rankings of 3 to 9 responses; JSON or "
        "JSONL, gzip accepted) into a batch, all or nothing. A ranking record has prompt, responses and optionally "
        "ranking (1-based response numbers best first; a nested list is a tie) or scores (higher is better)."
    )
    # The checks load every URL conf and so the training code (torch): seconds an import does not need.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON array or JSONL file, optionally gzipped.")
        parser.add_argument("--batch", required=True, help="Batch name; created when it does not exist.")
        parser.add_argument("--format", default="auto", choices=[value for value, _ in FORMAT_CHOICES])
        parser.add_argument(
            "--as-judgments",
            action="store_true",
            help="Also store the file's known preference (hh, trl) or order (ranking, scores) as judgments by the "
            "import user.",
        )
        parser.add_argument(
            "--allow-ties",
            action="store_true",
            help="Rankings: the new batch allows ties (nested lists in ranking, equal scores; and on the HIT).",
        )
        activity = parser.add_mutually_exclusive_group()
        activity.add_argument(
            "--active",
            dest="active",
            action="store_const",
            const=True,
            help="Annotators get the batch at once (default unless --as-judgments).",
        )
        activity.add_argument(
            "--inactive",
            dest="active",
            action="store_const",
            const=False,
            help="Annotators do not get the batch until staff resume it (default with --as-judgments).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed for the order of the two responses.")
        parser.add_argument("--guidelines", default=None, help="New batch: the annotators' instructions (Markdown).")
        parser.add_argument("--overlap", type=int, default=None, help="New batch: annotators per item (default 1).")
        parser.add_argument("--samples-per-hit", type=int, default=None, help="New batch: items per HIT (default 6).")

    def handle(self, *args, **options) -> None:
        try:
            result = import_comparisons(
                options["file"],
                options["batch"],
                fmt=options["format"],
                as_judgments=options["as_judgments"],
                seed=options["seed"],
                active=options["active"],
                allow_ties=options["allow_ties"],
                batch_settings={name: options[name] for name in NEW_BATCH_SETTINGS},
            )
        except ImportFileError as exc:
            raise CommandError(f"{options['file']}: {exc}. Nothing was imported.") from exc
        items = ngettext("%(n)d item", "%(n)d items", result.count) % {"n": result.count}
        kind = ""
        if result.batch.is_ranking:
            size = result.batch.ranking_size
            kind = f" (a ranking batch, {size} responses per item)" if size else " (a ranking batch, K per item)"
        self.stdout.write(f"Imported {items} into batch {result.batch.name}{kind}.")
        if result.judgment_count:
            judgments = ngettext("%(n)d judgment", "%(n)d judgments", result.judgment_count) % {
                "n": result.judgment_count
            }
            self.stdout.write(f"Stored {judgments} by {result.judgments_by}.")
        if result.batch.active:
            self.stdout.write(f"Batch {result.batch.name} is active: annotators get its items.")
        else:
            self.stdout.write(
                f"Batch {result.batch.name} is inactive: annotators get its items once staff resume it "
                "(dashboard → Queue)."
            )
