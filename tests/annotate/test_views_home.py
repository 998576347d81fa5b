"""The site root: annotators go to their work, staff get their tools, nobody gets in unlogged."""

from django.urls import reverse

from annotate.models import Batch, Hit, Item


def make_batch(n_items: int = 6) -> Batch:
    batch = Batch.objects.create(name="home")
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Q{i}"}],
            response_1="a",
            response_2="b",
        )
        for i in range(n_items)
    )
    return batch


def test_annotator_is_sent_to_their_current_hit(alice_client):
    make_batch()
    response = alice_client.post(reverse("next_hit"))
    hit = Hit.objects.get(annotator__username="alice")
    assert response.status_code == 302 and response["Location"] == reverse("hit", args=[hit.pk])
    assert alice_client.get("/")["Location"] == reverse("hit", args=[hit.pk]), "same HIT until it is submitted"
    assert alice_client.get(reverse("next_hit"))["Location"] == reverse("hit", args=[hit.pk])
    assert alice_client.post(reverse("next_hit"))["Location"] == reverse("hit", args=[hit.pk])
    assert Hit.objects.count() == 1


def test_reading_a_page_never_hands_out_work(alice_client):
    """GET / and GET /hit/next/ show a button that POSTs; only the POST creates a HIT."""
    make_batch()
    for url in ("/", reverse("next_hit")):
        response = alice_client.get(url)
        html = response.content.decode()
        assert response.status_code == 200
        assert f'<form method="post" action="{reverse("next_hit")}"' in html and "Start annotating" in html
        assert "csrfmiddlewaretoken" in html
    assert not Hit.objects.exists()
    assert alice_client.post(reverse("next_hit")).status_code == 302
    assert Hit.objects.count() == 1


def test_no_work_left_is_said_plainly(alice_client):
    response = alice_client.post(reverse("next_hit"))
    assert response.status_code == 200
    assert "No work is left for you right now." in response.content.decode()
    assert not Hit.objects.exists()


def test_no_work_left_once_every_item_is_taken(alice_client, bob):
    make_batch(n_items=6)
    alice_hit_url = alice_client.post(reverse("next_hit"))["Location"]
    assert alice_hit_url.startswith("/hit/")
    alice_client.force_login(bob)
    assert "No work is left for you right now." in alice_client.post(reverse("next_hit")).content.decode()


def test_staff_get_links_and_are_not_assigned_work_unasked(charlie_client):
    make_batch()
    html = charlie_client.get("/").content.decode()
    assert f'href="{reverse("admin:index")}"' in html
    assert f'href="{reverse("rewardmodel:run_list")}"' in html and f'href="{reverse("policy:run_list")}"' in html
    assert f'<form method="post" action="{reverse("next_hit")}"' in html and "Start annotating" in html
    assert not Hit.objects.exists()
    response = charlie_client.post(reverse("next_hit"))
    hit = Hit.objects.get(annotator__username="charlie")
    assert response["Location"] == reverse("hit", args=[hit.pk])
    assert "Continue your HIT" in charlie_client.get("/").content.decode()


def test_annotators_see_no_staff_links(alice_client):
    html = alice_client.get("/").content.decode()
    assert reverse("admin:index") not in html


def test_login_required(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next=/"
