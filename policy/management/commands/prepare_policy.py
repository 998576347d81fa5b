"""The demo policy converted from its GGUF package to a plain model folder under var/models, once (bin/run)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from policy.reinforce.loading import DEFAULT_POLICY_DIRNAME, default_policy_path


class Command(BaseCommand):
    help = (
        "Convert the demo policy (SmolLM2-135M-Instruct, GGUF) to the folder policy runs load, so that a first run "
        "does not pay for it. Does nothing when it is already there."
    )

    def handle(self, *args, **options) -> None:
        models = Path(settings.VAR_DIR) / "models"
        if (models / DEFAULT_POLICY_DIRNAME / "config.json").exists():
            self.stdout.write(f"Demo policy ready at {models / DEFAULT_POLICY_DIRNAME}.")
            return
        self.stdout.write("Converting the demo policy from its GGUF (once; 15 s to 2 min)...")
        started = time.monotonic()
        try:
            path = default_policy_path(models)
        except FileNotFoundError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Demo policy ready at {path} ({time.monotonic() - started:.0f} s).")
