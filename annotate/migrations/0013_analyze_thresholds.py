"""Autovacuum analyzes the tables assignment grows after 500 rows plus 2 % changed, not 50 rows plus 10 % (issue 23).

PostgreSQL only (per-table storage parameters); nothing on SQLite. annotate.table_statistics says why.
"""

from django.db import migrations

TABLES = ("annotate_hit", "annotate_hitslot", "annotate_judgment", "annotate_item")
PARAMETERS = ("autovacuum_analyze_scale_factor", "autovacuum_analyze_threshold")


def set_thresholds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(
            f"ALTER TABLE {table} SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 500)"
        )


def reset_thresholds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET ({', '.join(PARAMETERS)})")


class Migration(migrations.Migration):
    dependencies = [("annotate", "0012_importjob_dispatch_attempts_importjob_dispatched_at")]

    operations = [migrations.RunPython(set_thresholds, reset_thresholds)]
