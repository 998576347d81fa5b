"""Demo users and a small demo batch, written for this project; safe to run again."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import ngettext

from annotate.models import Batch, Item

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
ITEMS_FILE = DEMO_DIR / "demo_items.jsonl"
GUIDELINES_FILE = DEMO_DIR / "guidelines.md"
BATCH_NAME = "demo"
# (username, password, staff)
DEMO_USERS = [
    ("alice", "alice-demo", False),
    ("bob", "bob-demo", False),
    ("admin", "admin-demo", True),
]


def read_demo_items(path: Path = ITEMS_FILE) -> list[dict]:
    """The demo file: the "plain" import format (id, prompt, response_1, response_2) plus an optional "input"."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            prompt = record["prompt"]
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            items.append(
                {
                    "external_id": str(record["id"]),
                    "prompt": messages,
                    "prompt_input": record.get("input", ""),
                    "response_1": record["response_1"],
                    "response_2": record["response_2"],
                    "source": {"format": "plain", "file": path.name, "line": number},
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{path}: line {number}: {exc!r}") from exc
    return items


class Command(BaseCommand):
    help = "Create the demo users (alice, bob, admin) and the demo batch; running it again changes nothing."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        users = {username: self._user(username, password, staff) for username, password, staff in DEMO_USERS}
        batch, _ = Batch.objects.get_or_create(
            name=BATCH_NAME,
            defaults={
                "guidelines": GUIDELINES_FILE.read_text(encoding="utf-8"),
                "samples_per_hit": 6,
                "overlap": 2,  # both demo annotators see every item, so agreement can be measured
                "created_by": users["admin"],
            },
        )
        created = 0
        for fields in read_demo_items():
            external_id = fields.pop("external_id")
            _, was_created = Item.objects.update_or_create(batch=batch, external_id=external_id, defaults=fields)
            created += was_created
        count = batch.items.count()
        items = ngettext("%(n)d item", "%(n)d items", count) % {"n": count}
        self.stdout.write(f"Demo batch {batch.name!r}: {items} ({created} new).")
        self.stdout.write("Demo logins:")
        for username, password, staff in DEMO_USERS:
            role = "staff (admin, dashboards)" if staff else "annotator"
            self.stdout.write(f"  {username} / {password}   {role}")

    def _user(self, username: str, password: str, staff: bool):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        # Keep the printed logins true even if the demo password was changed.
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        return user
