"""Assignment state kept, not recounted: Item.judgment_count and Item.is_open, maintained by triggers.

Triggers rather than application code, so that every way a judgment is written or deleted keeps the counter right:
rate_item, bulk imports (--as-judgments), cascades when a user or HIT is deleted, and raw SQL alike. On PostgreSQL
they are statement-level with transition tables (a bulk import of 100k judgments is one UPDATE per statement, not
one per row); SQLite only has row-level triggers. A change to a batch's overlap re-derives its items' `is_open`.
"""

from django.db import migrations, models

POSTGRESQL_TRIGGERS = """
CREATE FUNCTION annotate_judgment_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE annotate_item AS item
    SET judgment_count = item.judgment_count + added.n, is_open = item.judgment_count + added.n < batch.overlap
    FROM (SELECT item_id, count(*) AS n FROM added_rows GROUP BY item_id) AS added, annotate_batch AS batch
    WHERE item.id = added.item_id AND batch.id = item.batch_id;
    RETURN NULL;
END $$;
CREATE TRIGGER annotate_judgment_added AFTER INSERT ON annotate_judgment
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION annotate_judgment_added();

CREATE FUNCTION annotate_judgment_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE annotate_item AS item
    SET judgment_count = greatest(item.judgment_count - removed.n, 0),
        is_open = greatest(item.judgment_count - removed.n, 0) < batch.overlap
    FROM (SELECT item_id, count(*) AS n FROM removed_rows GROUP BY item_id) AS removed, annotate_batch AS batch
    WHERE item.id = removed.item_id AND batch.id = item.batch_id;
    RETURN NULL;
END $$;
CREATE TRIGGER annotate_judgment_removed AFTER DELETE ON annotate_judgment
    REFERENCING OLD TABLE AS removed_rows FOR EACH STATEMENT EXECUTE FUNCTION annotate_judgment_removed();

CREATE FUNCTION annotate_judgment_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE annotate_item SET judgment_count = greatest(judgment_count - 1, 0),
        is_open = greatest(judgment_count - 1, 0) < (SELECT overlap FROM annotate_batch WHERE id = batch_id)
    WHERE id = OLD.item_id;
    UPDATE annotate_item SET judgment_count = judgment_count + 1,
        is_open = judgment_count + 1 < (SELECT overlap FROM annotate_batch WHERE id = batch_id)
    WHERE id = NEW.item_id;
    RETURN NULL;
END $$;
CREATE TRIGGER annotate_judgment_moved AFTER UPDATE OF item_id ON annotate_judgment
    FOR EACH ROW WHEN (OLD.item_id IS DISTINCT FROM NEW.item_id) EXECUTE FUNCTION annotate_judgment_moved();

CREATE FUNCTION annotate_batch_overlap_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE annotate_item SET is_open = judgment_count < NEW.overlap
    WHERE batch_id = NEW.id AND is_open IS DISTINCT FROM (judgment_count < NEW.overlap);
    RETURN NULL;
END $$;
CREATE TRIGGER annotate_batch_overlap_changed AFTER UPDATE OF overlap ON annotate_batch
    FOR EACH ROW WHEN (OLD.overlap IS DISTINCT FROM NEW.overlap) EXECUTE FUNCTION annotate_batch_overlap_changed();
"""

POSTGRESQL_DROP = """
DROP TRIGGER IF EXISTS annotate_judgment_added ON annotate_judgment;
DROP TRIGGER IF EXISTS annotate_judgment_removed ON annotate_judgment;
DROP TRIGGER IF EXISTS annotate_judgment_moved ON annotate_judgment;
DROP TRIGGER IF EXISTS annotate_batch_overlap_changed ON annotate_batch;
DROP FUNCTION IF EXISTS annotate_judgment_added();
DROP FUNCTION IF EXISTS annotate_judgment_removed();
DROP FUNCTION IF EXISTS annotate_judgment_moved();
DROP FUNCTION IF EXISTS annotate_batch_overlap_changed();
"""

