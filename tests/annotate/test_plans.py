"""The annotator's statements keep their index plans as the tables grow (issue 23).

A new batch meets its first annotators with the HIT, slot and judgment tables analyzed while empty, and they grow by
thousands of rows before autovacuum would analyze them again. The statements of assign, the HIT page, rate, rank and
submit are captured from the real service calls (the first annotator's, on small tables, and later ones') and
EXPLAINed (FORMAT JSON, not run) once 10,000 HITs were inserted and the app's own growth check
(annotate.table_statistics) ran. None may read a whole HIT, slot, judgment or item table.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.models import Batch
from annotate.selectors import hit_progress, screen_sample_at, screen_samples
from annotate.services import assign_hit, rank_item, rate_sample, submit_hit
from annotate.table_statistics import ASSIGNMENT_TABLES, IMPORT_TABLES, analyze_grown, grown_tables
from tests.annotate.factories import make_batch, make_ranking_batch

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="query plans are PostgreSQL's"),
]

HOT_TABLES = ("annotate_hit", "annotate_hitslot", "annotate_judgment", "annotate_item")
GROWN_HITS = 10_000
ITEMS = ("annotate_item",)


def analyze() -> None:
    with connection.cursor() as cursor:
        for table in HOT_TABLES:
            cursor.execute(f"ANALYZE {table}")


def full_scans(sql: str) -> list[str]:
    """The hot tables that the plan of `sql` reads whole: a sequential scan, or an index walked without a condition
    once per outer row or subplan call (a planner that believes a table empty picks either, and a 10,000-row table
    is then read once per probe). An ordered index walk that drives the statement under its LIMIT stops early."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found, nodes = [], [(plan[0]["Plan"], False)]
    while nodes:
        node, repeated = nodes.pop()
        repeated = repeated or node.get("Parent Relationship") in ("Inner", "SubPlan")
        whole = node["Node Type"] == "Seq Scan" or (
            repeated and node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node
        )
        if whole and node.get("Relation Name") in HOT_TABLES:
            found.append(f"{node['Node Type']} on {node['Relation Name']}")
        nodes += [(child, repeated) for child in node.get("Plans", [])]
    return found


def annotator_statements(user) -> list[str]:
    """Every data statement of one annotator's HIT: assign, the page, rate (or rank) each sample, submit."""
    with CaptureQueriesContext(connection) as queries:
        hit = assign_hit(user)
        assert hit is not None
        hit_progress(hit)
        screen_samples(hit)
        screen_sample_at(hit, 1)
        for slot in hit.ordered_slots():
            if hit.batch.is_ranking:
                rank_item(hit, slot.position, [[1], [2]])
                rank_item(hit, slot.position, [[2], [1], [3]])
            else:
                rate_sample(hit.pk, user.pk, slot.position, 1, 1000, with_item=True)
        submit_hit(hit)
        assign_hit(user)
    return [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "INSERT", "DELETE")
    ]


