"""`manage.py create_demo`: users that can log in and a demo batch that shows every kind of item."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotate.models import Batch, Item
from annotate.rendering import render_markdown


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def development(settings):
    """bin/run's set-up: DEBUG on (pytest-django runs tests with it off)."""
    settings.DEBUG = True


def test_creates_users_and_batch_and_prints_logins(db, client, development):
    output = run()
    for login in ("alice / alice-demo", "bob / bob-demo", "admin / admin-demo"):
        assert login in output
    assert client.login(username="alice", password="alice-demo")
    assert client.login(username="admin", password="admin-demo")
    User = get_user_model()
    assert User.objects.get(username="admin").is_staff and not User.objects.get(username="bob").is_staff
    batch = Batch.objects.get(name="demo")
    assert batch.active and batch.samples_per_hit == 6 and "helpful" in batch.guidelines
    assert 10 <= batch.items.count() <= 14
    assert "12 items (12 new)" in output


def test_running_twice_changes_nothing(db, development):
    run()
    items_before = list(Item.objects.values_list("pk", "external_id", "response_1"))
    output = run()
    assert list(Item.objects.values_list("pk", "external_id", "response_1")) == items_before
    assert get_user_model().objects.count() == 3 and Batch.objects.count() == 2  # pairwise and ranking demos
    assert "(0 new)" in output


def test_demo_items_cover_input_dialogue_code_list_and_html(db):
    run()
    items = list(Batch.objects.get(name="demo").items.all())
    assert any(item.prompt_input for item in items), "a one-shot instruction with an Input"
    assert any(len(item.prompt) >= 3 and item.earlier_turns for item in items), "a multi-turn dialogue"
    rendered = [str(render_markdown(item.response_1)) + str(render_markdown(item.response_2)) for item in items]
    assert any("<pre><code>" in html for html in rendered), "a response with a code block"
    assert any("<li>" in html for html in rendered), "a response with a list"
    raw_html = [item for item in items if "<script>" in item.response_1 + item.response_2]
    assert raw_html, "a response with HTML, to show it neutralised"
    assert all("<script>" not in html for html in rendered)


def test_an_existing_users_password_is_never_overwritten(db, development):
    run()
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("a-secret-the-admin-chose")
    admin.save()
    output = run()
    admin.refresh_from_db()
    assert admin.check_password("a-secret-the-admin-chose") and not admin.check_password("admin-demo")
    assert "admin-demo" not in output and "password unchanged" in output


def test_no_superuser_with_a_known_password_when_debug_is_off(db, settings):
    settings.DEBUG = False
    output = run()
    User = get_user_model()
    assert not User.objects.filter(is_superuser=True).exists()
    assert not User.objects.filter(username="admin").exists()
    assert "admin-demo" not in output and "createsuperuser" in output
    assert Batch.objects.get(name="demo").items.count() > 0, "the demo batch is still made"
    run("--demo-admin")
    assert User.objects.get(username="admin").is_superuser, "an explicit flag creates it"


def test_the_demo_has_a_ranking_batch_of_k_4(db, alice):
    output = run()
    batch = Batch.objects.get(name="demo-rankings")
    assert batch.is_ranking and batch.ranking_size == 4 and batch.active and batch.overlap == 2
    items = list(batch.items.all())
    assert len(items) == 6 and all(item.response_count == 4 for item in items)
    assert any(item.earlier_turns for item in items), "a multi-turn prompt"
    assert "rank" in batch.guidelines.lower()
    assert "Demo batch 'demo-rankings': 6 items (6 new)." in output
    assert "Demo batch 'demo-rankings': 6 items (0 new)." in run()


def test_demo_rankings_can_be_ranked_through_the_hit(db, alice):
    from annotate.services import assign_hit, rank_item

    run()
    Batch.objects.filter(name="demo").update(active=False)
    hit = assign_hit(alice)
    assert hit.batch.name == "demo-rankings" and len(hit.ordered_slots()) == 3
    judgment = rank_item(hit, 1, [[4], [3], [2], [1]], 5000)
    assert judgment is not None and len(judgment.ranking) == 4
