"""Concurrent annotators through the annotation services: is any judgment lost, doubled or over-assigned?

N annotators, each a thread, all started at once (a barrier). Each loops "assign_hit → rate every sample (random
rating) → submit_hit" until it has M successful ratings or no work is left for it. Then the database is counted:

- lost: ratings that returned OK minus judgments stored (every slot is rated once, so they must be equal);
- doubled: (annotator, item) pairs with more than one judgment, and pairs handed to one annotator in two HITs;
- over-assigned: items with more judgments than the batch's overlap, and items handed to more annotators than it.

Every service call runs like a web request: it takes one of `--db-connections` slots (PostgreSQL allows 100
connections by default, so 200 annotators cannot each hold one), opens its own connection and closes it at the
end. Each overlap gets a fresh batch of `annotators × ratings / overlap × 1.1` items (plus one HIT's worth) and fresh
users; earlier batches are deactivated so only this run's items are handed out.

    createdb -h 127.0.0.1 -U postgres arbiter_benchconc
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_benchconc \\
      .venv/bin/python manage.py migrate --settings=tests.settings
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_benchconc \\
      .venv/bin/python bench/bench_concurrency.py --annotators 200 --ratings 50 --overlap 1 3

Prints one JSON line: a result per overlap. Needs PostgreSQL (SKIP LOCKED); exits 1 if anything is lost, doubled
or over-assigned.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import OperationalError, connection  # noqa: E402
from django.db.models import Count  # noqa: E402

from annotate.models import Batch, Hit, HitSlot, Item, Judgment, Rating  # noqa: E402
from annotate.services import AnnotationError, assign_hit, rate_item, submit_hit  # noqa: E402

RATINGS = [int(value) for value in Rating.values]
# How many times one call is sent again after PostgreSQL ended it with "deadlock detected".
RETRIES = 5


class LoadSampler:
    """The 1-minute load average every few seconds while the run lasts."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2)}


class Annotator(threading.Thread):
    def __init__(self, user, ratings: int, slots: threading.BoundedSemaphore, start: threading.Barrier, seed: int):
        super().__init__(daemon=True)
        self.user, self.ratings, self.slots, self.start_together = user, ratings, slots, start
        self.rng = random.Random(seed)
        self.ok = 0
        self.hits = 0
        self.no_work = False
        self.errors: Counter[str] = Counter()
        self.deadlocks: Counter[str] = Counter()

    def call(self, fn, *args):
        """One service call as one request: a connection slot, a fresh connection, closed afterwards.

        A call PostgreSQL ends with "deadlock detected" (its transaction rolled back, a 500 on the web) is counted
        and sent again, as the annotator's next click would; anything else is raised."""
        name = getattr(fn, "__name__", "call")
        for attempt in range(RETRIES + 1):
            with self.slots:
                try:
                    return fn(*args)
                except OperationalError as exc:
                    if "deadlock detected" not in str(exc) or attempt == RETRIES:
                        raise
                    self.deadlocks[name] += 1
                finally:
                    connection.queries_log.clear()  # DEBUG is on under tests.settings
                    connection.close()

    def run(self) -> None:
        self.start_together.wait()
        try:
            while self.ok < self.ratings:
                hit = self.call(assign_hit, self.user)
                if hit is None:
                    self.no_work = True
                    return
                self.hits += 1
                positions = self.call(lambda h=hit: [s.position for s in h.ordered_slots()])
                for position in positions:
                    try:
                        self.call(rate_item, hit, position, self.rng.choice(RATINGS), self.rng.randint(500, 20_000))
                        self.ok += 1
                    except AnnotationError as exc:
                        self.errors[f"rate: {type(exc).__name__}: {exc}"] += 1
                try:
                    self.call(submit_hit, hit)
                except AnnotationError as exc:
                    self.errors[f"submit: {exc}"] += 1
                    return  # the HIT would come back from assign_hit for ever
        except Exception as exc:  # counted, never fatal: the count afterwards is the point
            self.errors[f"{type(exc).__name__}: {exc}".splitlines()[0][:200]] += 1
        finally:
            connection.close()


