"""N closed-loop annotators against a running Arbiter: "next → rate each sample → submit", no think time. Reports
per-request p50/p95/p99 for next and rate, judgments per second and errors, then checks the database: judgments
stored == successful ratings (plus at most the ratings whose answer timed out: saved, never confirmed), and no
item judged by more annotators than its batch's overlap.

Two paths (--path):
- api: one API token per annotator; POST /api/hits/next/, /rate/ per sample, /submit/.
- browser: a signed-in session per annotator, with CSRF, making the requests the HIT page makes: POST the
  "next HIT" form and follow to the page (next); per sample the htmx rating POST (rate), whose answer carries the
  next un-marked sample (hit.js shows it without a request; the htmx GET of the next sample, nav, only when it did
  not come along); the submit form, with the time spent on rated samples. Sessions are made in setup (SessionStore,
  as a login would), so password hashing does not eat the server's CPU before the run; `--login` signs in through
  the login form instead. `requests_per_judgment` counts every request of the run per successful rating.

Statistics (--stats): `analyzed` ANALYZEs the HIT, slot, judgment and item tables before the run, with what earlier
runs left in them; `fresh` empties the HIT, slot and judgment tables first and analyzes them empty, as a new
deployment meets its first batch (it refuses to run on a database holding batches other than load-*).

The server must be reachable over plain HTTP with cookies a client keeps: start a production-configured server for
the benchmark with ARBITER_BENCH_PLAIN_HTTP=true (drops the cookies' Secure flag; `check --deploy` warns about it).

Setup and the check use the Django ORM on the same database as the server (same DATABASE_URL / settings env); the
load itself is plain HTTP (asyncio + httpx), one user and API token per annotator, so nothing is shared but the
server. Each call creates a fresh batch (`load-<timestamp>`) and fresh users (`load-<timestamp>-<n>`), and
deactivates other batches named `load-*` so annotators only get this run's items.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_load SECRET_KEY=… ALLOWED_HOSTS=127.0.0.1 \\
      .venv/bin/python bench/load_annotators.py --url http://127.0.0.1:8000 --annotators 10 --seconds 20

Loopback only: this is a load generator; point it at your own server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")

RATINGS = (-2, -1, 1, 2)


@dataclass
class Stats:
    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"next": [], "rate": [], "nav": [], "time": [], "submit": []}
    )
    requests: int = 0
    ratings_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    no_work: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


HOT_TABLES = ("annotate_hit", "annotate_hitslot", "annotate_judgment", "annotate_item")


def prepare_statistics(mode: str) -> None:
    """`fresh`: empty HIT tables analyzed empty (a new deployment); `analyzed`: every hot table analyzed now."""
    from django.db import connection

    from annotate.models import Batch

    if mode == "fresh":
        if Batch.objects.exclude(name__startswith="load-").exists():
            sys.exit("--stats fresh empties the HIT, slot and judgment tables: use a scratch database (load-* only).")
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE annotate_judgment, annotate_hitslot, annotate_hit")
            # The triggers' counters of the items left behind go back to nothing judged.
            cursor.execute("UPDATE annotate_item SET judgment_count = 0, is_open = true")
    with connection.cursor() as cursor:
        for table in HOT_TABLES:
            cursor.execute(f"ANALYZE {table}")


def setup(
    annotators: int, items: int, overlap: int, samples_per_hit: int, path: str = "api", login: bool = False
) -> tuple[str, list[str]]:
    """A fresh active batch of `items` and `annotators` users; returns (batch name, credentials).

    Credentials are API keys (path api), session keys (path browser), or passwords' usernames (browser --login).
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from accounts.tokens import issue_token
    from annotate.models import Batch, Item

    stamp = time.strftime("%Y%m%d%H%M%S") + f"{random.randrange(1000):03d}"
    name = f"load-{stamp}"
    Batch.objects.filter(name__startswith="load-").update(active=False)
    batch = Batch.objects.create(
        name=name, overlap=overlap, samples_per_hit=samples_per_hit, gold_rate=0, priority=1000
    )
    Item.objects.bulk_create(
        (
            Item(
                batch=batch,
                external_id=str(i),
                prompt=[{"role": "user", "content": f"Question number {i}: what is {i} + {i}?"}],
                response_1=f"It is {2 * i}.",
                response_2=f"The answer is {2 * i}, because {i} + {i} = {2 * i}.",
            )
            for i in range(items)
        ),
        batch_size=2000,
    )
    User = get_user_model()
    keys = []
    # One hash for every user: hashing 200 passwords would take minutes of the CPU the server needs.
    password = make_password(LOGIN_PASSWORD) if login else None
    for n in range(annotators):
        user = User.objects.create_user(username=f"{name}-{n}", password=None)
        if path == "api":
            keys.append(issue_token(user)[1])
        elif login:
            User.objects.filter(pk=user.pk).update(password=password)
            keys.append(user.username)
        else:
            keys.append(session_for(user))
    return name, keys


