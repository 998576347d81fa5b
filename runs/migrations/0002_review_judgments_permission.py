"""The curator role gains "Can review judgments" (the disagreement review queue): re-sync the role groups."""

import importlib

from django.db import migrations

_role_groups = importlib.import_module("runs.migrations.0001_role_groups")


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_role_groups"),
        ("annotate", "0007_review_and_uncertainty"),
        ("rewardmodel", "0006_item_scores_and_ordering"),
    ]

    operations = [migrations.RunPython(_role_groups.create_role_groups, migrations.RunPython.noop)]
