"""Planner statistics that keep up with the tables assignment grows (issue 23).

A new batch starts with the HIT, slot and judgment tables analyzed small or empty; within a minute of a rush they hold
thousands of rows, and a planner that still believes "empty" may probe them with whole-index scans: measured, the
pick of a new HIT's items took 8.9 s instead of 0.3 ms (tests/annotate/test_plans.py). Autovacuum re-analyzes a
table only after its nap (a minute) and a share of its rows (migration 0010 lowers that share for these tables), and
not at all where it is off; so the app analyzes what it has just grown itself: once a table takes twice the pages its
statistics saw, or its statistics count fewer rows than pages (analyzed while empty, or after a mass delete: they say
"nothing here" however much is written into the freed space), and it has at least GROWTH_PAGES, one request ANALYZEs
it after its commit; each process at most once per ANALYZE_INTERVAL_SECONDS per table. Pages, not the statistics
collector's change counts: the file size is known at once, inside the transaction that grew it, and costs one look.
"""

from __future__ import annotations

import time

from django.db import connection

# The tables a rush of annotators grows, and an import's.
ASSIGNMENT_TABLES = ("annotate_hit", "annotate_hitslot", "annotate_judgment")
IMPORT_TABLES = ("annotate_item", "annotate_judgment")
# Tables under this many 8 kB pages (about a thousand HITs or slots) are never re-analyzed: small enough for any plan.
GROWTH_PAGES = 8
# One ANALYZE at a time (pg_try_advisory_lock): the other requests that notice the growth go on without waiting.
ANALYZE_LOCK_KEY = 0x41524249  # "ARBI"
# A table whose rows stay sparse (deleted, not vacuumed) would otherwise be analyzed again on every new HIT.
ANALYZE_INTERVAL_SECONDS = 10.0
_analyzed_at: dict[str, float] = {}  # table -> time.monotonic() of this process's last ANALYZE of it


def grown_tables(tables: tuple[str, ...]) -> list[str]:
    """The tables among `tables` (over GROWTH_PAGES) whose statistics fell behind: twice the pages their last ANALYZE
    saw, or fewer rows counted than pages."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM (SELECT relname, relpages, reltuples, "
            "pg_relation_size(oid) / current_setting('block_size')::int AS pages "
            "FROM pg_class WHERE oid = ANY(%s::regclass[])) AS tables "
            "WHERE pages > %s AND (pages > 2 * relpages OR reltuples < relpages) ORDER BY relname",
            [list(tables), GROWTH_PAGES],
        )
        return [name for (name,) in cursor.fetchall()]


def analyze_grown(tables: tuple[str, ...] = ASSIGNMENT_TABLES) -> list[str]:
    """ANALYZE the tables among `tables` that grew past their statistics; returns those analyzed.

    Outside a transaction's writes (after commit): ANALYZE takes a lock that only other ANALYZEs wait for, and the
    advisory lock makes the requests that notice at the same moment skip it rather than queue.
    """
    now = time.monotonic()
    grown = [table for table in grown_tables(tables) if now - _analyzed_at.get(table, -1e9) >= ANALYZE_INTERVAL_SECONDS]
    if not grown:
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ANALYZE_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return []
        try:
            for table in grown:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
                _analyzed_at[table] = time.monotonic()
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ANALYZE_LOCK_KEY])
    return grown
