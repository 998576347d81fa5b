"""The staff roles: Django groups that bundle the permissions the admin, the dashboards and the API check.

annotator   nothing: annotators work on their own HITs and judgments, which needs no permission
curator     batches, items, import, the queue and gold answers, reviewing judgments (mark wrong / confirm)
researcher  reward-model and policy runs (see, start, cancel, resume, send to annotators), exports, quality
admin       every permission (superusers have them all anyway)

The groups are made by a data migration (runs/migrations) and can be assigned in the admin (Users → Groups).
`sync_role_groups` is idempotent: the migration calls it, and so do `create_demo` and the tests, because a test
database that was flushed has lost its groups.
"""

from __future__ import annotations

from django.apps import apps as global_apps

ANNOTATOR, CURATOR, RESEARCHER, ADMIN = "annotator", "curator", "researcher", "admin"

# Permissions the model ones (add / change / delete / view) do not express, as (app_label, model, codename, name).
# Made here rather than in the models' Meta so that no app needs a schema migration for them.
CUSTOM_PERMISSIONS = [
    ("annotate", "judgment", "export_judgments", "Can export judgments as preference data"),
    ("annotate", "judgment", "export_usernames", "Can export annotators' real usernames"),
    ("annotate", "judgment", "view_quality", "Can view annotation quality figures"),
    ("annotate", "judgment", "review_judgments", "Can review judgments (mark wrong or confirm)"),
    ("policy", "policyrun", "send_policyrun", "Can send a policy run's answers to annotators"),
]


def _model_permissions(app_label: str, model: str, *verbs: str) -> list[str]:
    return [f"{app_label}.{verb}_{model}" for verb in verbs]


ROLE_PERMISSIONS: dict[str, list[str] | None] = {
    ANNOTATOR: [],
    CURATOR: [
        *_model_permissions("annotate", "batch", "view", "add", "change", "delete"),
        *_model_permissions("annotate", "item", "view", "add", "change", "delete"),
        "annotate.review_judgments",
    ],
    RESEARCHER: [
        "annotate.view_batch",  # to choose the batches a run trains on
        "annotate.export_judgments",
        "annotate.view_quality",
        *_model_permissions("rewardmodel", "rewardmodelrun", "view", "add", "change"),
        "rewardmodel.view_rewardmodellog",
        *_model_permissions("policy", "policyrun", "view", "add", "change"),
        "policy.send_policyrun",
        "policy.view_policylog",
        "policy.view_policysample",
    ],
    ADMIN: None,  # every permission there is
}


def sync_role_groups(apps=global_apps) -> None:
    """Create the custom permissions and the role groups, and give each group exactly its permissions.

    `apps` is the migration's historical registry, or the live one; the model permissions must exist already
    (the migration creates them first; post_migrate has made them everywhere else).
    """
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        Permission.objects.update_or_create(content_type=content_type, codename=codename, defaults={"name": name})
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        if names is None:
            group.permissions.set(Permission.objects.all())
            continue
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