LOGIN_PASSWORD = "load-annotator-password"  # noqa: S105 (throwaway users of a loopback benchmark)


def session_for(user) -> str:
    """A signed-in session for `user`, as django.contrib.auth.login makes it; returns the session key."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def check(batch_name: str, ratings_ok: int) -> dict:
    """What the database holds after the load: judgments vs successful ratings, and the overlap."""
    from django.db.models import Count

    from annotate.models import Batch, Judgment

    batch = Batch.objects.get(name=batch_name)
    judgments = Judgment.objects.filter(item__batch=batch)
    stored = judgments.count()
    over = judgments.values("item").annotate(n=Count("annotator", distinct=True)).filter(n__gt=batch.overlap).count()
    return {"judgments_stored": stored, "ratings_ok": ratings_ok, "items_over_overlap": over}


async def timed_request(
    client: httpx.AsyncClient, stats: Stats, kind: str, method: str, path: str, **kwargs
) -> httpx.Response | None:
    """One request, its latency recorded under `kind`; None (and an error counted) when it failed or got >= 400."""
    started = time.perf_counter()
    stats.requests += 1
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        stats.error(f"{kind}: {type(exc).__name__}")
        return None
    stats.latencies_ms[kind].append((time.perf_counter() - started) * 1000)
    if response.status_code >= 400:
        stats.error(f"{kind}: HTTP {response.status_code}")
        return None
    return response


async def annotator(client: httpx.AsyncClient, key: str, stats: Stats, deadline: float) -> None:
    headers = {"Authorization": f"Token {key}"}

    async def post(kind: str, url: str, payload: dict | None = None) -> httpx.Response | None:
        return await timed_request(client, stats, kind, "POST", url, json=payload, headers=headers)

    while time.monotonic() < deadline:
        response = await post("next", "/api/hits/next/")
        if response is None:
            await asyncio.sleep(0.05)
            continue
        if response.status_code == 204:
            stats.no_work += 1
            return
        hit = response.json()
        for sample in hit["samples"]:
            if time.monotonic() >= deadline:
                return
            if sample["rating"] is not None:
                continue
            rated = await post(
                "rate",
                f"/api/hits/{hit['id']}/rate/",
                {"position": sample["position"], "rating": random.choice(RATINGS), "elapsed_ms": 1000},
            )
            if rated is not None:
                stats.ratings_ok += 1
        await post("submit", f"/api/hits/{hit['id']}/submit/")


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SAMPLE_DOT = re.compile(r'\?sample=(\d+)" hx-push-url="true" data-nav="goto"')
HIT_URL = re.compile(r"/hit/(\d+)/")


async def browser_annotator(url: str, credential: str, stats: Stats, deadline: float, login: bool) -> None:
    """One annotator on the HIT page: the requests its forms, htmx and hit.js make, in the order they make them."""
    async with httpx.AsyncClient(base_url=url, timeout=60, follow_redirects=True) as client:
        try:
            if login:
                form = await client.get("/accounts/login/")
                token = CSRF_INPUT.search(form.text).group(1)
                signed_in = await client.post(
                    "/accounts/login/",
                    data={"username": credential, "password": LOGIN_PASSWORD, "csrfmiddlewaretoken": token},
                )
                if signed_in.status_code != 200 or "sessionid" not in client.cookies:
                    stats.error("login")
                    return
            else:
                client.cookies.set("sessionid", credential)
            home = await client.get("/")
        except httpx.HTTPError as exc:
            stats.error(f"sign-in: {type(exc).__name__}")
            return
        match = CSRF_INPUT.search(home.text)
        csrf = match.group(1) if match else ""

        async def request(kind: str, method: str, path: str, **kwargs) -> httpx.Response | None:
            return await timed_request(client, stats, kind, method, path, **kwargs)

        while time.monotonic() < deadline:
            page = await request("next", "POST", "/hit/next/", data={"csrfmiddlewaretoken": csrf})
            if page is None:
                await asyncio.sleep(0.05)
                continue
            found = HIT_URL.search(str(page.url))
            if not found:
                stats.no_work += 1
                return
            hit_id = found.group(1)
            found_csrf = CSRF_INPUT.search(page.text)
            csrf = found_csrf.group(1) if found_csrf else csrf
            positions = [int(p) for p in dict.fromkeys(SAMPLE_DOT.findall(page.text))]
            htmx = {"HX-Request": "true", "HX-Current-URL": f"{url}/hit/{hit_id}/", "X-CSRFToken": csrf}
            times = {}  # time on rated samples since their rating: hit.js sends it with the submit
            for index, position in enumerate(positions):
                if time.monotonic() >= deadline:
                    return
                rated = await request(
                    "rate",
                    "POST",
                    f"/hit/{hit_id}/rate/",
                    data={
                        "csrfmiddlewaretoken": csrf,
                        "position": position,
                        "elapsed_ms": 1000,
                        "rating": random.choice(RATINGS),
                    },
                    headers={**htmx, "HX-Trigger": "", "HX-Target": "sample"},
                )
                if rated is None:
                    continue
                stats.ratings_ok += 1
                times[f"elapsed_ms_{position}"] = 200
                if index + 1 < len(positions):
                    # Moving on: hit.js shows the sample the rating sent along, else htmx fetches it.
                    following = positions[index + 1]
                    if f'<template id="prefetched-sample" data-position="{following}"' not in rated.text:
                        await request(
                            "nav", "GET", f"/hit/{hit_id}/?sample={following}", headers={**htmx, "HX-Target": "sample"}
                        )
            await request("submit", "POST", f"/hit/{hit_id}/submit/", data={"csrfmiddlewaretoken": csrf, **times})


def refuse_secure_cookies(url: str) -> None:
    """Exit with the fix when the server marks its cookies Secure: over plain HTTP the client drops them and every
    form POST is refused ("CSRF cookie not set")."""
    login = httpx.get(f"{url}/accounts/login/", timeout=30)
    cookies = login.headers.get_list("set-cookie")
    if url.startswith("http://") and any("csrftoken" in c and "secure" in c.lower() for c in cookies):
        sys.exit(
            "The server sets Secure cookies, which a plain-HTTP client drops: start it with "
            "ARBITER_BENCH_PLAIN_HTTP=true (benchmarks only; check --deploy warns about it)."
        )


async def load(
    url: str, keys: list[str], seconds: float, path: str = "api", login: bool = False
) -> tuple[Stats, float]:
    stats = Stats()
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.monotonic()
        if path == "api":
            await asyncio.gather(*(annotator(client, key, stats, started + seconds) for key in keys))
        else:
            await asyncio.gather(*(browser_annotator(url, key, stats, started + seconds, login) for key in keys))
        elapsed = time.monotonic() - started
    return stats, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--samples-per-hit", type=int, default=6)
    parser.add_argument("--label", default="", help="A name for this configuration, repeated in the JSON line.")
    parser.add_argument("--path", choices=["api", "browser"], default="api", help="API tokens, or the HIT page.")
    parser.add_argument("--login", action="store_true", help="browser: sign in through the login form.")
    parser.add_argument(
        "--stats", choices=["analyzed", "fresh"], default="analyzed", help="planner statistics at the start (above)"
    )
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        parser.error("--url must be a loopback address (this is a load generator).")
    if args.path == "browser":
        refuse_secure_cookies(args.url)

    batch_name, keys = setup(args.annotators, args.items, args.overlap, args.samples_per_hit, args.path, args.login)
    prepare_statistics(args.stats)
    stats, elapsed = asyncio.run(load(args.url, keys, args.seconds, args.path, args.login))
    result = {
        "label": args.label,
        "path": args.path,
        "annotators": args.annotators,
        "seconds": round(elapsed, 1),
        "stats": args.stats,
        "judgments_per_second": round(stats.ratings_ok / elapsed, 1),
        "requests_per_judgment": round(stats.requests / max(1, stats.ratings_ok), 2),
        **{
            f"{kind}_ms": {f"p{q}": round(percentile(values, q), 1) for q in (50, 95, 99)} | {"n": len(values)}
            for kind, values in stats.latencies_ms.items()
            if values
        },
        "errors": stats.errors,
        "no_work": stats.no_work,
        "check": check(batch_name, stats.ratings_ok),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    # A rating whose answer timed out on the client may still have been saved: stored may exceed the confirmed
    # ratings by at most the rate timeouts, never fall short of them.
    unconfirmed = result["check"]["judgments_stored"] - stats.ratings_ok
    timeouts = sum(n for what, n in stats.errors.items() if what.startswith("rate: ") and "Timeout" in what)
    result["check"]["saved_but_timed_out"] = unconfirmed
    ok = 0 <= unconfirmed <= timeouts and result["check"]["items_over_overlap"] == 0
    print(json.dumps(result))
    if not ok:
        sys.exit(
            "CHECK FAILED: judgments stored differ from successful ratings (beyond timed-out ones), "
            "or an item exceeds its overlap."
        )


if __name__ == "__main__":
    main()
