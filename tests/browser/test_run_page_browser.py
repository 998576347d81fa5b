"""A run page left open while its run ends shows the finished run by itself: no reload by hand."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from policy.models import PolicyLog, PolicyRun, PolicySample
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def staff(transactional_db, charlie):
    reverse("home")  # load the URLconf before the browser's first request (see test_hit_browser)
    return charlie


def log_in(page, live_server, next_path: str) -> None:
    page.goto(f"{live_server.url}{reverse('login')}?next={next_path}")
    page.fill("input[name=username]", "charlie")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def test_a_policy_run_page_shows_samples_and_send_to_annotators_once_the_run_succeeds(live_server, page, staff):
    from playwright.sync_api import expect

    reward_run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, metrics={"eval_accuracy": 0.75})
    run = PolicyRun.objects.create(kind=PolicyRun.Kind.REINFORCE, reward_run=reward_run, config={"steps": 2})
    run.claim()
    run.record_progress(1, 2, "training", eta_seconds=30)
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))
    log_in(page, live_server, run.get_absolute_url())

    # The ETA counts down from 30 s between progress reports.
    expect(page.locator(".run-phase")).to_contain_text(re.compile(r"Step 1 of 2 \(50%\) · about [12]?\d s left"))
    expect(page.get_by_role("button", name="Send to annotators")).to_have_count(0)
    expect(page.get_by_role("heading", name="Samples")).to_have_count(0)

    # The worker finishes the run: a log row, samples, the held-out comparisons, then the status.
    PolicyLog.objects.create(run=run, step=2, metrics={"reward_mean": 0.3, "eval_win_rate": 0.5})
    PolicySample.objects.create(
        run=run, step=2, kind="train", prompt=[{"role": "user", "content": "hi"}], response="hello there", reward=0.3
    )
    PolicyRun.objects.filter(pk=run.pk).update(
        eval_samples=[
            {
                "prompt": [{"role": "user", "content": "hi"}],
                "policy_response": "hello",
                "reference_response": "hey",
                "policy_reward": 0.3,
                "reference_reward": 0.1,
            }
        ],
        step=2,
    )
    run.mark_succeeded({"reward_policy": 0.3, "reward_reference": 0.1, "win_rate": 1.0, "kl": 0.01}, "")

    expect(
        page.get_by_role("button", name="Send to annotators")
    ).to_be_visible()  # the page polls every 2 s, then reloads
    expect(page.get_by_role("heading", name="Samples")).to_be_visible()
    expect(page.locator("#samples")).to_contain_text("hello there")
    expect(page.locator("#run-live .status")).to_have_text("Succeeded")
    expect(page.locator(".run-phase")).to_have_count(0)
    expect(page.locator("#run-live")).not_to_have_attribute("hx-get", re.compile(".*"))
    # The win-rate chart has one point: a dot, with its axes labelled.
    chart = page.locator('svg[aria-label="Held-out win rate over reference"]')
    expect(chart.locator("circle")).to_have_count(1)
    expect(chart.locator("text.axis-label")).to_have_text(["step", "win rate"])
    assert not script_errors


def test_a_message_from_before_the_end_does_not_stay_on_the_finished_page(live_server, page, staff):
    from playwright.sync_api import expect

    run = RewardModelRun.objects.create(config={"epochs": 1})
    run.claim()
    run.record_progress(0, 0, "tokenizing")
    log_in(page, live_server, run.get_absolute_url())
    expect(page.locator(".run-phase")).to_contain_text("Tokenizing the data…")

    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".messages")).to_contain_text(f"{run}: cancel requested.")
    expect(page.locator("#run-live")).to_contain_text("(stopping…)")

    # The trainer sees the flag at its next step and stops.
    run.mark_cancelled()

    expect(page.locator("#run-live .status")).to_have_text("Cancelled")
    expect(page.locator(".messages")).to_have_count(0)
    assert RewardModelRun.objects.get(pk=run.pk).finished_at <= timezone.now()


def test_a_queued_run_says_what_it_waits_for_and_its_page_follows_it_through_evaluation(
    live_server, page, staff, monkeypatch
):
    """Resumed behind a training run, a run's page names that run; it updates by itself once the worker takes it (the
    "is queued" message goes), and evaluation shows its own progress, not "Step 4 of 4 (100%) · almost done"."""
    from playwright.sync_api import expect

    from arbiter.celery import app

    # The broker takes the message and no worker is free (a worker another test left running would train the run).
    sent: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append(name))

    busy = RewardModelRun.objects.create(config={"epochs": 1})
    busy.claim()
    busy.record_progress(3, 10, "training")
    run = PolicyRun.objects.create(kind=PolicyRun.Kind.REINFORCE, config={"steps": 4})
    run.claim()
    run.mark_worker_lost("killed")
    log_in(page, live_server, run.get_absolute_url())

    page.get_by_role("button", name=re.compile("^Resume")).click()
    expect(page.locator(".messages")).to_contain_text(f"{run} is queued again.")
    assert sent == ["policy.tasks.train_policy_run"]
    phase = page.locator(".run-phase")
    expect(phase).to_contain_text(f"Queued behind {busy} (step 3 of 10 (30%)) on queue gpu")
    expect(phase.get_by_role("link", name=str(busy))).to_have_attribute("href", busy.get_absolute_url())

    # The training worker finishes the other run and takes this one: no reload by hand.
    busy.mark_succeeded({}, "")
    run.refresh_from_db()
    assert run.claim()
    run.record_progress(1, 4, "training", eta_seconds=600)
    expect(page.locator("#run-live .status")).to_have_text("Running")
    expect(phase).to_contain_text("Step 1 of 4 (25%)")
    expect(page.get_by_text(f"{run} is queued again.")).to_be_hidden()

    run.record_progress(4, 4, "evaluating", eta_seconds=300, phase_done=12, phase_total=64)
    expect(phase).to_contain_text(
        re.compile(r"Evaluating on held-out data: 12 of 64 answers \(after step 4 of 4\) · about \d min \d\d s left")
    )
    expect(phase).not_to_contain_text("almost done")
    expect(page.locator("progress.run-progress")).to_have_attribute("value", "19")


def test_the_base_checkpoint_list_follows_the_base_run_picked(live_server, page, staff, tmp_path):
    from playwright.sync_api import expect

    folder = tmp_path / "policy-earlier"
    for name in ("final", "checkpoint-2", "checkpoint-4"):
        (folder / name).mkdir(parents=True)
    earlier = PolicyRun.objects.create(status=RunStatus.SUCCEEDED, artifact_path=str(folder))
    log_in(page, live_server, reverse("policy:run_new"))

    checkpoints = page.locator("select[name=base_checkpoint] option")
    expect(checkpoints).to_have_text(["Final model"])
    with page.expect_response(lambda response: reverse("policy:base_checkpoints") in response.url):
        page.select_option("select[name=base_run]", str(earlier.pk))
    expect(checkpoints).to_have_text(["Final model", "Checkpoint at step 2", "Checkpoint at step 4"])
    page.select_option("select[name=base_checkpoint]", "checkpoint-4")
    expect(page.locator("select[name=base_checkpoint]")).to_have_value("checkpoint-4")
