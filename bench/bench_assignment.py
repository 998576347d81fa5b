"""Time to assign one HIT as the pool grows and the work goes on: 10k / 100k / 1M items, 0 % / 50 % / 99 % judged.

For each cell a fresh batch is seeded with bulk SQL (generate_series; judgments by a hundred seed annotators, overlap
1, the first `judged` share of the items in id order, as work done in order leaves it), plus `--live-hits` HITs of
other annotators holding the first still-open items, as concurrent annotators do. Then `--repeats` fresh annotators
each ask for work (annotate.services.assign_hit, the function the pages and the API call) and we record:

- wall_ms: the whole call, in this process (ORM included);
- db_ms: the summed time of its SQL statements as the client saw them (round trips included); db_ms_min and
  wall_ms_min: the fastest call's, the least disturbed by other work on a shared machine;
- pick_ms, pick_planning_ms: PostgreSQL's own execution and planning time of the candidate pick (EXPLAIN ANALYZE
  of the locking query);
- slowest_statement_median: the slowest statement of a call (client-side ms, its first words), median call;
- old_pick_ms: the same for the query shape main had before issue 13 (a recount of every item's judgments and a
  subplan over the annotator's history), planning and execution, when `--old` is given; it is read-only, so it runs
  on the same data.

Medians over the repeats. The batch is deleted afterwards (raw SQL, triggers off for speed). Needs PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_assign DEBUG=true \\
      .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_assign DEBUG=true \\
      nice -n 19 .venv/bin/python bench/bench_assignment.py --sizes 10000 100000 1000000 --old

Prints one JSON line per cell, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import F, OuterRef, Q  # noqa: E402

from annotate.models import Batch, Item, Judgment  # noqa: E402
from annotate.services import _count_subquery, assign_hit, assignable_items  # noqa: E402
from annotate.services import _live_slots_waiting as live_slots_waiting  # noqa: E402

SEED_ANNOTATORS = 100


def seed(name: str, size: int, judged: float, live_hits: int, samples_per_hit: int) -> Batch:
    """A batch of `size` items, the first `judged` share judged once (overlap 1), `live_hits` live HITs after them."""
    User = get_user_model()
    batch = Batch.objects.create(name=name, overlap=1, samples_per_hit=samples_per_hit, priority=10**6)
    n_judged = int(size * judged)
    seeders = [
        User.objects.get_or_create(username=f"bench-assign-seed-{i}", defaults={"password": "!"})[0].pk
        for i in range(SEED_ANNOTATORS)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotate_item (batch_id, external_id, prompt, prompt_input, response_1, response_2, source,
                                       more_responses, created_at, judgment_count, is_open)
            SELECT %s, n::text, '[{"role": "user", "content": "What is 2 + 2?"}]', '', 'Four.', '4', '{}', '[]', now(),
                   CASE WHEN n <= %s THEN 1 ELSE 0 END, n > %s
            FROM generate_series(1, %s) AS n
            """,
            [batch.pk, n_judged, n_judged, size],
        )
        # The counters were written with the items: the triggers would only recount them, slowly.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO annotate_judgment (item_id, annotator_id, rating, swapped, time_ms, created_at, updated_at,
                                           display_order, exclusion_note)
            SELECT item.id, (%s::int[])[1 + (row_number() OVER (ORDER BY item.id)) %% %s], 2, false, 1000, now(), now(),
                   '[]', ''
            FROM annotate_item AS item WHERE item.batch_id = %s AND item.judgment_count = 1
            """,
            [seeders, SEED_ANNOTATORS, batch.pk],
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute("ANALYZE annotate_item")
        cursor.execute("ANALYZE annotate_judgment")
    # Leave at least half of the open items free for the measured annotators.
    for i in range(min(live_hits, (size - n_judged) // (2 * samples_per_hit))):
        holder = User.objects.get_or_create(username=f"bench-assign-live-{i}", defaults={"password": "!"})[0]
        assign_hit(holder)
    return batch


def drop(batch: Batch) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        items = "SELECT id FROM annotate_item WHERE batch_id = %s"
        hits = "SELECT id FROM annotate_hit WHERE batch_id = %s"
        cursor.execute(f"DELETE FROM annotate_judgment WHERE item_id IN ({items})", [batch.pk])
        cursor.execute(f"DELETE FROM annotate_hitslot WHERE hit_id IN ({hits})", [batch.pk])
        cursor.execute("DELETE FROM annotate_hit WHERE batch_id = %s", [batch.pk])
        cursor.execute("DELETE FROM annotate_item WHERE batch_id = %s", [batch.pk])
        cursor.execute("DELETE FROM annotate_batch WHERE id = %s", [batch.pk])
    # Dead index entries left by a million deleted rows would slow the next cell's planning (index end probes).
    with connection.cursor() as cursor:
        for table in ("annotate_judgment", "annotate_hitslot", "annotate_hit", "annotate_item"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def old_assignable_items(user, batch: Batch):
    """The candidate query as main had it before issue 13: recounts judgments, subplan over the user's history."""
    mine = Q(judgments__annotator=user) | Q(slots__hit__annotator=user, slots__hit__submitted_at__isnull=True)
    candidates = batch.items.exclude(pk__in=Item.objects.filter(mine).values("pk"))
    judgments = Judgment.objects.filter(item_id=OuterRef("pk"))
    return (
        candidates.annotate(n_judgments=_count_subquery(judgments), n_pending=live_slots_waiting())
        .annotate(taken=F("n_judgments") + F("n_pending"))
        .filter(taken__lt=batch.overlap)
        .order_by("pk")
    )


