"""Every numeric query, path and form parameter against hostile numbers: no answer may be a server error (5xx).

Runs in-process with Django's test client on a fresh SQLite database (which stores any 64-bit integer in any integer
column, so a value past a PostgreSQL column's range, such as a 2**31 priority, fails only there: the PostgreSQL tests
cover those) in a temporary ARBITER_VAR_DIR (DEBUG on, no
broker: a run that a request starts stays queued), after `create_demo`. The parameters come from two places:

- the API: every operation of the OpenAPI schema, each path parameter (ids) and each query parameter and JSON body
  property (the trainer `options` included) whose schema type is integer or number, as the annotator alice and the
  superuser admin;
- the pages: the HIT page and its rate / time / rank forms, the queue's priority, the review page, the run pages'
  sample step and send overlap, list pages' `page`, the start forms' numeric options, the export form and the
  admin's batch form.

Each gets every value of VALUES (Unicode digits, signs, padding, fractions, exponents, NaN/Infinity, values past
32 and 64 bits); JSON bodies also get JSON numbers (fractions, 2**63, 1e300) and true. Prints a table per status
and every 5xx (method, path, parameter, value); exits 1 on any.

    .venv/bin/python bench/fuzz_numbers.py
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALUES = [
    "²", "٣", "①", "１", "-1", "0", "+1", " 1", "01", "1.5", "-0.5", "1e3", "1_000", "0x10", "NaN", "Infinity",
    "-Infinity", "", "abc", str(2**31), str(-(2**31) - 1), str(2**63), str(-(2**63) - 1), "9" * 40,
]  # fmt: skip
JSON_NUMBERS = [1.5, -0.5, 2**31, 2**63, -(2**63) - 1, 10**40, 1e300, True]


def setup() -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="arbiter-fuzz-"))
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="arbiter.settings",
        DEBUG="true",
        ARBITER_VAR_DIR=str(var_dir),
        SECRET_KEY=secrets.token_urlsafe(50),
        LOGIN_FAILURE_LIMIT="1000000",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # "testserver" in ALLOWED_HOSTS; the test client's host
    call_command("migrate", verbosity=0)
    call_command("create_demo", verbosity=0)


def numeric(schema: dict) -> bool:
    kinds = {schema.get("type")} | {part.get("type") for part in schema.get("anyOf", []) + schema.get("oneOf", [])}
    return bool(kinds & {"integer", "number"}) or any(isinstance(v, int) for v in schema.get("enum", []))


def resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def api_cases(ids: dict[str, str]) -> list[tuple[str, str, str, str, object]]:
    """(method, path, where, name, value) for every numeric parameter of the API schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    cases = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            if path.startswith("/api/auth/"):
                continue  # token writes would end the session's own token; tested in tests/api/test_tokens.py
            parameters = operation.get("parameters", [])
            concrete = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "1"), path)
            for parameter in parameters:
                # Path parameters are ids whatever type the schema gives them (a router's pk is a string there).
                is_id = parameter["in"] == "path"
                if not is_id and not numeric(resolve(parameter.get("schema", {}), components)):
                    continue
                for value in VALUES:
                    if parameter["in"] == "query":
                        cases.append((method, concrete, "query", parameter["name"], value))
                    elif parameter["in"] == "path" and "/" not in value and "." not in value and value.strip():
                        url = path.replace("{" + parameter["name"] + "}", value)
                        url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "1"), url)
                        cases.append((method, url, "path", parameter["name"], value))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if not body:
                continue
            body = resolve(body, components)
            for name, prop in body.get("properties", {}).items():
                prop = resolve(prop, components)
                targets = [(name, prop)]
                if prop.get("type") == "object" and prop.get("properties"):
                    targets = [(f"{name}.{inner}", resolve(p, components)) for inner, p in prop["properties"].items()]
                for target, target_schema in targets:
                    if prop.get("readOnly") or not numeric(target_schema):
                        continue
                    for value in [*VALUES, *JSON_NUMBERS]:
                        cases.append((method, concrete, "json", target, value))
    return cases


