"""Bulk item creation: the importer's record shapes and checks, all or nothing."""

from __future__ import annotations

from annotate.models import Item


def alpaca(n: int, **override) -> dict:
    record = {"instruction": f"Say {n}.", "input": "", "output_1": f"{n}", "output_2": f"It is {n}."}
    return {**record, **override}


def post_items(client, batch, records, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(f"/api/batches/{batch.pk}/items/?{query}", records, format="json")


def test_bulk_create_reads_the_importers_formats(clients, batch):
    before = batch.items.count()
    response = post_items(clients["charlie"], batch, [alpaca(1, id="a1"), alpaca(2, id="a2", input="twice")])
    assert response.status_code == 201, response.content
    assert response.json() == {"batch": batch.pk, "format": "alpacafarm", "created": 2}
    item = Item.objects.get(batch=batch, external_id="a2")
    assert item.prompt == [{"role": "user", "content": "Say 2."}]
    assert item.prompt_input == "twice" and item.response_2 == "It is 2."
    assert batch.items.count() == before + 2

    conversational = {
        "id": "c1",
        "prompt": [{"role": "user", "content": "Hi?"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    response = post_items(clients["charlie"], batch, [conversational])
    assert response.json()["format"] == "trl"
    item = Item.objects.get(batch=batch, external_id="c1")
    assert item.gold_chosen is not None and item.response(item.gold_chosen) == "Hello!", "the known answer is kept"


def test_one_bad_record_creates_nothing_and_names_record_and_field(clients, batch):
    before = Item.objects.count()
    records = [alpaca(1, id="x1"), alpaca(2, id="x2"), alpaca(3, id="x3", output_2=17)]
    response = post_items(clients["charlie"], batch, records)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "record 3, field 'output_2': expected a string, got a number",
        "record": 3,
        "field": "output_2",
    }
    assert Item.objects.count() == before, "nothing was written"

    records = [alpaca(1, id="x1"), {"instruction": "No outputs."}]
    body = post_items(clients["charlie"], batch, records).json()
    assert body == {"detail": "record 2, field 'output_1': missing", "record": 2, "field": "output_1"}
    assert Item.objects.count() == before


def test_an_id_the_batch_already_has_creates_nothing(clients, batch):
    existing = batch.items.first().external_id
    before = Item.objects.count()
    response = post_items(clients["charlie"], batch, [alpaca(1, id="fresh"), alpaca(2, id=existing)])
    assert response.status_code == 400
    assert response.json()["record"] == 2 and response.json()["field"] == "id"
    assert "already has an item" in response.json()["detail"]
    assert Item.objects.count() == before and not Item.objects.filter(external_id="fresh").exists()


def test_the_body_must_be_a_list_and_the_format_known(clients, batch):
    response = clients["charlie"].post(f"/api/batches/{batch.pk}/items/", alpaca(1), format="json")
    assert response.status_code == 400 and response.json() == {"records": ["Expected a JSON list of records."]}
    response = post_items(clients["charlie"], batch, [alpaca(1)], fmt="yaml")
    assert response.status_code == 400 and "unknown format 'yaml'" in response.json()["detail"]
    response = post_items(clients["charlie"], batch, [])
    assert response.status_code == 400 and "no records" in response.json()["detail"]


def test_an_explicit_format_is_checked_field_by_field(clients, batch):
    response = post_items(clients["charlie"], batch, [alpaca(1, id="p1")], fmt="plain")
    assert response.status_code == 400
    assert response.json()["field"] == "prompt" and response.json()["record"] == 1


def test_staff_mark_an_items_known_answer(clients, batch):
    item = batch.items.first()
    response = clients["charlie"].patch(f"/api/items/{item.pk}/", {"gold": 2, "response_1": "changed"}, format="json")
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.gold == 2 and item.response_1 != "changed", "only the known answer is writable"
    response = clients["charlie"].patch(f"/api/items/{item.pk}/", {"gold": 0}, format="json")
    assert response.status_code == 400 and "gold" in response.json()
    listed = clients["charlie"].get("/api/items/", {"batch": batch.pk, "has_gold": "true"}).json()
    assert [row["id"] for row in listed["results"]] == [item.pk]
