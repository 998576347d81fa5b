"""Demo users and two small demo batches (pairwise and ranking), written for this project; safe to run again."""

from __future__ import annotations

import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import ngettext

from annotate.importers import Comparison, ImportFileError, item_for, parse_comparisons, read_text
from annotate.models import Batch, Item
from runs.roles import ADMIN, sync_role_groups

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
ITEMS_FILE = DEMO_DIR / "demo_items.jsonl"
GUIDELINES_FILE = DEMO_DIR / "guidelines.md"
BATCH_NAME = "demo"
DEMO_ITEM_FIELDS = ("prompt", "prompt_input", "response_1", "response_2", "gold")
# The ranking demo: a few prompts with K = 4 short answers each, so the demo shows both kinds of work.
RANKINGS_FILE = DEMO_DIR / "demo_rankings.jsonl"
RANKING_GUIDELINES_FILE = DEMO_DIR / "ranking_guidelines.md"
RANKING_BATCH_NAME = "demo-rankings"
RANKING_SIZE = 4
DEMO_RANKING_FIELDS = ("prompt", "prompt_input", "response_1", "response_2", "more_responses")
# (username, password, staff)
DEMO_USERS = [
    ("alice", "alice-demo", False),
    ("bob", "bob-demo", False),
    ("admin", "admin-demo", True),
]
ADMIN_USERNAME = "admin"


def read_demo_items(path: Path = ITEMS_FILE, fmt: str = "plain") -> list[Comparison]:
    """A demo file, read and checked by the importer ("plain": id, prompt, response_1, response_2, input;
    "ranking": id, prompt, responses)."""
    try:
        _, comparisons = parse_comparisons(read_text(path), fmt)
    except ImportFileError as exc:
        raise CommandError(f"{path}: {exc}") from exc
    return comparisons


class Command(BaseCommand):
    help = (
        "Create the demo users (alice, bob, and with DEBUG on or --demo-admin the superuser admin) and the demo "
        "batches: 'demo' (pairwise) and 'demo-rankings' (rank 4 responses). Users that exist are left as they are; "
        "running it again changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--demo-admin",
            action="store_true",
            help="Also create the superuser admin / admin-demo when DEBUG is off (a known password: demos only).",
        )

    @transaction.atomic
    def handle(self, *args, demo_admin: bool = False, **options) -> None:
        # A superuser whose password is printed in the README is only acceptable on a development set-up.
        with_admin = settings.DEBUG or demo_admin
        logins = []
        users = {}
        for username, password, staff in DEMO_USERS:
            if staff and not with_admin:
                self.stdout.write(
                    f"Not creating the superuser {username!r}: DEBUG is off. Use `manage.py createsuperuser`, "
                    "or --demo-admin for a demo."
                )
                continue
            users[username], created = self._user(username, password, staff)
            role = "staff (admin, dashboards)" if staff else "annotator"
            shown_password = password if created else "(existing user: password unchanged)"
            logins.append(f"  {username} / {shown_password}   {role}")
        batch, _ = Batch.objects.get_or_create(
            name=BATCH_NAME,
            defaults={
                "guidelines": GUIDELINES_FILE.read_text(encoding="utf-8"),
                "samples_per_hit": 6,
                "overlap": 2,  # both demo annotators see every item, so agreement can be measured
                "created_by": users.get(ADMIN_USERNAME),
            },
        )
        self._load(batch, read_demo_items(), DEMO_ITEM_FIELDS, ITEMS_FILE)
        rankings, _ = Batch.objects.get_or_create(
            name=RANKING_BATCH_NAME,
            defaults={
                "kind": Batch.Kind.RANKING,
                "ranking_size": RANKING_SIZE,
                "guidelines": RANKING_GUIDELINES_FILE.read_text(encoding="utf-8"),
                "samples_per_hit": 3,
                "overlap": 2,  # both demo annotators rank every item: the quality page shows their Kendall's tau
                "created_by": users.get(ADMIN_USERNAME),
            },
        )
        self._load(rankings, read_demo_items(RANKINGS_FILE, "ranking"), DEMO_RANKING_FIELDS, RANKINGS_FILE)
        self.stdout.write("Demo logins:")
        for line in logins:
            self.stdout.write(line)

    def _load(self, batch: Batch, comparisons: list[Comparison], names: tuple[str, ...], path: Path) -> None:
        created = 0
        rng = random.Random(0)  # the demo records have no known answer: nothing is shuffled
        for comparison in comparisons:
            # The importer's item, updated in place when the demo is loaded again.
            item = item_for(batch, comparison, rng)
            fields = {name: getattr(item, name) for name in names}
            fields["source"] = {**item.source, "file": path.name}
            _, was_created = Item.objects.update_or_create(batch=batch, external_id=item.external_id, defaults=fields)
            created += was_created
        count = batch.items.count()
        items = ngettext("%(n)d item", "%(n)d items", count) % {"n": count}
        self.stdout.write(f"Demo batch {batch.name!r}: {items} ({created} new).")

    def _user(self, username: str, password: str, staff: bool):
        """The user, created with the demo password if missing; an existing user is never changed."""
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
            if staff:
                # A superuser has every permission anyway; the group shows the role in the admin's user list.
                sync_role_groups()  # a flushed database has lost the groups its migration made
                user.groups.add(Group.objects.get(name=ADMIN))
        return user, created