def page_cases(ids: dict[str, str]) -> list[tuple[str, str, str, str, object]]:
    from policy.reinforce import ReinforceConfig, SFTConfig
    from rewardmodel.train import RewardTrainConfig
    from rlhf.options import option_fields

    hit, batch = ids["hit"], ids["batch"]
    forms: list[tuple[str, str, list[str]]] = [
        ("get", f"/hit/{hit}/", ["sample"]),
        ("post", f"/hit/{hit}/rate/", ["position", "rating", "elapsed_ms"]),
        ("post", f"/hit/{hit}/time/", ["position", "elapsed_ms"]),
        ("post", f"/hit/{hit}/rank/", ["position", "elapsed_ms"]),
        ("post", f"/dashboard/queue/{batch}/priority/", ["priority"]),
        ("get", "/dashboard/review/", ["run", "min_margin"]),
        ("get", f"/dashboard/policy/{ids['policy_run']}/samples/", ["step"]),
        ("post", f"/dashboard/policy/{ids['policy_run']}/send/", ["overlap"]),
        ("get", "/dashboard/reward/", ["page"]),
        ("get", "/dashboard/policy/", ["page"]),
        ("get", "/dashboard/quality/", ["page"]),
        ("get", "/dashboard/quality/export/", ["min_judgments", "format"]),
        (
            "post",
            "/admin/annotate/batch/add/",
            ["samples_per_hit", "overlap", "gold_rate", "priority", "ranking_size", "exploration_share"],
        ),
    ]
    for url, config in (
        ("/dashboard/reward/new/", RewardTrainConfig),
        ("/dashboard/policy/new/", ReinforceConfig),
        ("/dashboard/policy/new/sft/", SFTConfig),
    ):
        forms.append(("post", url, [f.name for f in option_fields(config) if f.kind in (int, float)]))
    return [(method, url, "form", name, value) for method, url, names in forms for name in names for value in VALUES]


def main() -> int:
    setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.test import APIClient

    from annotate.models import Batch, Judgment
    from annotate.services import assign_hit
    from policy.models import PolicyRun
    from rewardmodel.models import RewardModelRun

    users = get_user_model().objects
    alice, admin = users.get(username="alice"), users.get(username="admin")
    hit = assign_hit(alice)
    ids = {
        "hit": str(hit.pk),
        "batch": str(Batch.objects.first().pk),
        "id": str(hit.pk),
        "policy_run": str(PolicyRun.objects.create().pk),
        "reward_run": str(RewardModelRun.objects.create().pk),
        "judgment": str(getattr(Judgment.objects.first(), "pk", 1)),
        "username": "alice",
    }
    clients = {}
    for role, user in (("annotator", alice), ("staff", admin)):
        page, api = Client(raise_request_exception=False), APIClient(raise_request_exception=False)
        page.force_login(user)
        api.force_authenticate(user)
        clients[role] = (page, api)

    statuses: Counter[int] = Counter()
    errors: list[str] = []
    cases = [("api", case) for case in api_cases(ids)] + [("page", case) for case in page_cases(ids)]
    for role in clients:
        for _kind, (method, url, where, name, value) in cases:
            page, api = clients[role]
            if where == "query":
                response = (
                    getattr(api, method)(url, {name: value})
                    if method == "get"
                    else getattr(api, method)(f"{url}?{name}={value}")
                )
            elif where == "path":
                response = getattr(api, method)(url, {}, format="json")
            elif where == "json":
                outer, _, inner = name.partition(".")
                body = {outer: {inner: value}} if inner else {name: value}
                response = getattr(api, method)(url, body, format="json")
            else:
                client = page
                response = client.get(url, {name: value}) if method == "get" else client.post(url, {name: value})
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                errors.append(f"{role} {method.upper()} {url} {where} {name}={value!r}: {response.status_code}")
    total = sum(statuses.values())
    api_total = sum(1 for kind, _ in cases if kind == "api")
    roles = ", ".join(clients)
    print(f"cases per role: {len(cases)} (API {api_total}, pages {len(cases) - api_total}); roles: {roles}")
    print(f"requests: {total}; by status: " + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())))
    print(f"server errors (5xx): {len(errors)}")
    for line in errors:
        print("  " + line)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
