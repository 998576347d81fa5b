"""The role groups (annotator, curator, researcher, admin) and the custom permissions they bundle: runs/roles.py."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from runs.roles import sync_role_groups


def create_role_groups(apps, schema_editor) -> None:
    # Model permissions are made by post_migrate, after every migration: on a new database they do not exist yet.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0001_initial"),
        ("annotate", "0002_batch_priority"),
        ("rewardmodel", "0004_run_outbox_lost_worker_resume"),
        ("policy", "0004_run_outbox_lost_worker_resume"),
    ]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
