import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from annotate.export import FORMATS, PARQUET_TABLES, ExportError, ExportFilters, PreferenceExport, write_export
from arbiter.options import add_option_arguments


class Command(BaseCommand):
    help = (
        "Export judgments as a preference data set (trl, trl-conversational, raw JSONL, csv or parquet) or as "
        "rankings JSONL, streamed with constant memory. Writes to stdout unless -o is given. Ranking batches: "
        "--ranking-aggregate each keeps one ranking per annotator, borda combines an item's rankings by Borda "
        "count (K - rank points per ranking, ties share the mean; equal totals tie); the pairwise formats give "
        "each ranking's pairs (--pairs all: C(K,2) pairs weighted 1/C(K,2); adjacent; sample:M) with a weight "
        "column."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", action="append", dest="batches", metavar="NAME", help="Repeat for several.")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--table", choices=PARQUET_TABLES, default="trl", help="Table written as parquet.")
        parser.add_argument("-o", "--output", metavar="FILE", help="Write here (atomically) instead of stdout.")
        parser.add_argument("--since", help="Judgments created on or after this date (YYYY-MM-DD) or ISO time.")
        parser.add_argument("--until", help="Judgments created before this ISO time, or on or before this date.")
        parser.add_argument("--annotator", action="append", dest="annotators", metavar="USERNAME")
        parser.add_argument("--exclude-annotator", action="append", dest="exclude_annotators", metavar="USERNAME")
        add_option_arguments(parser, ExportFilters)

    def handle(self, *args, **options) -> None:
        fmt, output = options["fmt"], options["output"]
        if fmt == "parquet" and not output:
            raise CommandError("--format parquet is binary: give a file with -o.")
        try:
            export = PreferenceExport(fmt=fmt, table=options["table"], filters=ExportFilters.from_options(options))
            if output:
                rows = self._to_file(Path(output), export)
                self.stderr.write(
                    ngettext("Wrote %(n)d row to %(path)s.", "Wrote %(n)d rows to %(path)s.", rows)
                    % {"n": rows, "path": output}
                )
            else:
                write_export(_TextOut(self.stdout), export)
        except ExportError as exc:
            raise CommandError(str(exc)) from exc

    @staticmethod
    def _to_file(path: Path, export: PreferenceExport) -> int:
        """Write beside the target and rename, so a failed export leaves no half-written file."""
        if not path.parent.is_dir():
            raise CommandError(f"-o {path}: folder {path.parent} does not exist.")
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                rows = write_export(out, export)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return rows


class _TextOut:
    """Binary writes onto the command's text stdout (chunks end at line ends, so decoding is safe)."""

    def __init__(self, stdout) -> None:
        self.stdout = stdout

    def write(self, chunk: bytes) -> None:
        self.stdout.write(chunk.decode(), ending="")
