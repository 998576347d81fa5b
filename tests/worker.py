"""A real Celery worker process for tests (pytest plugin: `pytest_plugins = ["tests.worker"]`).

The worker runs as in production (`celery -A arbiter worker -Q gpu,celery`, prefork,
concurrency 1, prefetch 1) against the *test* database and the same broker
(REDIS_URL, or the filesystem broker under ARBITER_VAR_DIR). One process serves the
whole session; the function-scoped `celery_worker` fixture restarts it if a test
killed it. Tests that use it get `transactional_db`: the worker only sees committed rows.

    @pytest.mark.worker
    def test_it_trains(celery_worker): ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

READY_TIMEOUT_SECONDS = 90
ROOT = Path(__file__).resolve().parent.parent


def current_database_url() -> str:
    """DATABASE_URL for the database pytest-django is using right now (test_<name>)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    if not db["ENGINE"].endswith("postgresql"):
        raise RuntimeError(f"The worker fixture does not know how to point at {db['ENGINE']}.")
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{'@' if credentials else ''}{host}{port}/{quote(db['NAME'], safe='')}"


class CeleryWorker:
    """A worker subprocess; `output` keeps its log lines (INFO: a few per task) for assertions and failures."""

    def __init__(self, queues: str = "gpu,celery", env: dict[str, str] | None = None) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.queues = queues
        self.extra_env = env or {}
        self.output: list[str] = []
        self.ready = threading.Event()
        self.process: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        env = {
            **os.environ,
            "DATABASE_URL": current_database_url(),
            "ARBITER_VAR_DIR": str(settings.VAR_DIR),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            # Two cores shared by everything: keep torch from spawning a thread per core.
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            **self.extra_env,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "arbiter", "worker",
            "-Q", self.queues, "--concurrency=1", "--pool=prefork", "--prefetch-multiplier=1",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", self.name, "--loglevel=INFO",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its pool child goes down with it, not with our terminal
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("The Celery worker did not start:\n" + self.log())
        return self

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if " ready." in line:
                self.ready.set()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return "\n".join(self.output)

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # TERM is Celery's warm shutdown; a task still running gets killed after the timeout.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def purge_queues() -> None:
    """Drop messages a previous, aborted session left behind: run ids restart with each test database."""
    from arbiter.celery import app

    with app.connection_for_write() as connection:
        for queue in ("gpu", "celery"):
            channel = connection.default_channel
            # A queue that was never declared has nothing to purge.
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """The session's worker process, started once the test database exists."""
    purge_queues()
    worker = CeleryWorker().start()
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(celery_worker_process: CeleryWorker, transactional_db) -> CeleryWorker:
    """A running worker for this test (restarted if an earlier test killed it)."""
    if not celery_worker_process.alive:
        celery_worker_process.__init__()
        celery_worker_process.start()
    return celery_worker_process


def wait_for(condition, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    """Poll `condition()` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {message}.")
        time.sleep(interval)
