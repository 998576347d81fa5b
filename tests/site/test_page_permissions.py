"""Who may open each staff page: the dashboards check the same Django permissions as the API and the admin.

Every route of the queue, quality/export, reward-model and policy dashboards x anonymous (login page) / annotator /
staff with no permission / curator / researcher / staff in the admin group. A role that may open a page gets
anything but 403 or the login page (what the page then does is tested with the page); the others get 403 naming the
missing permission.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver

from annotate.models import Item, Judgment, Rating
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun, ScoreJob
from tests.api.conftest import make_batch

ROLES = ("alice", "bare", "curator", "researcher", "charlie")
DASHBOARDS = ("queue", "quality", "rewardmodel", "policy", "ordering", "review")


@dataclass
class Page:
    name: str  # the URL name, namespaced
    method: str
    url: str  # a format string over the world's ids
    allowed: tuple[str, ...]  # besides charlie
    data: dict | None = None


CURATOR, RESEARCHER = ("curator",), ("researcher",)

PAGES = [
    Page("queue:index", "get", "/dashboard/queue/", CURATOR + RESEARCHER),  # both may view batches
    Page("queue:move", "post", "/dashboard/queue/{batch}/move/up/", CURATOR),
    Page("queue:priority", "post", "/dashboard/queue/{batch}/priority/", CURATOR, {"priority": "3"}),
    Page("queue:active", "post", "/dashboard/queue/{batch}/active/", CURATOR, {"active": "false"}),
    Page("quality:index", "get", "/dashboard/quality/", RESEARCHER),
    Page("quality:batch", "get", "/dashboard/quality/batch/{batch}/", RESEARCHER),
    Page("quality:annotator", "get", "/dashboard/quality/annotator/{annotator}/", RESEARCHER),
    Page("quality:export", "get", "/dashboard/quality/export/", RESEARCHER),
    # Real usernames: the admin group only.
    Page("quality:export", "get", "/dashboard/quality/export/?format=raw&usernames=on", ()),
    Page("rewardmodel:run_list", "get", "/dashboard/reward/", RESEARCHER),
    Page("rewardmodel:run_new", "get", "/dashboard/reward/new/", RESEARCHER),
    Page("rewardmodel:run_detail", "get", "/dashboard/reward/{reward_run}/", RESEARCHER),
    Page("rewardmodel:run_live", "get", "/dashboard/reward/{reward_run}/live/", RESEARCHER),
    Page("rewardmodel:run_cancel", "post", "/dashboard/reward/{reward_run}/cancel/", RESEARCHER),
    Page("rewardmodel:run_resume", "post", "/dashboard/reward/{reward_run}/resume/", RESEARCHER),
    Page("rewardmodel:run_download", "get", "/dashboard/reward/{reward_run}/download/", RESEARCHER),
    Page("rewardmodel:run_score", "post", "/dashboard/reward/{reward_run}/score/", RESEARCHER, {"prompt": ""}),
    Page("rewardmodel:score_job", "get", "/dashboard/reward/{reward_run}/score/{score_job}/", RESEARCHER),
    Page("policy:run_list", "get", "/dashboard/policy/", RESEARCHER),
    Page("policy:run_new", "get", "/dashboard/policy/new/", RESEARCHER),
    Page("policy:run_new_sft", "get", "/dashboard/policy/new/sft/", RESEARCHER),
    Page("policy:base_checkpoints", "get", "/dashboard/policy/new/base-checkpoints/", RESEARCHER),
    Page("policy:run_new_dpo", "get", "/dashboard/policy/new/dpo/", RESEARCHER),
    Page("policy:run_detail", "get", "/dashboard/policy/{policy_run}/", RESEARCHER),
    Page("policy:run_live", "get", "/dashboard/policy/{policy_run}/live/", RESEARCHER),
    Page("policy:run_samples", "get", "/dashboard/policy/{policy_run}/samples/", RESEARCHER),
    Page("policy:run_cancel", "post", "/dashboard/policy/{policy_run}/cancel/", RESEARCHER),
    Page("policy:run_resume", "post", "/dashboard/policy/{policy_run}/resume/", RESEARCHER),
    Page("policy:run_download", "get", "/dashboard/policy/{policy_run}/download/", RESEARCHER),
    Page("policy:run_download_checkpoint", "get", "/dashboard/policy/{policy_run}/download/final/", RESEARCHER),
    Page("policy:run_send", "post", "/dashboard/policy/{policy_run}/send/", RESEARCHER),
    Page("policy:run_human", "get", "/dashboard/policy/{policy_run}/human/", RESEARCHER),
    Page("policy:run_simulate", "post", "/dashboard/policy/{policy_run}/simulate/", RESEARCHER),
    Page("ordering:batch", "get", "/dashboard/ordering/{batch}/", CURATOR + RESEARCHER),  # both may view batches
    Page("ordering:save", "post", "/dashboard/ordering/{batch}/save/", CURATOR, {"order": "import"}),
    Page("ordering:rescore", "post", "/dashboard/ordering/{batch}/rescore/", CURATOR),
    Page("review:index", "get", "/dashboard/review/", CURATOR),
    Page("review:score", "post", "/dashboard/review/score/", CURATOR),
    Page("review:judgment", "post", "/dashboard/review/judgment/{judgment}/confirm/", CURATOR),
    Page("policy:lineage", "get", "/dashboard/policy/lineage/reward/{reward_run}/", RESEARCHER),
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Five users per case: the default hasher costs about a second each on a busy CPU."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(alice) -> dict[str, int]:
    return {
        "batch": make_batch("pages").pk,
        "annotator": alice.pk,
        "reward_run": (run := RewardModelRun.objects.create()).pk,
        "score_job": ScoreJob.objects.create(run=run, prompt="p", response_1="a", response_2="b").pk,
        "policy_run": PolicyRun.objects.create(kind=PolicyRun.Kind.SFT).pk,
        "judgment": Judgment.objects.create(
            item=Item.objects.first(), annotator=alice, rating=Rating.RESPONSE_1_BETTER
        ).pk,
    }


@pytest.fixture
def users(alice, bare_staff, curator, researcher, charlie) -> dict:
    return {"alice": alice, "bare": bare_staff, "curator": curator, "researcher": researcher, "charlie": charlie}


def open_page(page: Page, world: dict, user=None):
    client = Client()
    if user is not None:
        client.force_login(user)
    return getattr(client, page.method)(page.url.format(**world), page.data or {})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES, ids=[p.url.split("{")[0] + p.method + str(i) for i, p in enumerate(PAGES)])
def test_page_matrix(page: Page, role: str, users, world):
    response = open_page(page, world, users[role])
    if role == "charlie" or role in page.allowed:
        assert response.status_code != 403, response.content[:300]
        assert "/accounts/login/" not in response.get("Location", "")
    else:
        assert response.status_code == 403
        reason = "Only staff can see this page." if role == "alice" else "needs the permission"
        assert reason in response.content.decode()


@pytest.mark.parametrize("page", PAGES[:1] + PAGES[4:5] + PAGES[9:10] + PAGES[17:18], ids=lambda p: p.name)
def test_visitors_go_to_the_login_page(page: Page, world):
    response = open_page(page, world)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_every_dashboard_page_is_in_the_matrix_and_names_its_permissions():
    covered = {page.name for page in PAGES}
    for namespace in DASHBOARDS:
        resolver = get_resolver().namespace_dict[namespace][1]
        for pattern in resolver.url_patterns:
            assert not isinstance(pattern, URLResolver)
            name = f"{namespace}:{pattern.name}"
            assert name in covered, f"{name} has no row in PAGES"
            assert getattr(pattern.callback, "required_permissions", None), f"{name} does not name its permissions"


def test_the_top_bar_shows_only_the_pages_one_may_open(users, world):
    client = Client()
    client.force_login(users["curator"])
    page = client.get("/dashboard/queue/").content.decode()
    assert ">Queue<" in page and ">Reward models<" not in page and ">Export<" not in page
    client.force_login(users["researcher"])
    page = client.get("/dashboard/reward/").content.decode()
    assert ">Reward models<" in page and ">Quality<" in page and ">Export<" in page


def test_run_pages_offer_cancel_resume_and_send_only_to_who_may_use_them(bare_staff, researcher, world):
    """A user who may only view runs sees no buttons that would answer 403 (earlier, they were shown)."""
    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from runs.models import RunStatus

    bare_staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_rewardmodelrun", "view_policyrun", "view_policylog"])
    )
    RewardModelRun.objects.filter(pk=world["reward_run"]).update(status=RunStatus.RUNNING)
    PolicyRun.objects.filter(pk=world["policy_run"]).update(
        status=RunStatus.FAILED, error="worker lost", worker_lost_at=timezone.now()
    )
    pages = {
        "reward": f"/dashboard/reward/{world['reward_run']}/",
        "policy": f"/dashboard/policy/{world['policy_run']}/",
    }
    for user, may in ((bare_staff, False), (researcher, True)):
        client = Client()
        client.force_login(user)
        reward_page = client.get(pages["reward"]).content.decode()
        policy_page = client.get(pages["policy"]).content.decode()
        assert ("Cancel run" in reward_page) is may, user
        assert ("Resume" in policy_page) is may, user
