"""Broker down: ratings never need it, and runs started meanwhile start once it is back.

1. With the Celery broker at a dead Redis port (`--dead-broker`, nothing listening), N ratings through the
   annotation services (assign_hit → rate every sample → submit_hit): how many returned OK and are stored.
2. Still with the broker down, M reward runs through `start_reward_run(..., dispatch=True)` (tiny data, default
   options; nothing trains): how many answered and are queued "waiting for the broker" (never sent).
3. The app pointed at a live Redis (`--live-broker`, a database nobody else uses), the watchdog's outbox pass
   (`runs.watchdog.resend_queued_runs`, what Celery beat runs every minute) once: how many runs were sent
   (`dispatched_at` set). No worker: the messages are flushed from that Redis database at the end.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_benchconc \\
      .venv/bin/python bench/bench_broker_down.py --ratings 200 --runs 20

Prints one JSON line; exits 1 unless all three are 100 %. Other queued runs in the database would be re-sent too:
use a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
DEAD_BROKER = "redis://127.0.0.1:6390/0"
LIVE_BROKER = "redis://127.0.0.1:6379/12"

import django  # noqa: E402
import redis  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from annotate.models import Batch, Item, Judgment, Rating  # noqa: E402
from annotate.services import assign_hit, rate_item, submit_hit  # noqa: E402
from arbiter.celery import app  # noqa: E402
from rewardmodel.models import RewardModelRun  # noqa: E402
from rewardmodel.services import start_reward_run  # noqa: E402
from runs.models import RunStatus  # noqa: E402
from runs.watchdog import resend_queued_runs  # noqa: E402


def point_celery_at(url: str) -> None:
    """This process's Celery app sends to `url` from now on (its connection pools are dropped, as in the tests)."""
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dead-broker", default=DEAD_BROKER)
    parser.add_argument("--live-broker", default=LIVE_BROKER)
    args = parser.parse_args()
    rng = random.Random(1)
    stamp = f"broker-down-{int(time.time())}"
    User = get_user_model()
    annotator = User.objects.create_user(f"{stamp}-annotator", password=None)
    researcher = User.objects.create_user(f"{stamp}-researcher", password=None)
    # First in queue order (highest priority), so the annotator gets this batch's items whatever else is active.
    top = max(Batch.objects.values_list("priority", flat=True), default=0)
    batch = Batch.objects.create(name=stamp, samples_per_hit=5, priority=top + 1)
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question number {i}?"}],
            response_1=f"first answer {i}",
            response_2=f"second answer {i}",
        )
        for i in range(args.ratings)
    )

    point_celery_at(args.dead_broker)
    started = time.perf_counter()
    ok = 0
    while ok < args.ratings:
        hit = assign_hit(annotator)
        if hit is None:
            break
        for slot in hit.ordered_slots():
            rate_item(hit, slot.position, rng.choice(Rating.values), 1000)
            ok += 1
        submit_hit(hit)
    stored = Judgment.objects.filter(item__batch=batch, annotator=annotator).count()
    ratings_seconds = time.perf_counter() - started

    started = time.perf_counter()
    runs = [
        start_reward_run(researcher, [batch], dispatch=True, epochs=1, batch_size=4)  # sent on commit: fails
        for _ in range(args.runs)
    ]
    start_seconds = time.perf_counter() - started
    for run in runs:
        run.refresh_from_db()
    waiting = sum(run.status == RunStatus.QUEUED and run.waiting_for_broker for run in runs)

    point_celery_at(args.live_broker)
    try:
        resent = resend_queued_runs()
        ids = [run.pk for run in runs]
        dispatched = RewardModelRun.objects.filter(pk__in=ids, dispatched_at__isnull=False).count()
        still_queued = RewardModelRun.objects.filter(pk__in=ids, status=RunStatus.QUEUED).count()
    finally:
        redis.Redis.from_url(args.live_broker).flushdb()  # the sent messages: no worker will take them
        point_celery_at(args.dead_broker)
        RewardModelRun.objects.filter(pk__in=[run.pk for run in runs]).update(
            status=RunStatus.CANCELLED, cancel_requested=True
        )  # never re-sent by a later watchdog pass on this scratch database

    result = {
        "bench": "broker_down",
        "dead_broker": args.dead_broker,
        "live_broker": args.live_broker,
        "ratings_ok": ok,
        "ratings_stored": stored,
        "ratings_saved_percent": percent(stored, args.ratings),
        "ratings_seconds": round(ratings_seconds, 1),
        "runs_started": len(runs),
        "runs_waiting_for_broker": waiting,
        "runs_waiting_percent": percent(waiting, args.runs),
        "start_seconds_each": round(start_seconds / max(1, len(runs)), 2),
        "resent_by_watchdog": resent,
        "runs_dispatched_after": dispatched,
        "runs_dispatched_percent": percent(dispatched, args.runs),
        "runs_still_queued": still_queued,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    full = (result["ratings_saved_percent"], result["runs_waiting_percent"], result["runs_dispatched_percent"])
    return 0 if full == (100.0, 100.0, 100.0) else 1


if __name__ == "__main__":
    sys.exit(main())