def make_batch(name: str, n_items: int, overlap: int, samples_per_hit: int) -> Batch:
    Batch.objects.filter(active=True).update(active=False)
    batch = Batch.objects.create(name=name, overlap=overlap, samples_per_hit=samples_per_hit)
    Item.objects.bulk_create(
        (
            Item(
                batch=batch,
                external_id=str(i),
                prompt=[{"role": "user", "content": f"Question number {i}?"}],
                response_1=f"first answer {i}",
                response_2=f"second answer {i}",
            )
            for i in range(n_items)
        ),
        batch_size=2000,
    )
    return batch


def make_users(prefix: str, n: int) -> list:
    User = get_user_model()
    User.objects.bulk_create(User(username=f"{prefix}-{i}", password="!") for i in range(n))  # unusable password
    return list(User.objects.filter(username__startswith=f"{prefix}-").order_by("pk"))


def run_once(annotators: int, ratings: int, overlap: int, samples_per_hit: int, db_connections: int, seed: int):
    stamp = f"conc-{int(time.time())}-o{overlap}"
    n_items = math.ceil(annotators * ratings / overlap * 1.1) + samples_per_hit
    batch = make_batch(stamp, n_items, overlap, samples_per_hit)
    users = make_users(stamp, annotators)
    connection.close()

    slots = threading.BoundedSemaphore(db_connections)
    barrier = threading.Barrier(annotators)
    threads = [Annotator(user, ratings, slots, barrier, seed * 100_003 + i) for i, user in enumerate(users)]
    with LoadSampler() as load:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started

    ok = sum(t.ok for t in threads)
    judgments = Judgment.objects.filter(item__batch=batch)
    stored = judgments.count()
    doubled_judgments = judgments.values("annotator", "item").annotate(n=Count("pk")).filter(n__gt=1).count()
    slots_of_batch = HitSlot.objects.filter(hit__batch=batch)
    doubled_slots = slots_of_batch.values("hit__annotator", "item").annotate(n=Count("pk")).filter(n__gt=1).count()
    over_judged = Item.objects.filter(batch=batch).annotate(n=Count("judgments")).filter(n__gt=overlap).count()
    over_handed = (
        slots_of_batch.values("item").annotate(n=Count("hit__annotator", distinct=True)).filter(n__gt=overlap).count()
    )
    errors: Counter[str] = Counter()
    deadlocks: Counter[str] = Counter()
    for thread in threads:
        errors.update(thread.errors)
        deadlocks.update(thread.deadlocks)
    return {
        "overlap": overlap,
        "annotators": annotators,
        "ratings_each": ratings,
        "samples_per_hit": samples_per_hit,
        "items": n_items,
        "db_connections": db_connections,
        "ratings_ok": ok,
        "judgments_stored": stored,
        "lost": ok - stored,
        "doubled_judgments": doubled_judgments,
        "doubled_assignments": doubled_slots,
        "over_assigned_judgments": over_judged,
        "over_assigned_slots": over_handed,
        "hits": sum(t.hits for t in threads),
        "hits_submitted": Hit.objects.filter(batch=batch, submitted_at__isnull=False).count(),
        "annotators_short_of_work": sum(t.no_work for t in threads),
        "deadlocks_retried": dict(deadlocks),
        "errors": dict(errors.most_common(10)),
        "seconds": round(seconds, 1),
        "ratings_per_second": round(ok / seconds, 1),
        "load_avg_1min": load.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--ratings", type=int, default=50, help="successful ratings per annotator")
    parser.add_argument("--overlap", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--samples-per-hit", type=int, default=5)
    parser.add_argument("--db-connections", type=int, default=40, help="service calls at once (one connection each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        parser.error("needs PostgreSQL: set DATABASE_URL (SQLite serialises assignment and proves nothing here)")
    results = [
        run_once(args.annotators, args.ratings, overlap, args.samples_per_hit, args.db_connections, args.seed)
        for overlap in args.overlap
    ]
    print(json.dumps({"bench": "concurrency", "results": results}), flush=True)
    bad = any(
        r["lost"]
        or r["doubled_judgments"]
        or r["doubled_assignments"]
        or r["over_assigned_judgments"]
        or r["over_assigned_slots"]
        or r["errors"]
        for r in results
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
