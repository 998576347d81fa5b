"""Export speed and memory: 1,000,000 generated judgments to `trl` JSONL. NOT part of CI.

Builds a fresh PostgreSQL database (default arbiter_bench: dropped and re-created), fills it
with SQL generate_series (items x annotators), then exports through the product's
`export_preferences`. Reports, side by side on the same rows:

- the streaming export of all judgments: time, rows/s, RSS sampled every 100k rows, peak RSS;
- the same export again under tracemalloc (slower; for the peak of Python allocations only);
- a naive baseline on the first --baseline-rows judgments: all model instances in a list
  (select_related), then json.dumps each: time and tracemalloc peak, to compare per row.

    .venv/bin/python bench/bench_export.py                      # 1M judgments
    .venv/bin/python bench/bench_export.py --judgments 100000   # quicker
Optional: --datasets-python /work/benchvenv/bin/python loads the written file with
datasets.load_dataset("json", ...) in that interpreter (datasets is not a product dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANNOTATORS = 20
JUDGMENTS_PER_ITEM = 5


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def recreate_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def fill(judgments: int, response_chars: int) -> None:
    """Items with an instruction and two responses of about `response_chars`; 5 judgments each."""
    from django.db import connection

    items = judgments // JUDGMENTS_PER_ITEM
    filler = "lorem ipsum dolor sit amet " * (response_chars // 27 + 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) SELECT '!', false, 'annotator' || g, '', '', '', false, true, now()"
            " FROM generate_series(1, %s) g",
            [ANNOTATORS],
        )
        cursor.execute(
            "INSERT INTO annotate_batch (name, guidelines, samples_per_hit, overlap, gold_rate, active, created_at,"
            " priority, kind, allow_ties, assignment_order, exploration_share)"
            " VALUES ('bench', '', 6, %s, 0, true, now(), 0, 'pairwise', false, 'import', 0.2) RETURNING id",
            [JUDGMENTS_PER_ITEM],
        )
        batch_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO annotate_item (batch_id, external_id, prompt, prompt_input, response_1, response_2, source,"
            " created_at, more_responses, judgment_count, is_open) SELECT %s, 'item-' || g,"
            " jsonb_build_array(jsonb_build_object('role', 'user', 'content',"
            "   'Instruction ' || g || ': explain the following in a few sentences, please.')),"
            " CASE WHEN g %% 3 = 0 THEN 'Some input text ' || g ELSE '' END,"
            " 'First answer ' || g || ' ' || left(%s, %s), 'Second answer ' || g || ' ' || left(%s, %s + g %% 50),"
            " '{}'::jsonb, now(), '[]'::jsonb, 0, true FROM generate_series(1, %s) g",
            [batch_id, filler, response_chars, filler, response_chars, items],
        )
        cursor.execute("SELECT min(id) FROM auth_user WHERE username LIKE 'annotator%%'")
        first_user = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO annotate_judgment (item_id, annotator_id, rating, swapped, time_ms, created_at, updated_at,"
            " display_order, exclusion_note)"
            " SELECT i.id, %s + (i.id + k) %% %s, (ARRAY[-2, -1, 1, 2])[1 + (i.id * 7 + k) %% 4],"
            " (i.id + k) %% 2 = 0, 4000 + (i.id * 13 + k * 101) %% 20000, now(), now(), '[]'::jsonb, ''"
            " FROM annotate_item i CROSS JOIN generate_series(0, %s) k",
            [first_user, ANNOTATORS, JUDGMENTS_PER_ITEM - 1],
        )
        cursor.execute("ANALYZE")


class MeasuringSink:
    """Writes to a file (or nowhere) and samples RSS every `every` lines."""

    def __init__(self, path: str | None, every: int = 100_000) -> None:
        self.file = open(path, "wb") if path else None  # noqa: SIM115
        self.bytes = 0
        self.lines = 0
        self.every = every
        self.next_sample = every
        self.samples: list[tuple[int, float]] = []

    def write(self, chunk: bytes) -> None:
        if self.file:
            self.file.write(chunk)
        self.bytes += len(chunk)
        self.lines += chunk.count(b"\n")
        while self.lines >= self.next_sample:
            self.samples.append((self.next_sample, rss_mb()))
            self.next_sample += self.every

    def close(self) -> None:
        if self.file:
            self.file.close()


def naive_export(queryset) -> int:
    """Baseline: the obvious code, every row loaded as model instances first."""
    from annotate.export import render_prompt

    judgments = list(queryset.select_related("item__batch"))
    size = 0
    for j in judgments:
        row = {
            "prompt": render_prompt(j.item.prompt, j.item.prompt_input),
            "chosen": j.chosen_text,
            "rejected": j.rejected_text,
            "margin": float(abs(j.rating)),
            "strength": j.strength,
            "batch": j.item.batch.name,
            "item_id": j.item.external_id,
            "item_pk": j.item_id,
            "n_judgments": 1,
        }
        size += len((json.dumps(row, ensure_ascii=False) + "\n").encode())
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--response-chars", type=int, default=300, help="About this long, each response.")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="arbiter_bench")
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("-o", "--output", help="Keep the JSONL here (default: a temporary file, removed).")
    parser.add_argument("--datasets-python", help="Interpreter with `datasets` to load the file with.")
    parser.add_argument("--skip-tracemalloc", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="Keep the database of the last run if it is there.")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")
    os.environ.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="bench_export_"))
    if not args.reuse:
        recreate_database(args.server, args.database)
    import django

    django.setup()
    from django.core.management import call_command

    from annotate.export import export_preferences
    from annotate.models import Judgment

    call_command("migrate", verbosity=0)
    existing = Judgment.objects.count()
    if existing and existing != args.judgments:
        sys.exit(f"{args.database} holds {existing:,} judgments, not {args.judgments:,}: run without --reuse.")
    if not existing:
        started = time.perf_counter()
        fill(args.judgments, args.response_chars)
        print(f"generated {args.judgments:,} judgments in {time.perf_counter() - started:.1f} s")

    output = args.output or tempfile.mktemp(suffix=".jsonl", prefix="bench_export_")
    rss_before = rss_mb()
    sink = MeasuringSink(output)
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = export_preferences(sink, "trl")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    sink.close()
    print(
        f"streaming trl export: {rows:,} rows, {sink.bytes / 1e6:,.0f} MB in {seconds:.1f} s "
        f"({rows / seconds:,.0f} rows/s; {cpu_seconds:.1f} s CPU in this process, the rest is PostgreSQL and waiting); "
        f"RSS before {rss_before:.0f} MB, peak RSS {peak_rss_mb():.0f} MB; load average {os.getloadavg()[0]:.1f}"
    )
    print("RSS (MB) after rows: " + ", ".join(f"{n // 1000}k {mb:.0f}" for n, mb in sink.samples))

    if not args.skip_tracemalloc:
        tracemalloc.start()
        started = time.perf_counter()
        export_preferences(MeasuringSink(None), "trl")
        traced_seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"same export under tracemalloc: peak {peak / 1e6:.1f} MB ({traced_seconds:.1f} s with tracing)")

    # Side by side on the first items (about --baseline-rows judgments): streaming against a list of instances.
    from annotate.export import ExportFilters, trl_lines

    first = _first(min(args.baseline_rows, rows))
    limit = first.count()
    for label, run in (
        ("streaming", lambda: sum(len(line.encode()) for line in trl_lines(ExportFilters(), judgments=first))),
        ("naive list", lambda: naive_export(first)),
    ):
        tracemalloc.start()
        started = time.perf_counter()
        size = run()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"{label:>10} on {limit:,} rows: {elapsed:.2f} s, tracemalloc peak {peak / 1e6:.1f} MB, {size / 1e6:.0f} MB"
        )

    if args.datasets_python:
        code = (
            "import sys, time, datasets; t = time.perf_counter(); "
            "d = datasets.load_dataset('json', data_files=sys.argv[1], split='train', cache_dir=sys.argv[2]); "
            "print(f'datasets json loader: {d.num_rows:,} rows, columns {d.column_names}, "
            "{time.perf_counter() - t:.1f} s')"
        )
        with tempfile.TemporaryDirectory() as cache:
            subprocess.run([args.datasets_python, "-c", code, output, cache], check=True)
    if not args.output:
        Path(output).unlink()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")


def _first(limit: int):
    """Judgments of the first items, about `limit` of them (a range of item ids, not a list of ids)."""
    from annotate.models import Judgment

    last_item = Judgment.objects.order_by("item_id", "id").values_list("item_id", flat=True)[limit - 1]
    return Judgment.objects.filter(item_id__lte=last_item).order_by("item_id", "id")


if __name__ == "__main__":
    main()