def explain_ms(queryset, need: int) -> tuple[float, float]:
    """PostgreSQL's (planning, execution) time of the locking pick, in ms."""
    query = queryset.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:need]
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        transaction.set_rollback(True)
    return plan[0]["Planning Time"], plan[0]["Execution Time"]


class StatementTimer:
    """An execute wrapper summing the time of each statement as the client sees it (round trip included)."""

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.statements = 0
        self.each: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = (time.perf_counter() - started) * 1000
            self.total_ms += spent
            self.statements += 1
            self.each.append((spent, " ".join(sql.split()[:4])))


def measure(batch: Batch, repeats: int, old: bool) -> dict:
    User = get_user_model()
    walls, dbs, picks, plans, old_picks, slowest = [], [], [], [], [], []
    for i in range(repeats):
        user = User.objects.create_user(username=f"bench-assign-{batch.pk}-{i}", password=None)
        planning, execution = explain_ms(assignable_items(user, batch), batch.samples_per_hit)
        picks.append(execution)
        plans.append(planning)
        if old:
            old_picks.append(sum(explain_ms(old_assignable_items(user, batch), batch.samples_per_hit)))
        timer = StatementTimer()
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            hit = assign_hit(user)
            walls.append((time.perf_counter() - started) * 1000)
        assert hit is not None and hit.batch_id == batch.pk, "the bench batch has work left"
        dbs.append(timer.total_ms)
        statements = timer.statements
        slowest.append(max(timer.each))
    result = {
        "wall_ms": round(statistics.median(walls), 2),
        "db_ms": round(statistics.median(dbs), 2),
        # The least-disturbed call: on a shared machine the median mostly measures waiting for a CPU.
        "db_ms_min": round(min(dbs), 2),
        "wall_ms_min": round(min(walls), 2),
        "pick_ms": round(statistics.median(picks), 3),
        "pick_planning_ms": round(statistics.median(plans), 3),
        "statements": statements,
        "slowest_statement_median": sorted(slowest)[len(slowest) // 2],
    }
    if old:
        result["old_pick_ms"] = round(statistics.median(old_picks), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--judged", type=float, nargs="+", default=[0.0, 0.5, 0.99])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--live-hits", type=int, default=20)
    parser.add_argument("--samples-per-hit", type=int, default=6)
    parser.add_argument("--old", action="store_true", help="Also time the pre-issue-13 candidate query.")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench_assignment needs PostgreSQL (DATABASE_URL).")
    for leftover in Batch.objects.filter(name__startswith="bench-assign-"):
        drop(leftover)  # from an interrupted run
    Batch.objects.filter(active=True).update(active=False)  # only the bench batch gives work
    rows = []
    for size in args.sizes:
        for judged in args.judged:
            started = time.perf_counter()
            batch = seed(
                f"bench-assign-{size}-{judged}-{time.time_ns()}", size, judged, args.live_hits, args.samples_per_hit
            )
            seeded_s = time.perf_counter() - started
            try:
                row = {"items": size, "judged": judged, **measure(batch, args.repeats, args.old)}
            finally:
                drop(batch)
            row["seed_s"] = round(seeded_s, 1)
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| items | judged | wall ms | DB ms (client) | pick ms (server) | old pick ms (server) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['items']:,} | {row['judged']:.0%} | {row['wall_ms']} | {row['db_ms']} | {row['pick_ms']} | "
            f"{row.get('old_pick_ms', '–')} |"
        )


if __name__ == "__main__":
    main()
