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