SQLITE_TRIGGERS = [
    """CREATE TRIGGER annotate_judgment_added AFTER INSERT ON annotate_judgment BEGIN
        UPDATE annotate_item SET judgment_count = judgment_count + 1,
            is_open = judgment_count + 1 < (SELECT overlap FROM annotate_batch WHERE id = annotate_item.batch_id)
        WHERE id = NEW.item_id;
    END""",
    """CREATE TRIGGER annotate_judgment_removed AFTER DELETE ON annotate_judgment BEGIN
        UPDATE annotate_item SET judgment_count = max(judgment_count - 1, 0),
            is_open = max(judgment_count - 1, 0) < (SELECT overlap FROM annotate_batch WHERE id = annotate_item.batch_id)
        WHERE id = OLD.item_id;
    END""",
    """CREATE TRIGGER annotate_judgment_moved AFTER UPDATE OF item_id ON annotate_judgment
    WHEN OLD.item_id IS NOT NEW.item_id BEGIN
        UPDATE annotate_item SET judgment_count = max(judgment_count - 1, 0),
            is_open = max(judgment_count - 1, 0) < (SELECT overlap FROM annotate_batch WHERE id = annotate_item.batch_id)
        WHERE id = OLD.item_id;
        UPDATE annotate_item SET judgment_count = judgment_count + 1,
            is_open = judgment_count + 1 < (SELECT overlap FROM annotate_batch WHERE id = annotate_item.batch_id)
        WHERE id = NEW.item_id;
    END""",
    """CREATE TRIGGER annotate_batch_overlap_changed AFTER UPDATE OF overlap ON annotate_batch
    WHEN OLD.overlap IS NOT NEW.overlap BEGIN
        UPDATE annotate_item SET is_open = judgment_count < NEW.overlap WHERE batch_id = NEW.id;
    END""",
]

SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "annotate_judgment_added",
        "annotate_judgment_removed",
        "annotate_judgment_moved",
        "annotate_batch_overlap_changed",
    )
]

# Existing rows: count what is there once.
FILL = [
    "UPDATE annotate_item SET judgment_count = "
    "(SELECT count(*) FROM annotate_judgment WHERE annotate_judgment.item_id = annotate_item.id)",
    "UPDATE annotate_item SET is_open = "
    "judgment_count < (SELECT overlap FROM annotate_batch WHERE annotate_batch.id = annotate_item.batch_id)",
    # Whether an open HIT was ever idle is not known: assume it was, so its ratings keep the given-back check.
    "UPDATE annotate_hit SET was_idle = TRUE WHERE submitted_at IS NULL",
]


def create_triggers(apps, schema_editor) -> None:
    for sql in FILL:
        schema_editor.execute(sql)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_TRIGGERS)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_TRIGGERS:
            schema_editor.execute(sql)
    else:
        raise NotImplementedError(f"No assignment-state triggers for {schema_editor.connection.vendor}.")


def drop_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0007_review_and_uncertainty"),
    ]

    operations = [
        migrations.AddField(
            model_name="hit",
            name="was_idle",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddField(
            model_name="item",
            name="is_open",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AddField(
            model_name="item",
            name="judgment_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                condition=models.Q(("is_open", True)), fields=["batch", "id"], name="item_open_in_batch"
            ),
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                condition=models.Q(("gold__isnull", False)), fields=["batch", "id"], name="item_gold_in_batch"
            ),
        ),
        migrations.AddIndex(
            model_name="hit",
            index=models.Index(
                condition=models.Q(("submitted_at__isnull", True)), fields=["last_activity_at"], name="hit_open"
            ),
        ),
        # Last: its UPDATEs leave deferred constraint checks pending, and PostgreSQL then refuses CREATE INDEX.
        migrations.RunPython(create_triggers, drop_triggers),
    ]
