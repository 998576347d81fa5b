"""Who may do what: every endpoint x anonymous / annotator (alice, the owner) / other annotator (bob) / staff.

alice owns the HIT and the judgment in the fixtures; bob is another annotator; charlie is staff.
Anonymous requests are always refused (401, with "WWW-Authenticate: Token"). Another annotator's HIT or judgment is a
404, as if it did not exist. List endpoints are also checked for what each role sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import resolve
from django.utils import timezone

from annotate.models import Batch, ImportJob, Judgment
from annotate.services import rate_item
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.api.conftest import make_batch
from tests.rewardmodel.helpers import build_tiny_backbone

DENIED = "denied"  # 401: not signed in
ROLES = ("anonymous", "alice", "bob", "charlie")


@dataclass
class World:
    batch: Batch
    archived: Batch
    hit_id: int
    judgment_id: int
    item_id: int
    run_id: int
    policy_run_id: int
    annotator_id: int
    trained_run_id: int
    finished_policy_run_id: int
    import_job_id: int = 0


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory) -> str:
    """Built once: every case of the matrix can score with it and download it."""
    return build_tiny_backbone(tmp_path_factory.mktemp("matrix") / "reward-model")


@pytest.fixture
def world(alice, tiny_reward_model, tmp_path) -> World:
    from annotate.services import assign_hit

    batch = make_batch("active", n_items=12)
    archived = make_batch("archived", n_items=1, active=False)
    hit = assign_hit(alice)
    judgment = rate_item(hit, 1, 2, 1000)
    run = RewardModelRun.objects.create()
    run.batches.set([batch])
    policy_run = PolicyRun.objects.create(kind=PolicyRun.Kind.SFT)
    now = timezone.now()
    done = {"status": RunStatus.SUCCEEDED, "started_at": now, "finished_at": now}
    trained_run = RewardModelRun.objects.create(artifact_path=tiny_reward_model, **done)
    policy_folder = tmp_path / "policy"
    (policy_folder / "final").mkdir(parents=True)
    (policy_folder / "final" / "config.json").write_text('{"model_type": "llama"}')
    finished_policy_run = PolicyRun.objects.create(artifact_path=str(policy_folder), **done)
    return World(
        batch,
        archived,
        hit.pk,
        judgment.pk,
        judgment.item_id,
        run.pk,
        policy_run.pk,
        alice.pk,
        trained_run.pk,
        finished_policy_run.pk,
        ImportJob.objects.create(batch_name="active", file_name="f.jsonl", file_path="").pk,
    )


@dataclass
class Case:
    name: str
    method: str
    url: str  # a format string over World's fields
    expected: dict[str, int | str]  # role -> status (anonymous is always DENIED)
    body: object = None

    def path(self, world: World) -> str:
        return self.url.format(**vars(world))


def staff_only(code: int) -> dict[str, int | str]:
    return {"alice": 403, "bob": 403, "charlie": code}


CASES = [
    # Batches: everyone signed in reads the active ones; staff write.
    Case("batches-list", "get", "/api/batches/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("batches-read", "get", "/api/batches/{batch.pk}/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("batches-read-inactive", "get", "/api/batches/{archived.pk}/", {"alice": 404, "bob": 404, "charlie": 200}),
    Case("batches-create", "post", "/api/batches/", staff_only(201), {"name": "new", "overlap": 2}),
    Case("batches-update", "patch", "/api/batches/{batch.pk}/", staff_only(200), {"guidelines": "Be kind."}),
    Case("batches-delete", "delete", "/api/batches/{archived.pk}/", staff_only(204)),
    Case(
        "batches-add-items",
        "post",
        "/api/batches/{batch.pk}/items/",
        staff_only(201),
        [{"id": "new-1", "prompt": "Hi?", "response_1": "Hello.", "response_2": "Hey."}],
    ),
    Case("imports-list", "get", "/api/imports/", staff_only(200)),
    Case("imports-read", "get", "/api/imports/{import_job_id}/", staff_only(200)),
    Case("batches-quality", "get", "/api/batches/{batch.pk}/quality/", staff_only(200)),
    Case("batches-quality-inactive", "get", "/api/batches/{archived.pk}/quality/", staff_only(200)),
    # Annotation quality per annotator: staff only, like the quality pages.
    Case("annotators-list", "get", "/api/annotators/", staff_only(200)),
    Case("annotators-quality", "get", "/api/annotators/{annotator_id}/quality/", staff_only(200)),
    # Items: staff only.
    Case("items-list", "get", "/api/items/", staff_only(200)),
    Case("items-read", "get", "/api/items/{item_id}/", staff_only(200)),
    Case("items-set-gold", "patch", "/api/items/{item_id}/", staff_only(200), {"gold": -2}),
    Case("items-delete", "delete", "/api/items/{item_id}/", staff_only(204)),
    # Judgments: own only for annotators.
    Case("judgments-list", "get", "/api/judgments/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("judgments-read", "get", "/api/judgments/{judgment_id}/", {"alice": 200, "bob": 404, "charlie": 200}),
    # The annotation flow: only the HIT's annotator acts on it; staff read every HIT.
    Case("hits-list", "get", "/api/hits/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("hits-next", "post", "/api/hits/next/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("hits-read", "get", "/api/hits/{hit_id}/", {"alice": 200, "bob": 404, "charlie": 200}),
    Case(
        "hits-rate",
        "post",
        "/api/hits/{hit_id}/rate/",
        {"alice": 200, "bob": 404, "charlie": 403},
        {"position": 2, "rating": -1, "elapsed_ms": 500},
    ),
    Case(
        "hits-time",
        "post",
        "/api/hits/{hit_id}/time/",
        {"alice": 200, "bob": 404, "charlie": 403},
        {"position": 1, "elapsed_ms": 500},
    ),
    # alice may submit but has rated 1 of 6 samples: the service says no (400), not the permissions.
    Case("hits-submit", "post", "/api/hits/{hit_id}/submit/", {"alice": 400, "bob": 404, "charlie": 403}),
    # Exports and training runs: staff only.
    Case("export", "get", "/api/exports/preferences/?fmt=trl", staff_only(200)),
    Case("reward-runs-list", "get", "/api/reward-runs/", staff_only(200)),
    Case("reward-runs-read", "get", "/api/reward-runs/{run_id}/", staff_only(200)),
    Case("reward-runs-logs", "get", "/api/reward-runs/{run_id}/logs/", staff_only(200)),
    Case("reward-runs-start", "post", "/api/reward-runs/", staff_only(201), {"batches": ["{batch.pk}"]}),
    Case("reward-runs-cancel", "post", "/api/reward-runs/{run_id}/cancel/", staff_only(200)),
    # Only a run that lost its worker resumes: staff get the reason (400), others no access.
    Case("reward-runs-resume", "post", "/api/reward-runs/{trained_run_id}/resume/", staff_only(400)),
    Case(
        "reward-runs-score",
        "post",
        "/api/reward-runs/{trained_run_id}/score/",
        staff_only(200),
        {"prompt": "tell me", "response_1": "good", "response_2": "bad"},
    ),
    Case("reward-runs-download", "get", "/api/reward-runs/{trained_run_id}/download/", staff_only(200)),
    Case("policy-runs-list", "get", "/api/policy-runs/", staff_only(200)),
    Case("policy-runs-read", "get", "/api/policy-runs/{policy_run_id}/", staff_only(200)),
    Case("policy-runs-logs", "get", "/api/policy-runs/{policy_run_id}/logs/", staff_only(200)),
    Case("policy-runs-samples", "get", "/api/policy-runs/{policy_run_id}/samples/", staff_only(200)),
    Case("policy-runs-win-rate", "get", "/api/policy-runs/{policy_run_id}/win-rate/", staff_only(200)),
    # SFT on the batch's one judgment: the only start that needs no trained model on disk.
    Case(
        "policy-runs-start", "post", "/api/policy-runs/", staff_only(201), {"kind": "sft", "data_batch": "{batch.pk}"}
    ),
    Case("policy-runs-cancel", "post", "/api/policy-runs/{policy_run_id}/cancel/", staff_only(200)),
    Case("policy-runs-resume", "post", "/api/policy-runs/{finished_policy_run_id}/resume/", staff_only(400)),
    Case("policy-runs-download", "get", "/api/policy-runs/{finished_policy_run_id}/download/", staff_only(200)),
    # Staff pass the permission check; the service refuses a run that has not succeeded.
    Case("policy-runs-send", "post", "/api/policy-runs/{policy_run_id}/send-to-annotators/", staff_only(400), {}),
    # Schema and docs: any signed-in user.
    Case("schema", "get", "/api/schema/", {"alice": 200, "bob": 200, "charlie": 200}),
    Case("docs", "get", "/api/docs/", {"alice": 200, "bob": 200, "charlie": 200}),
]


def fill(body: object, world: World) -> object:
    """Put the world's ids into a body's "{...}" strings."""
    if isinstance(body, dict):
        return {k: fill(v, world) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, world) for v in body]
    if isinstance(body, str) and body.startswith("{"):
        return int(body.format(**vars(world)))
    return body


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_permission_matrix(case: Case, role: str, clients, world):
    client = clients[role]
    kwargs = {"format": "json"} if case.body is not None else {}
    response = getattr(client, case.method)(case.path(world), fill(case.body, world), **kwargs)
    expected = DENIED if role == "anonymous" else case.expected[role]
    if expected == DENIED:
        assert response.status_code == 401, response.content[:300]
        assert response["WWW-Authenticate"] == "Token"
        if response["Content-Type"].startswith("application/json"):  # schema and docs answer in their own type
            assert "credentials" in response.json()["detail"]
    else:
        assert response.status_code == expected, response.content[:300]


def test_every_api_route_is_in_the_matrix(world):
    """A new endpoint must get its row in CASES."""
    from arbiter.api_urls import router

    covered = {(c.method, c.path(world).split("?")[0]) for c in CASES}
    covered_names = {resolve(path).url_name for _, path in covered}
    route_names = {pattern.name for pattern in router.urls} - {"api-root"}
    assert route_names - covered_names == set()
    assert {"export-preferences", "api-schema", "api-docs"} <= covered_names


def test_list_endpoints_show_each_role_only_what_it_may_see(clients, world, bob):
    from annotate.services import assign_hit

    assign_hit(bob)  # bob's own HIT, which alice must not see
    assert Judgment.objects.count() == 1

    def ids(role: str, url: str) -> list[int]:
        response = clients[role].get(url)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert ids("alice", "/api/judgments/") == [world.judgment_id]
    assert ids("bob", "/api/judgments/") == []
    assert ids("charlie", "/api/judgments/") == [world.judgment_id]

    assert ids("alice", "/api/hits/") == [world.hit_id]
    assert len(ids("bob", "/api/hits/")) == 1 and world.hit_id not in ids("bob", "/api/hits/")
    assert len(ids("charlie", "/api/hits/")) == 2

    active_only = [world.batch.pk]
    assert ids("alice", "/api/batches/") == active_only
    assert sorted(ids("charlie", "/api/batches/")) == sorted([world.batch.pk, world.archived.pk])


def test_annotators_see_no_gold_rate_or_counts_of_a_batch(clients, world):
    annotator_view = clients["alice"].get(f"/api/batches/{world.batch.pk}/").json()
    staff_view = clients["charlie"].get(f"/api/batches/{world.batch.pk}/").json()
    assert "gold_rate" not in annotator_view and "items_count" not in annotator_view
    assert staff_view["gold_rate"] == 0.0 and staff_view["items_count"] == 12


def test_staff_reading_a_hit_cannot_rate_in_the_annotators_name(clients, world):
    response = clients["charlie"].post(f"/api/hits/{world.hit_id}/rate/", {"position": 3, "rating": 2}, format="json")
    assert response.status_code == 403
    assert Judgment.objects.filter(hit_id=world.hit_id).count() == 1


def test_only_staff_see_which_side_a_judgment_was_shown_on(clients, world):
    own = clients["alice"].get(f"/api/judgments/{world.judgment_id}/").json()
    staff = clients["charlie"].get(f"/api/judgments/{world.judgment_id}/").json()
    assert "swapped" not in own
    assert staff["swapped"] == Judgment.objects.get(pk=world.judgment_id).swapped
