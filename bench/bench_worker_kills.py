"""Worker kills: does every run whose worker is SIGKILLed end failed-with-reason (or resumed), none stuck? NOT CI.

For each kind, K times: start a reward run (a tiny BERT, as tests/rewardmodel/helpers.py builds it) on a real
Celery worker (tests/worker.py's CeleryWorker: prefork, concurrency 1, queues gpu,celery), wait until it is
running with step > 0, then SIGKILL

- "main":  the worker's main process (its pool child dies with it: Celery sets PR_SET_PDEATHSIG), then start a
  fresh worker: the fresh worker's start-up check (runs.tasks.watch_runs_at_worker_start) is what notices;
- "child": the pool child training the run (the pid in run.worker); the main process survives, forks a new child
  and requeues the unacknowledged task (CELERY_TASK_REJECT_ON_WORKER_LOST): the redelivery's claim fails and its
  check_worker() fails the run. No fresh worker is started (the old one is still serving).

- "main-alone": the worker's main process, and nothing is restarted: the single-worker topology (`-Q gpu,celery`)
  with nothing watching, no worker left to run beat's task; with `--api-poll` a client reads the run through the
  API every second (GET /api/reward-runs/{id}/, in-process through Django's test client), whose lost-worker check
  (runs.watchdog.watch_from_web, at most every RUN_WEB_WATCH_SECONDS) is then the only thing that can notice;

and time, from the kill, until the run leaves "running" (failed with the worker-lost reason; with
RUN_AUTO_RESUME=true, failed then queued again: the bench then waits for it to end and counts it succeeded).
A run still running after RUN_STALE_MINUTES + RUN_WATCH_SECONDS is counted stuck. No beat process runs and the
bench does not call the check itself unless `--poll` is given (then it calls run.check_worker() every second, as
a dashboard poll of a running run does). Which path acted is read from the worker's log.

    createdb -h 127.0.0.1 -U postgres arbiter_benchkill
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_benchkill ARBITER_VAR_DIR=$(mktemp -d) \\
      .venv/bin/python manage.py migrate --settings=tests.settings
    nice -n 19 .venv/bin/python bench/bench_worker_kills.py [--kills 10] [--kinds main,child] [--auto-resume]
    nice -n 19 .venv/bin/python bench/bench_worker_kills.py --kinds main-alone --kills 3 --api-poll

Uses Redis db 13 (REDIS_URL, default redis://127.0.0.1:6379/13), which it flushes; only that db. Every worker it
started is killed (process group) before it exits; the last JSON line says how many were left (0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per kind (default 10)")
    parser.add_argument("--kinds", default="main,child", help="comma-separated: main, child, main-alone")
    parser.add_argument("--auto-resume", action="store_true", help="RUN_AUTO_RESUME=true: count runs that succeed")
    parser.add_argument("--poll", action="store_true", help="also call run.check_worker() every second (a poll)")
    parser.add_argument("--api-poll", action="store_true", help="read the run through the API every second")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of 6 one-pair steps (default 40: 240 steps)")
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument(
        "--database-url", default=os.getenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arbiter_benchkill")
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    return parser.parse_args()


ARGS = parse_args()
os.environ["DATABASE_URL"] = ARGS.database_url
os.environ["REDIS_URL"] = ARGS.redis_url
os.environ.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="benchkill-"))
os.environ["RUN_AUTO_RESUME"] = "true" if ARGS.auto_resume else "false"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from rewardmodel.services import start_reward_run  # noqa: E402
from runs.models import RunStatus  # noqa: E402
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch  # noqa: E402
from tests.worker import CeleryWorker  # noqa: E402

LIMIT_SECONDS = settings.RUN_STALE_MINUTES * 60 + settings.RUN_WATCH_SECONDS
LOST = "stopped before it finished"
STARTED: list[CeleryWorker] = []


def new_worker() -> tuple[CeleryWorker, float]:
    began = time.monotonic()
    worker = CeleryWorker()
    STARTED.append(worker)
    worker.start()
    return worker, time.monotonic() - began


def wait(condition, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    return None


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def path_in_log(lines: list[str]) -> str:
    text = "\n".join(lines)
    if "Run watchdog at worker start-up: {'failed': 1" in text:
        return "startup"
    if "lost its worker; marked failed" in text:
        return "redelivery"
    if "Run watchdog:" in text:
        return "beat"
    return "poll" if ARGS.poll else "api" if ARGS.api_poll else "unknown"


def one_kill(kind: str, worker: CeleryWorker, user, batch, backbone: str) -> tuple[dict, CeleryWorker]:
    options = {"epochs": ARGS.epochs, "batch_size": 1, "eval_fraction": 0.25, "log_every": 1}
    run = start_reward_run(
        user, [batch], backbone=backbone, learning_rate=1e-3, checkpoint_every=ARGS.checkpoint_every, **options
    )

    def training():
        run.refresh_from_db()
        return run.status == RunStatus.RUNNING and run.step > 0

    if not wait(training, timeout=180):
        run.refresh_from_db()
        return {"run": run.pk, "outcome": "never-started", "status": run.status}, worker
    victim = worker.process.pid if kind in ("main", "main-alone") else int(run.worker.rpartition(":")[2])
    step_at_kill, resumes_before, log_from = run.step, run.resumes, len(worker.output)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    restart_s = None
    watched = worker
    child_left = None
    if kind in ("main", "main-alone"):
        worker.process.wait(10)
        time.sleep(1)
        child_left = process_state(int(run.worker.rpartition(":")[2]))  # "gone", "Z" (zombie), or running
        # Its pool child dies by PR_SET_PDEATHSIG; make sure nothing of that group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim, signal.SIGKILL)
        if kind == "main":
            worker, restart_s = new_worker()
            watched, log_from = worker, 0

    def left_running():
        if ARGS.api_poll:
            api_client(user).get(f"/api/reward-runs/{run.pk}/")
        if ARGS.poll:
            run.refresh_from_db()
            run.check_worker()
        run.refresh_from_db()
        return run.status != RunStatus.RUNNING or run.resumes > resumes_before

    interval = 1.0 if ARGS.api_poll else 0.2
    detected = wait(left_running, timeout=max(LIMIT_SECONDS - (time.monotonic() - killed_at), 1), interval=interval)
    detect_s = time.monotonic() - killed_at
    result = {
        "run": run.pk,
        "victim": victim,
        "step_at_kill": step_at_kill,
        "child_state_1s_after_main_kill": child_left,
        "restart_s": round(restart_s, 2) if restart_s is not None else None,
        "detect_s": round(detect_s, 2) if detected else None,
        "path": path_in_log(watched.output[log_from:]) if detected else None,
    }
    if not detected:
        return {**result, "outcome": "stuck", "status": run.status}, worker
    if ARGS.auto_resume:
        run.refresh_from_db()
        resumed = run.resumes > resumes_before
        ended = wait(lambda: run.refresh_from_db() or run.is_finished, timeout=LIMIT_SECONDS)
        outcome = "succeeded" if ended and resumed and run.status == RunStatus.SUCCEEDED else "other"
        return {**result, "outcome": outcome, "status": run.status, "resume_step": run.resume_step}, worker
    ok = run.status == RunStatus.FAILED and LOST in run.error and run.can_resume
    return {**result, "outcome": "failed-with-reason" if ok else "other", "error": run.error[:160]}, worker


def api_client(user):
    from rest_framework.test import APIClient

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = APIClient()
    client.force_authenticate(user)
    return client


def summary(kind: str, results: list[dict]) -> dict:
    times = [r["detect_s"] for r in results if r.get("detect_s") is not None]
    outcomes = [r["outcome"] for r in results]
    paths = [r["path"] for r in results if r.get("path")]
    return {
        "kind": kind,
        "auto_resume": ARGS.auto_resume,
        "killed": len(results),
        "failed_with_reason": outcomes.count("failed-with-reason"),
        "resumed_succeeded": outcomes.count("succeeded"),
        "stuck": outcomes.count("stuck"),
        "other": len(results) - sum(outcomes.count(o) for o in ("failed-with-reason", "succeeded", "stuck")),
        "detect_median_s": round(statistics.median(times), 2) if times else None,
        "detect_max_s": max(times) if times else None,
        "limit_s": LIMIT_SECONDS,
        "paths": {p: paths.count(p) for p in sorted(set(paths))},
        "restart_median_s": (
            round(statistics.median([r["restart_s"] for r in results if r.get("restart_s")]), 2)
            if any(r.get("restart_s") for r in results)
            else None
        ),
    }


def left_behind() -> int:
    alive = 0
    for worker in STARTED:
        if worker.process is None:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.process.pid, 0)
            alive += 1
    return alive


def main() -> None:
    redis.Redis.from_url(ARGS.redis_url).flushdb()  # db 13 only
    user, _ = get_user_model().objects.get_or_create(
        username="benchkill", defaults={"is_staff": True, "is_superuser": True}
    )
    batch = judged_batch(f"benchkill-{int(time.time())}", user, items=8)
    backbone = build_tiny_backbone(Path(settings.VAR_DIR) / "models" / "tiny-backbone")  # inside the model roots
    worker, _ = new_worker()
    try:
        for kind in ARGS.kinds.split(","):
            results = []
            for n in range(ARGS.kills):
                if not worker.alive:
                    worker, _ = new_worker()
                result, worker = one_kill(kind, worker, user, batch, backbone)
                results.append(result)
                print(json.dumps({"kind": kind, "n": n + 1, **result}), file=sys.stderr, flush=True)
            print(json.dumps(summary(kind, results)), flush=True)
    finally:
        for started in STARTED:
            with contextlib.suppress(Exception):
                started.stop(timeout=10)
            if started.process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(started.process.pid, signal.SIGKILL)
        time.sleep(0.5)
        print(json.dumps({"workers_started": len(STARTED), "worker_groups_left": left_behind()}), flush=True)


if __name__ == "__main__":
    main()
