"""The item import's body: streamed to disk under IMPORT_MAX_BYTES, past Django's in-memory limit, large ones a job."""

from __future__ import annotations

from annotate.import_jobs import run_import_job

PAIR = {"prompt": "What colour is the sky?", "response_1": "Blue.", "response_2": "Green."}


def test_api_body_over_the_limit_is_413_naming_the_setting(clients, batch, settings):
    settings.IMPORT_MAX_BYTES = 500
    records = [{**PAIR, "id": f"n{i}"} for i in range(20)]

    response = clients["charlie"].post(f"/api/batches/{batch.pk}/items/", records, format="json")

    assert response.status_code == 413
    assert "setting IMPORT_MAX_BYTES" in response.json()["detail"]


def test_api_body_past_djangos_in_memory_limit_imports(clients, batch, settings):
    """The fault: the API stopped at Django's undocumented 2.5 MB (DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.IMPORT_BACKGROUND_BYTES = 10_000_000
    records = [{**PAIR, "id": f"n{i}", "response_2": "z" * 500} for i in range(20)]

    response = clients["charlie"].post(f"/api/batches/{batch.pk}/items/", records, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["created"] == 20


def test_api_body_over_the_threshold_is_a_job(clients, batch, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    records = [{**PAIR, "id": f"n{i}"} for i in range(20)]

    response = clients["charlie"].post(f"/api/batches/{batch.pk}/items/", records, format="json")

    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    run_import_job(job_id)
    status = clients["charlie"].get(f"/api/imports/{job_id}/").json()
    assert (status["status"], status["items_created"], status["batch"]) == ("done", 20, batch.pk)
    assert clients["alice"].get(f"/api/imports/{job_id}/").status_code == 403
