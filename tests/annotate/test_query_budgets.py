"""What one annotator action costs the database, through the API and through the HIT page (htmx).

Budgets in SQL statements that do work: rate ≤ 4, next with a current HIT ≤ 5, next making a new HIT ≤ 8. Django's
query log also counts each transaction's two control statements (BEGIN and COMMIT; SAVEPOINT and RELEASE inside a
test's transaction), and the page's session sign-in reads two rows (the session, the user) on every request: both are
added to what django_assert_max_num_queries allows, and the work statements are checked against the bare budget.
API clients here are signed in without a query (force_authenticate); a token costs one more (accounts.tokens).
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Hit, Judgment
from annotate.services import assign_hit
from tests.annotate.factories import make_batch

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="budgets are PostgreSQL's (the server)")

RATE, NEXT_CURRENT, NEXT_NEW = 4, 5, 8
TRANSACTION = 2  # BEGIN/COMMIT, or SAVEPOINT/RELEASE in a test
SESSION_SIGN_IN = 2  # django_session row, auth_user row
TRANSACTION_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT)\b", re.IGNORECASE)


def work(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not TRANSACTION_CONTROL.match(q["sql"])]


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def page(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def batch(db):
    return make_batch(n_items=60, samples_per_hit=6, overlap=2, guidelines="Prefer **helpful** answers.")


def check(django_assert_max_num_queries, budget: int, extra: int, action, sign_in: int = 0) -> object:
    """Run `action` within `budget` work statements (+ `sign_in` for the session), `extra` control statements."""
    with django_assert_max_num_queries(budget + sign_in + extra) as queries:
        response = action()
    statements = work(queries)
    assert len(statements) <= budget + sign_in, "\n\n".join(statements)
    return response


def test_api_rate_next_and_new_hit_stay_within_budget(api, alice, batch, django_assert_max_num_queries):
    new = check(django_assert_max_num_queries, NEXT_NEW, TRANSACTION, lambda: api.post("/api/hits/next/"))
    assert new.status_code == 200 and len(new.json()["samples"]) == 6
    hit_id = new.json()["id"]
    rate = lambda position, rating: api.post(  # noqa: E731
        f"/api/hits/{hit_id}/rate/", {"position": position, "rating": rating, "elapsed_ms": 900}, format="json"
    )
    first = check(django_assert_max_num_queries, RATE, TRANSACTION, lambda: rate(1, 2))
    assert first.status_code == 200 and first.json()["completed"] == 1
    changed = check(django_assert_max_num_queries, RATE, TRANSACTION, lambda: rate(1, -1))
    assert changed.json()["rating"] == -1 and changed.json()["time_ms"] == 1800
    current = check(django_assert_max_num_queries, NEXT_CURRENT, TRANSACTION, lambda: api.post("/api/hits/next/"))
    assert current.json()["id"] == hit_id and current.json()["completed"] == 1
    assert Judgment.objects.filter(annotator=alice).count() == 1


def test_page_rate_next_and_new_hit_stay_within_budget(page, alice, batch, django_assert_max_num_queries):
    new = check(
        django_assert_max_num_queries, NEXT_NEW, TRANSACTION, lambda: page.post(reverse("next_hit")), SESSION_SIGN_IN
    )
    hit = Hit.objects.get(annotator=alice)
    assert new.status_code == 302 and new.url == reverse("hit", args=[hit.pk])
    page.get(reverse("hit", args=[hit.pk]))  # the first view renders and keeps the texts' HTML
    # The rating sends the next sample along (rendered once ever, like any first view): render it here first.
    page.get(reverse("hit", args=[hit.pk]) + "?sample=2")
    htmx = {"HX-Request": "true"}
    url = reverse("hit_rate", args=[hit.pk])
    for rating in (2, -1):
        rated = check(
            django_assert_max_num_queries,
            RATE,
            TRANSACTION,
            lambda rating=rating: page.post(url, {"position": 1, "rating": rating, "elapsed_ms": 900}, headers=htmx),
            SESSION_SIGN_IN,
        )
        assert rated.status_code == 200 and "1/6 completed" in rated.content.decode()
    page.get(reverse("hit", args=[hit.pk]) + "?sample=2")
    moved = check(
        django_assert_max_num_queries,
        NEXT_CURRENT,
        0,
        lambda: page.get(reverse("hit", args=[hit.pk]) + "?sample=2", headers=htmx),
        SESSION_SIGN_IN,
    )
    assert moved.status_code == 200 and 'data-position="2"' in moved.content.decode()
    current = check(
        django_assert_max_num_queries,
        NEXT_CURRENT,
        TRANSACTION,
        lambda: page.post(reverse("next_hit")),
        SESSION_SIGN_IN,
    )
    assert current.url == reverse("hit", args=[hit.pk])


def test_the_service_alone_assigns_in_seven_statements(alice, batch):
    with CaptureQueriesContext(connection) as queries:
        assign_hit(alice)
    assert len(work(queries)) <= NEXT_NEW - 1, "\n\n".join(work(queries))
