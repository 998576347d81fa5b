"""The assignment state kept on each item (judgment_count, is_open) stays true whatever writes the judgments."""

import json

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count

from annotate.importers import import_comparisons
from annotate.models import Batch, Item, Judgment, Rating
from annotate.services import assign_hit, rate_item, submit_hit
from tests.annotate.factories import make_batch


def counters_match_judgments() -> bool:
    counted = dict(Item.objects.values_list("pk", "judgment_count"))
    actual = dict(Item.objects.annotate(n=Count("judgments")).values_list("pk", "n"))
    return counted == actual


def test_ratings_count_once_per_judgment_and_close_items_at_their_overlap(alice, bob):
    batch = make_batch(n_items=6, samples_per_hit=6, overlap=2)
    for annotator in (alice, bob):
        hit = assign_hit(annotator)
        for slot in hit.ordered_slots():
            rate_item(hit, slot.position, Rating.RESPONSE_1_BETTER)
            rate_item(hit, slot.position, Rating.RESPONSE_2_BETTER)  # a changed answer is not a new judgment
        submit_hit(hit)
    assert counters_match_judgments()
    assert set(batch.items.values_list("judgment_count", "is_open")) == {(2, False)}


def test_changing_a_batch_overlap_reopens_or_closes_its_items(alice):
    batch = make_batch(n_items=6, samples_per_hit=6, overlap=1)
    hit = assign_hit(alice)
    rate_item(hit, 1, Rating.RESPONSE_1_BETTER)
    assert batch.items.filter(is_open=False).count() == 1
    batch.overlap = 2
    batch.save()
    assert not batch.items.filter(is_open=False).exists(), "one judgment of two: open again"
    Batch.objects.filter(pk=batch.pk).update(overlap=1)
    assert batch.items.filter(is_open=False).count() == 1


def test_imported_judgments_are_counted(db, tmp_path):
    records = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    path = tmp_path / "trl.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records))
    result = import_comparisons(str(path), "answered", as_judgments=True, seed=1)
    assert set(result.batch.items.values_list("judgment_count", "is_open")) == {(1, False)}
    assert counters_match_judgments()


def test_deleting_an_annotator_gives_their_items_back(alice, bob):
    batch = make_batch(n_items=6, samples_per_hit=6, overlap=1)
    hit = assign_hit(alice)
    for slot in hit.ordered_slots():
        rate_item(hit, slot.position, Rating.RESPONSE_1_BETTER)
    submit_hit(hit)
    assert assign_hit(bob) is None, "every item has its one judgment"
    get_user_model().objects.filter(pk=alice.pk).delete()
    assert counters_match_judgments() and not Judgment.objects.exists()
    assert batch.items.filter(is_open=True).count() == 6
    assert len(assign_hit(bob).ordered_slots()) == 6


def test_picking_work_reads_only_open_items_through_their_index(alice, bob):
    """The pick is an index range over open items, whatever has been judged before (PostgreSQL's plan)."""
    batch = make_batch(n_items=40, samples_per_hit=4, overlap=1)
    hit = assign_hit(alice)
    for slot in hit.ordered_slots():
        rate_item(hit, slot.position, Rating.RESPONSE_1_BETTER)
    submit_hit(hit)
    if connection.vendor != "postgresql":
        return
    from annotate.services import assignable_items

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a 40-row table would rather be read whole
        sql, params = assignable_items(bob, batch).values("pk")[:4].query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "item_open_in_batch" in plan, plan


def test_the_migration_counts_the_judgments_already_there(transactional_db):
    """Rows written before migration 0005 get their counters from what is stored, and the triggers take over."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("annotate", "0007_review_and_uncertainty")], [("annotate", "0008_assignment_state")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    annotator = old.get_model("auth", "User").objects.create(username="early")
    batch = old.get_model("annotate", "Batch").objects.create(name="early", overlap=2)
    OldItem, OldJudgment = old.get_model("annotate", "Item"), old.get_model("annotate", "Judgment")
    items = [
        OldItem.objects.create(batch=batch, external_id=str(i), prompt=[], response_1="a", response_2="b")
        for i in range(3)
    ]
    others = [old.get_model("auth", "User").objects.create(username=f"early-{i}") for i in range(2)]
    for who in (annotator, *others):
        OldJudgment.objects.create(item=items[0], annotator=who, rating=2)
    OldJudgment.objects.create(item=items[1], annotator=annotator, rating=-2)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    state = dict(Item.objects.filter(batch_id=batch.pk).values_list("external_id", "judgment_count"))
    assert state == {"0": 3, "1": 1, "2": 0}
    assert list(Item.objects.filter(batch_id=batch.pk, is_open=True).values_list("external_id", flat=True)) == [
        "1",
        "2",
    ]
    Judgment.objects.create(item_id=items[2].pk, annotator_id=annotator.pk, rating=1)
    assert counters_match_judgments()
