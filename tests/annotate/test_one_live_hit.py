"""One live HIT per annotator, also when an idle HIT is answered again (issue 19 item 14).

The fault: let a HIT go idle, take a new one, rate in the old one (200, it revived): 7 live HITs for one user.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import Hit, Judgment, Rating
from annotate.services import OtherHitLive, add_time, assign_hit, rank_item, rate_item, submit_hit
from tests.annotate.factories import make_batch, make_ranking_batch
from tests.api.conftest import api_client

pytestmark = pytest.mark.django_db


def _idle(hit: Hit) -> None:
    Hit.objects.filter(pk=hit.pk).update(last_activity_at=timezone.now() - timedelta(minutes=31))


def _live_hits(user) -> int:
    return Hit.objects.live().filter(annotator=user).count()


def test_answering_an_idle_hit_next_to_a_newer_live_one_is_refused_and_says_why(alice, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    make_batch("first", n_items=4, samples_per_hit=2, overlap=1)
    make_batch("second", n_items=4, samples_per_hit=2, overlap=1)
    old = assign_hit(alice)
    _idle(old)
    new = assign_hit(alice)
    assert new.pk != old.pk

    with pytest.raises(OtherHitLive, match=f"you have since started HIT {new.pk}.*This answer was not saved"):
        rate_item(old, 1, Rating.RESPONSE_2_BETTER)

    assert _live_hits(alice) == 1 and not Judgment.objects.exists()
    add_time(old, 1, 5000)
    assert _live_hits(alice) == 1, "time reports do not revive it either"

    for position in (1, 2):
        rate_item(new, position, Rating.RESPONSE_1_BETTER)
    submit_hit(new)
    assert rate_item(old, 1, Rating.RESPONSE_2_BETTER).annotator == alice, "once the other is done, it comes back"
    assert _live_hits(alice) == 1


def test_the_api_answers_400_and_the_user_never_holds_two_live_hits(alice, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    for n in range(7):
        make_batch(f"b{n}", n_items=2, samples_per_hit=2, overlap=1)
    client = api_client(alice)
    hits = []
    for _ in range(7):
        hits.append(client.post("/api/hits/next/").json()["id"])
        Hit.objects.filter(pk=hits[-1]).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    answers = [client.post(f"/api/hits/{hit}/rate/", {"position": 1, "rating": 2}, format="json") for hit in hits]

    assert answers[0].status_code == 200, "the first revival is fine: no other HIT is live"
    assert [a.status_code for a in answers[1:]] == [400] * 6
    assert "finish and submit that one first" in str(answers[1].json())
    assert _live_hits(alice) == 1
    assert Judgment.objects.count() == 1


def test_ranking_in_an_idle_hit_next_to_a_live_one_is_refused(alice, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    make_ranking_batch("ranks", n_items=2, size=3, samples_per_hit=1, overlap=1)
    old = assign_hit(alice)
    _idle(old)
    new = assign_hit(alice)
    with pytest.raises(OtherHitLive):
        rank_item(old, 1, [[1], [2], [3]])
    assert _live_hits(alice) == 1 and not Judgment.objects.exists()
    assert rank_item(new, 1, [[1], [2], [3]]) is not None
