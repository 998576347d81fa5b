"""What `bin/test` removes when a run ends: the Celery/kombu keys its worker tests left in the test Redis database
and the temporary ARBITER_VAR_DIR it made. Run as `python -m tests.cleanup [--redis URL] [--var-dir DIR]`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# kombu's Redis transport: exchange bindings, the queues of our two Celery queues, and unacked-message bookkeeping.
KOMBU_KEY_PATTERNS = ("_kombu.*", "unacked*", "celery", "gpu")


def clean_redis(url: str) -> int:
    """Delete the kombu/Celery keys in the database of `url`; other keys stay. Returns how many went."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = {key for pattern in KOMBU_KEY_PATTERNS for key in client.scan_iter(match=pattern)}
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def clean_var_dir(path: str) -> bool:
    """Remove the run's temporary var folder; True when there was one."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="", help="Redis URL of the test database to clear of kombu keys.")
    parser.add_argument("--var-dir", default="", help="Temporary ARBITER_VAR_DIR to remove.")
    args = parser.parse_args(argv)
    if args.redis:
        clean_redis(args.redis)
    if args.var_dir:
        clean_var_dir(args.var_dir)


if __name__ == "__main__":
    main()