def grow(batch: Batch, hits: int, live: int = 300) -> None:
    """`hits` HITs of other annotators in `batch`, each with one slot (bulk SQL): `live` of them still open on the
    batch's first items (which later annotators must pass over), the others submitted with their judgment."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                   is_active, date_joined)
            SELECT '!', false, 'grown-' || n, '', '', '', false, true, now() FROM generate_series(1, %s) AS n
            """,
            [hits],
        )
        cursor.execute(
            """
            INSERT INTO annotate_hit (annotator_id, batch_id, created_at, last_activity_at, submitted_at, was_idle)
            SELECT id, %s, now(), now(), CASE WHEN row_number() OVER (ORDER BY id) > %s THEN now() END, false
            FROM auth_user WHERE username LIKE 'grown-%%'
            """,
            [batch.pk, live],
        )
        cursor.execute(
            """
            INSERT INTO annotate_hitslot (hit_id, item_id, position, swapped, display_order)
            SELECT hit.id, item.id, 1, false, '[]'
            FROM (SELECT hit.id, row_number() OVER (ORDER BY hit.submitted_at IS NULL DESC, hit.id) AS n
                  FROM annotate_hit AS hit JOIN auth_user ON auth_user.id = hit.annotator_id
                  WHERE hit.batch_id = %s AND auth_user.username LIKE 'grown-%%') AS hit
            JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM annotate_item WHERE batch_id = %s) AS item
              ON hit.n = item.n
            """,
            [batch.pk, batch.pk],
        )
        # The judgment triggers would count 10,000 rows one by one: off for the insert, then counted in one update.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO annotate_judgment (item_id, annotator_id, hit_id, rating, ranking, swapped, display_order,
                                           time_ms, created_at, updated_at, exclusion_note)
            SELECT slot.item_id, hit.annotator_id, hit.id, CASE WHEN %s THEN NULL ELSE 1 END,
                   CASE WHEN %s THEN '[[1], [2], [3], [4]]'::jsonb END, false, '[]', 1000, now(), now(), ''
            FROM annotate_hitslot AS slot JOIN annotate_hit AS hit ON hit.id = slot.hit_id
            JOIN auth_user ON auth_user.id = hit.annotator_id
            WHERE hit.batch_id = %s AND auth_user.username LIKE 'grown-%%' AND hit.submitted_at IS NOT NULL
            """,
            [batch.is_ranking, batch.is_ranking, batch.pk],
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute(
            """
            UPDATE annotate_item AS item SET judgment_count = counted.n, is_open = counted.n < %s
            FROM (SELECT item_id, count(*) AS n FROM annotate_judgment GROUP BY item_id) AS counted
            WHERE counted.item_id = item.id AND item.batch_id = %s
            """,
            [batch.overlap, batch.pk],
        )


@pytest.mark.parametrize("kind", ["pairwise", "ranking"])
def test_the_annotator_statements_keep_index_plans_as_the_tables_grow(kind, alice, bob, charlie, monkeypatch):
    monkeypatch.setattr("annotate.table_statistics._analyzed_at", {})
    analyze()  # statistics of empty tables: a new deployment, or a batch imported before
    if kind == "ranking":
        batch = make_ranking_batch(n_items=GROWN_HITS + 80, samples_per_hit=6, overlap=2)
    else:
        batch = make_batch(n_items=GROWN_HITS + 80, samples_per_hit=6, overlap=2)
    # As an import does after its commit: the items it wrote are analyzed.
    assert "annotate_item" in analyze_grown(IMPORT_TABLES)
    statements = annotator_statements(alice)  # as the batch's first annotator sends them, on small tables

    grow(batch, GROWN_HITS)  # a rush: 10,000 HITs, the statistics still those of the empty tables
    # The next new HIT's commit notices the growth (its rule is what the API and the pages run).
    # (Which of them outgrew their statistics depends on the pages earlier tests left behind: rolled-back rows keep
    # theirs until a vacuum. The HIT table always does: nothing else writes 10,000 HITs.)
    grown = grown_tables(ASSIGNMENT_TABLES)
    assert "annotate_hit" in grown
    assert sorted(analyze_grown()) == grown
    assert grown_tables(ASSIGNMENT_TABLES) == [], "analyzed once per growth, not on every HIT"
    statements += annotator_statements(bob) + annotator_statements(charlie)
    for sql in statements:
        assert not full_scans(sql), f"{GROWN_HITS} HITs: full scan in\n{sql}"


def test_a_table_is_analyzed_again_only_once_it_grew_past_its_statistics(alice):
    analyze()
    make_batch(n_items=GROWN_HITS)
    assert grown_tables(ITEMS) == ["annotate_item"]
    analyze()
    assert grown_tables(ITEMS) == []
    make_batch(name="small", n_items=GROWN_HITS // 100)  # 1 % more items: the statistics still hold
    assert grown_tables(ITEMS) == []
