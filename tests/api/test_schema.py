"""The OpenAPI 3 schema validates and the Swagger UI loads nothing from the internet."""

from __future__ import annotations

import re

import yaml
from django.core.management import call_command


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    # --validate checks the result against the OpenAPI 3 JSON schema; --fail-on-warn fails on any warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in (
        "/api/batches/",
        "/api/batches/{id}/items/",
        "/api/items/{id}/",
        "/api/judgments/",
        "/api/hits/next/",
        "/api/hits/{id}/rate/",
        "/api/hits/{id}/submit/",
        "/api/exports/preferences/",
        "/api/reward-runs/{id}/cancel/",
        "/api/reward-runs/{id}/score/",
        "/api/reward-runs/{id}/download/",
        "/api/policy-runs/{id}/download/",
        "/api/batches/{id}/quality/",
        "/api/annotators/",
        "/api/annotators/{id}/quality/",
    ):
        assert path in paths
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    download = schema["paths"]["/api/reward-runs/{id}/download/"]["get"]["responses"]["200"]["content"]
    assert download["application/zip"]["schema"] == {"type": "string", "format": "binary"}


def test_schema_is_served_to_signed_in_users(clients, alice):
    response = clients["alice"].get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    rate = response.json()["paths"]["/api/hits/{id}/rate/"]["post"]
    assert rate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Rate")


def test_swagger_ui_uses_vendored_files_only(client, alice):
    client.force_login(alice)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    external = [url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if url.startswith(("http:", "https:", "//"))]
    assert external == []
    assert "cdn" not in html.lower()


def generated_schema(tmp_path) -> dict:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    return yaml.safe_load(out.read_text())


def test_every_operation_documents_the_errors_drf_gives(tmp_path):
    """What schemathesis found undocumented: 401/403 everywhere, 404 for ids and pages, 400 for input, 415 bodies."""
    schema = generated_schema(tmp_path)
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "text/html" in operation["responses"]["404"]["content"], (method, path)
                assert "application/json" in operation["responses"]["404"]["content"], (method, path)
            if method in {"post", "put", "patch"}:
                assert {"400", "415"} <= codes, (method, path)


def test_role_dependent_responses_accept_either_role(tmp_path):
    """Annotators get fewer fields than staff; a staff object matches both, so the component is anyOf, not oneOf."""
    schemas = generated_schema(tmp_path)["components"]["schemas"]
    assert schemas["BatchForRole"] == {
        "anyOf": [{"$ref": "#/components/schemas/Batch"}, {"$ref": "#/components/schemas/AnnotatorBatch"}]
    }
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["JudgmentForRole"]["anyOf"]} == {
        "Judgment",
        "AnnotatorJudgment",
    }


def test_filters_refuse_values_they_cannot_read(clients, alice_hit):
    """django-filter ignores such values and answers everything; the schema says boolean, date, one value."""
    for query in ("submitted=null", "submitted=", "submitted=true&submitted=false"):
        assert clients["alice"].get(f"/api/hits/?{query}").status_code == 400, query
    assert clients["charlie"].get("/api/judgments/?created_before=").status_code == 400
    assert clients["alice"].get("/api/hits/?submitted=false").json()["count"] == 1


def test_a_new_batch_has_its_items_count(clients):
    response = clients["charlie"].post("/api/batches/", {"name": "fresh"}, format="json")
    assert response.status_code == 201
    assert response.json()["items_count"] == 0
