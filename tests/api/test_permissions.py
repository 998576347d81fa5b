"""Who may do what: every endpoint x anonymous / annotator (alice, the owner) / other annotator (bob) / staff in
the admin group (charlie) / staff with no permission (bare) / curator / researcher (runs/roles.py).

alice owns the HIT, the judgment and an API token in the fixtures; bob is another annotator. Anonymous requests are
refused (401, with "WWW-Authenticate: Token") except where a case says otherwise. Another annotator's HIT or judgment
is a 404, as if it did not exist. Staff rights are Django permissions: a staff user without the permission is
refused (403) every staff endpoint, and is an annotator for the annotator endpoints. List endpoints are also checked
for what each role sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import resolve
from django.utils import timezone

from accounts.tokens import issue_token
from annotate.models import Batch, ImportJob, Judgment
from annotate.services import rate_item
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun, ScoreJob
from runs.models import RunStatus
from tests.api.conftest import make_batch
from tests.rewardmodel.helpers import build_tiny_backbone

DENIED = "denied"  # 401: not signed in
ROLES = ("anonymous", "alice", "bob", "charlie", "bare", "curator", "researcher")
STAFF_ROLES = ("curator", "researcher")  # besides charlie (everything) and bare (nothing)


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
    annotator_username: str
    import_job_id: int = 0
    score_job_id: int = 0


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
    issue_token(alice)
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
        alice.username,
        ImportJob.objects.create(batch_name="active", file_name="f.jsonl", file_path="").pk,
        ScoreJob.objects.create(run_id=trained_run.pk, prompt="p", response_1="a", response_2="b").pk,
    )


@dataclass
class Case:
    name: str
    method: str
    url: str  # a format string over World's fields
    expected: dict[str, int | str]  # role -> status
    body: object = None
    anonymous: int | str = DENIED

    def path(self, world: World) -> str:
        return self.url.format(**vars(world))


def staff_only(code: int, *roles: str) -> dict[str, int | str]:
    """Staff with the permission (charlie always, and the named roles) get `code`; everyone else 403."""
    refused = {"alice": 403, "bob": 403, "bare": 403}
    return refused | {"charlie": code} | {role: code if role in roles else 403 for role in STAFF_ROLES}


def annotator_route(alice: int | str, bob: int | str, staff: int | str, **roles: int | str) -> dict[str, int | str]:
    """An annotator endpoint: staff without the permission (bare, and the roles unless named) are like bob."""
    return {"alice": alice, "bob": bob, "charlie": staff, "bare": bob} | {r: roles.get(r, bob) for r in STAFF_ROLES}


EVERYONE_200 = dict.fromkeys(ROLES[1:], 200)
NOT_FOUND = {"alice": 404, "bob": 404, "bare": 404}  # annotators, and staff who may not view batches


CASES = [
    # Batches: everyone signed in reads the active ones; staff write.
    Case("batches-list", "get", "/api/batches/", EVERYONE_200),
    Case("batches-read", "get", "/api/batches/{batch.pk}/", EVERYONE_200),
    # An inactive batch exists only for staff who may view batches.
    Case("batches-read-inactive", "get", "/api/batches/{archived.pk}/", staff_only(200, *STAFF_ROLES) | NOT_FOUND),
    Case("batches-create", "post", "/api/batches/", staff_only(201, "curator"), {"name": "new", "overlap": 2}),
    Case("batches-update", "patch", "/api/batches/{batch.pk}/", staff_only(200, "curator"), {"guidelines": "Kind."}),
    Case("batches-delete", "delete", "/api/batches/{archived.pk}/", staff_only(204, "curator")),
    Case(
        "batches-add-items",
        "post",
        "/api/batches/{batch.pk}/items/",
        staff_only(201, "curator"),
        [{"id": "new-1", "prompt": "Hi?", "response_1": "Hello.", "response_2": "Hey."}],
    ),
    Case("imports-list", "get", "/api/imports/", staff_only(200, "curator")),
    Case("imports-read", "get", "/api/imports/{import_job_id}/", staff_only(200, "curator")),
    Case("batches-quality", "get", "/api/batches/{batch.pk}/quality/", staff_only(200, "researcher")),
    Case("batches-quality-inactive", "get", "/api/batches/{archived.pk}/quality/", staff_only(200, "researcher")),
    # Annotation quality per annotator: like the quality pages.
    Case("annotators-list", "get", "/api/annotators/", staff_only(200, "researcher")),
    Case("annotators-quality", "get", "/api/annotators/{annotator_id}/quality/", staff_only(200, "researcher")),
    # Items, and their gold answers: curators.
    Case("items-list", "get", "/api/items/", staff_only(200, "curator")),
    Case("items-read", "get", "/api/items/{item_id}/", staff_only(200, "curator")),
    Case("items-set-gold", "patch", "/api/items/{item_id}/", staff_only(200, "curator"), {"gold": -2}),
    Case("items-delete", "delete", "/api/items/{item_id}/", staff_only(204, "curator")),
    # Judgments: own only, unless one may view judgments (they name their annotators).
    Case("judgments-list", "get", "/api/judgments/", EVERYONE_200),
    Case("judgments-read", "get", "/api/judgments/{judgment_id}/", annotator_route(200, 404, 200)),
    # The annotation flow: only the HIT's annotator acts on it; staff who may view HITs read every HIT.
    Case("hits-list", "get", "/api/hits/", EVERYONE_200),
    Case("hits-next", "post", "/api/hits/next/", EVERYONE_200),
    Case("hits-read", "get", "/api/hits/{hit_id}/", annotator_route(200, 404, 200)),
    Case(
        "hits-rate",
        "post",
        "/api/hits/{hit_id}/rate/",
        annotator_route(200, 404, 403),
        {"position": 2, "rating": -1, "elapsed_ms": 500},
    ),
    # The HIT here is pairwise: alice passes the permissions and the service refuses to rank it (400).
    Case(
        "hits-rank",
        "post",
        "/api/hits/{hit_id}/rank/",
        annotator_route(400, 404, 403),
        {"position": 2, "ranking": [[1], [2]], "elapsed_ms": 500},
    ),
    Case(
        "hits-time",
        "post",
        "/api/hits/{hit_id}/time/",
        annotator_route(200, 404, 403),
        {"position": 1, "elapsed_ms": 500},
    ),
    # alice may submit but has rated 1 of 6 samples: the service says no (400), not the permissions.
    Case("hits-submit", "post", "/api/hits/{hit_id}/submit/", annotator_route(400, 404, 403)),
    # Exports: researchers; real usernames need a permission of their own (the admin group has it).
    Case("export", "get", "/api/exports/preferences/?fmt=trl", staff_only(200, "researcher")),
    Case("export-usernames", "get", "/api/exports/preferences/?fmt=raw&usernames=true", staff_only(200)),
    # Training runs: researchers.
    Case("reward-runs-list", "get", "/api/reward-runs/", staff_only(200, "researcher")),
    Case("reward-runs-read", "get", "/api/reward-runs/{run_id}/", staff_only(200, "researcher")),
    Case("reward-runs-logs", "get", "/api/reward-runs/{run_id}/logs/", staff_only(200, "researcher")),
    Case("reward-runs-start", "post", "/api/reward-runs/", staff_only(201, "researcher"), {"batches": ["{batch.pk}"]}),
    Case("reward-runs-cancel", "post", "/api/reward-runs/{run_id}/cancel/", staff_only(200, "researcher")),
    # Only a run that lost its worker resumes: those who may get the reason (400), others no access.
    Case("reward-runs-resume", "post", "/api/reward-runs/{trained_run_id}/resume/", staff_only(400, "researcher")),
    Case(
        "reward-runs-score",
        "post",
        "/api/reward-runs/{trained_run_id}/score/",
        staff_only(202, "researcher"),
        {"prompt": "tell me", "response_1": "good", "response_2": "bad"},
    ),
    Case("score-jobs-list", "get", "/api/score-jobs/", staff_only(200, "researcher")),
    Case("score-jobs-read", "get", "/api/score-jobs/{score_job_id}/", staff_only(200, "researcher")),
    Case("reward-runs-download", "get", "/api/reward-runs/{trained_run_id}/download/", staff_only(200, "researcher")),
    Case("policy-runs-list", "get", "/api/policy-runs/", staff_only(200, "researcher")),
    Case("policy-runs-read", "get", "/api/policy-runs/{policy_run_id}/", staff_only(200, "researcher")),
    Case("policy-runs-logs", "get", "/api/policy-runs/{policy_run_id}/logs/", staff_only(200, "researcher")),
    Case("policy-runs-samples", "get", "/api/policy-runs/{policy_run_id}/samples/", staff_only(200, "researcher")),
    Case("policy-runs-win-rate", "get", "/api/policy-runs/{policy_run_id}/win-rate/", staff_only(200, "researcher")),
    Case(
        "policy-runs-ranked-win-rate",
        "get",
        "/api/policy-runs/{policy_run_id}/ranked-win-rate/",
        staff_only(200, "researcher"),
    ),
    # SFT on the batch's one judgment: the only start that needs no trained model on disk.
    Case(
        "policy-runs-start",
        "post",
        "/api/policy-runs/",
        staff_only(201, "researcher"),
        {"kind": "sft", "data_batch": "{batch.pk}"},
    ),
    Case("policy-runs-cancel", "post", "/api/policy-runs/{policy_run_id}/cancel/", staff_only(200, "researcher")),
    Case(
        "policy-runs-resume",
        "post",
        "/api/policy-runs/{finished_policy_run_id}/resume/",
        staff_only(400, "researcher"),
    ),
    Case(
        "policy-runs-download",
        "get",
        "/api/policy-runs/{finished_policy_run_id}/download/",
        staff_only(200, "researcher"),
    ),
    # Those who may pass the permission check; the service refuses a run that has not succeeded.
    Case(
        "policy-runs-send",
        "post",
        "/api/policy-runs/{policy_run_id}/send-to-annotators/",
        staff_only(400, "researcher"),
        {},
    ),
    # Your own token: any signed-in user (alice has one; the others none). A new one is made from the password too.
    Case("own-token-read", "get", "/api/auth/token/", annotator_route(200, 404, 404)),
    Case("own-token-new", "post", "/api/auth/token/", EVERYONE_200, {}, anonymous=400),
    Case("own-token-revoke", "delete", "/api/auth/token/", annotator_route(204, 404, 404)),
    # Anyone's token: the admin group (API-token permissions), no other role.
    Case("user-token-read", "get", "/api/auth/tokens/{annotator_username}/", staff_only(200)),
    Case("user-token-new", "post", "/api/auth/tokens/{annotator_username}/", staff_only(200)),
    Case("user-token-revoke", "delete", "/api/auth/tokens/{annotator_username}/", staff_only(204)),
    # Schema and docs: any signed-in user.
    Case("schema", "get", "/api/schema/", EVERYONE_200),
    Case("docs", "get", "/api/docs/", EVERYONE_200),
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
    expected = case.anonymous if role == "anonymous" else case.expected[role]
    if expected == DENIED:
        assert response.status_code == 401, response.content[:300]
        assert response["WWW-Authenticate"] == "Token"
        if response["Content-Type"].startswith("application/json"):  # schema and docs answer in their own type
            assert "credentials" in response.json()["detail"]
    else:
        assert response.status_code == expected, response.content[:300]
    if expected == 403 and role in ("bare", *STAFF_ROLES):
        # The reason names the missing permission, so the user knows what to ask for.
        assert "needs the permission" in response.json()["detail"]


def test_every_api_route_is_in_the_matrix(world):
    """A new endpoint must get its row in CASES."""
    from arbiter.api_urls import router, urlpatterns

    covered = {(c.method, c.path(world).split("?")[0]) for c in CASES}
    covered_names = {resolve(path).url_name for _, path in covered}
    route_names = {pattern.name for pattern in router.urls} - {"api-root"}
    assert route_names - covered_names == set()
    other_names = {pattern.name for pattern in urlpatterns if getattr(pattern, "name", None)}
    assert other_names == {"export-preferences", "api-token", "api-user-token", "api-schema", "api-docs"}
    assert other_names - covered_names == set()


def test_every_staff_action_says_which_permissions_it_needs():
    """HasPermissions refuses an action its view does not name: this finds such an action before a user does."""
    from arbiter.api_urls import router
    from runs.permissions import HasPermissions

    for _, viewset, _ in router.registry:
        if HasPermissions not in viewset.permission_classes:
            continue  # annotator endpoints: own HITs and judgments
        actions = {"list", "retrieve", "create", "update", "partial_update", "destroy"} & set(dir(viewset))
        actions |= {extra.__name__ for extra in viewset.get_extra_actions()}
        assert actions - set(viewset.required_permissions) == set(), viewset.__name__


def test_a_permission_is_enough_without_a_group(clients, world, bare_staff):
    """Permissions given to the user directly count as through a group, as in the admin."""
    from django.contrib.auth.models import Permission

    bare_staff.user_permissions.add(Permission.objects.get(codename="view_quality"))
    assert clients["bare"].get("/api/annotators/").status_code == 200
    assert clients["bare"].get("/api/items/").status_code == 403


def test_a_superuser_needs_no_group(db, world):
    from tests.api.conftest import api_client
    from tests.conftest import _user

    root = _user("root", is_staff=True, is_superuser=True)
    assert api_client(root).get("/api/exports/preferences/?fmt=raw&usernames=true").status_code == 200
    assert api_client(root).get(f"/api/hits/{world.hit_id}/").status_code == 200


def test_permissions_of_non_staff_users_do_not_count(world, alice):
    """Staff status is needed as in the admin: a permission given to an annotator opens nothing."""
    from django.contrib.auth.models import Group

    from tests.api.conftest import api_client

    alice.groups.add(Group.objects.get(name="researcher"))
    response = api_client(alice).get("/api/reward-runs/")
    assert response.status_code == 403 and response.json()["detail"] == "Only staff may do this."


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
