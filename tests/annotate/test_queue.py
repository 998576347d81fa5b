"""Batch priority: the order assignment hands batches out in, and the staff Queue page that changes it."""

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Batch, Judgment
from annotate.services import assign_hit
from tests.annotate.factories import make_batch

pytestmark = pytest.mark.django_db

QUEUE_URL = reverse("queue:index")
HTMX = {"HTTP_HX_REQUEST": "true"}


def queue_names() -> list[str]:
    return list(Batch.objects.in_queue_order().values_list("name", flat=True))


def test_assignment_takes_the_highest_priority_active_batch_first(alice, bob):
    make_batch("old", n_items=6)
    make_batch("urgent", n_items=6, priority=3)
    make_batch("paused", n_items=6, priority=9, active=False)

    assert assign_hit(alice).batch.name == "urgent"
    assert assign_hit(bob).batch.name == "old", "urgent has no items left for a second annotator (overlap 1)"


def test_equal_priorities_go_oldest_first(alice):
    make_batch("first", n_items=6)
    make_batch("second", n_items=6)

    assert assign_hit(alice).batch.name == "first"


def test_top_priority_is_above_every_active_batch():
    assert Batch.objects.top_priority() == 1
    make_batch("a", priority=4)
    make_batch("b", priority=40, active=False)
    assert Batch.objects.top_priority() == 5


def test_queue_page_is_for_staff_only(alice_client):
    assert Client().get(QUEUE_URL).status_code == 302, "anonymous visitors go to the login page"
    assert alice_client.get(QUEUE_URL).status_code == 403
    assert alice_client.post(reverse("queue:active", args=[make_batch().pk]), {"active": "false"}).status_code == 403
    assert Batch.objects.get().active


def test_queue_page_lists_batches_in_order_with_counts(charlie_client, alice):
    make_batch("old", n_items=3)
    urgent = make_batch("urgent", n_items=2, priority=2)
    make_batch("paused", n_items=4, active=False)
    Judgment.objects.create(item=urgent.items.first(), annotator=alice, rating=2)

    response = charlie_client.get(QUEUE_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert page.index(">urgent<") < page.index(">old<") < page.index(">paused<")
    rows = [(r.batch.name, r.position, r.items, r.judgments) for r in response.context["rows"]]
    assert rows == [("urgent", 1, 2, 1), ("old", 2, 3, 0), ("paused", None, 4, 0)]
    assert "Paused" in page and "Resume" in page
    assert f'href="{QUEUE_URL}"' in page, "the dashboard nav links to the queue"


def test_moving_a_batch_up_changes_who_gets_work_first(charlie_client, alice):
    make_batch("first", n_items=6)
    make_batch("second", n_items=6)

    response = charlie_client.post(reverse("queue:move", args=[Batch.objects.get(name="second").pk, "up"]), **HTMX)

    assert response.status_code == 200
    assert queue_names() == ["second", "first"]
    assert 'id="queue"' in response.content.decode(), "htmx gets the table to swap in"
    assert assign_hit(alice).batch.name == "second"


def test_moving_down_and_past_the_end(charlie_client):
    for name in ("a", "b", "c"):
        make_batch(name)
    a = Batch.objects.get(name="a")

    charlie_client.post(reverse("queue:move", args=[a.pk, "down"]), **HTMX)
    assert queue_names() == ["b", "a", "c"]
    charlie_client.post(reverse("queue:move", args=[Batch.objects.get(name="c").pk, "down"]), **HTMX)
    assert queue_names() == ["b", "a", "c"], "the last batch stays last"
    assert charlie_client.post(reverse("queue:move", args=[a.pk, "sideways"])).status_code == 400


def test_setting_a_priority(charlie_client):
    make_batch("a")
    b = make_batch("b")

    response = charlie_client.post(reverse("queue:priority", args=[b.pk]), {"priority": "7"})

    assert response.status_code == 302, "without htmx the form posts and the page reloads"
    assert queue_names() == ["b", "a"]
    bad = charlie_client.post(reverse("queue:priority", args=[b.pk]), {"priority": "soon"}, **HTMX)
    assert "must be a whole number" in bad.content.decode()
    assert Batch.objects.get(pk=b.pk).priority == 7


def test_pause_and_resume(charlie_client, alice):
    batch = make_batch("only", n_items=6)
    url = reverse("queue:active", args=[batch.pk])

    charlie_client.post(url, {"active": "false"}, **HTMX)
    assert assign_hit(alice) is None, "a paused batch hands out nothing"
    response = charlie_client.post(url, {"active": "true"}, **HTMX)
    assert "Pause" in response.content.decode()
    assert assign_hit(alice).batch == batch


def test_actions_need_post(charlie_client):
    batch = make_batch()
    assert charlie_client.get(reverse("queue:active", args=[batch.pk])).status_code == 405
