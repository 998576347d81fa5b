"""Where one annotator's request spends its time, in-process: cProfile over N rounds of "next → rate ×6 → submit".

Runs the Django test client against the database in DATABASE_URL (a fresh batch and user per run), through the API
(force-authenticated) or the HIT page (session, htmx headers), and prints the share of time by area: the database
driver (waiting on PostgreSQL), SQL compilation, other ORM work, DRF, templates, the rest. No server, no network:
this is the CPU side of a request, which is what 2 cores run out of under load.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_assign DEBUG=true ALLOWED_HOSTS=testserver \\
      nice -n 19 .venv/bin/python bench/profile_requests.py --path api --rounds 30
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from annotate.models import Batch, Hit, Item  # noqa: E402

AREAS = [
    ("database driver (PostgreSQL round trips)", ("psycopg",)),
    ("SQL compilation", ("django/db/models/sql/",)),
    ("other ORM", ("django/db/",)),
    ("DRF", ("rest_framework/",)),
    ("templates", ("django/template/", "template_partials")),
    ("markdown", ("markdown_it", "nh3")),
]


def area_of(filename: str) -> str:
    for name, markers in AREAS:
        if any(marker in filename for marker in markers):
            return name
    return "rest (Django request handling, middleware, app code)"


def run_rounds(path: str, rounds: int) -> tuple[int, float]:
    stamp = time.strftime("%H%M%S")
    Batch.objects.filter(active=True).update(active=False)
    batch = Batch.objects.create(name=f"profile-{stamp}-{time.time_ns()}", samples_per_hit=6, overlap=1)
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
            response_1=f"It is **{2 * i}**.",
            response_2=f"The answer is {2 * i}, because {i} + {i} = {2 * i}.",
        )
        for i in range(rounds * 6 + 6)
    )
    user = get_user_model().objects.create_user(username=f"profile-{stamp}-{time.time_ns()}")
    requests = 0
    started = time.perf_counter()
    if path == "api":
        client = APIClient()
        client.force_authenticate(user)
        for _ in range(rounds):
            hit = client.post("/api/hits/next/").json()
            for sample in hit["samples"]:
                client.post(f"/api/hits/{hit['id']}/rate/", {"position": sample["position"], "rating": 2}, "json")
            client.post(f"/api/hits/{hit['id']}/submit/")
            requests += 8
    else:
        client = Client()
        client.force_login(user)
        htmx = {"HX-Request": "true"}
        for _ in range(rounds):
            client.post("/hit/next/")
            hit = Hit.objects.filter(annotator=user, submitted_at__isnull=True).get()
            client.get(f"/hit/{hit.pk}/")
            for position in range(1, 7):
                client.post(f"/hit/{hit.pk}/rate/", {"position": position, "rating": 2}, headers=htmx)
                if position < 6:
                    client.get(f"/hit/{hit.pk}/?sample={position + 1}", headers=htmx)
            client.post(f"/hit/{hit.pk}/submit/")
            requests += 14
    return requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", choices=["api", "browser"], default="api")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    run_rounds(args.path, 2)  # warm up: first-request imports and URL resolver caches are not the steady state
    profiler = cProfile.Profile()
    profiler.enable()
    requests, elapsed = run_rounds(args.path, args.rounds)
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = {}
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        by_area[area_of(filename)] = by_area.get(area_of(filename), 0.0) + tottime
        total += tottime
    print(f"{args.path}: {requests} requests in {elapsed:.2f} s, {1000 * elapsed / requests:.1f} ms per request")
    for area, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * seconds / total:5.1f} %  {area}")


if __name__ == "__main__":
    main()
