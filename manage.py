#!/usr/bin/env python
import os
import sys
from pathlib import Path


def load_env_file(path: Path) -> None:
    """Read KEY=VALUE lines (bin/run writes them to var/env) into the environment; the environment wins.

    So a command typed by hand on a bin/run install uses the settings bin/run uses (DEBUG, its SECRET_KEY,
    DATABASE_URL), and a production environment that sets its own is left alone.
    """
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())


if __name__ == "__main__":
    base_dir = Path(__file__).resolve().parent
    load_env_file(Path(os.getenv("ARBITER_VAR_DIR", str(base_dir / "var"))) / "env")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
