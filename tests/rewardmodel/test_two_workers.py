"""Many workers: two real worker processes on this machine, each consuming queue `gpu`, train two runs at once, and
neither run is taken twice. The workers write to an object store through fsspec (ARTIFACT_STORAGE_URL), here a
`file://` URL to another folder: the same fsspec calls as `s3://`, without a server. The web side then streams the
download from the store and scores with a cached local copy."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from rewardmodel.models import RewardModelRun
from rewardmodel.services import score_with_run, start_reward_run
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import CeleryWorker, purge_queues, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Long enough (a few seconds of steps) that the two runs overlap in time.
SLOW_TINY = {"epochs": 15, "batch_size": 1, "eval_fraction": 0.25, "log_every": 5, "learning_rate": 1e-3}


@pytest.fixture
def two_gpu_workers(celery_worker_process, settings, tmp_path):
    """Two workers on `gpu` writing to a file:// store; the session's worker stands aside meanwhile (the `celery_worker`
    fixture restarts it for later tests)."""
    celery_worker_process.stop()
    purge_queues()
    store = f"file://{tmp_path / 'object-store'}"
    settings.ARTIFACT_STORAGE_URL = store
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    workers = [CeleryWorker(queues="gpu", env={"ARTIFACT_STORAGE_URL": store}) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def _finished(run: RewardModelRun) -> RewardModelRun | None:
    run.refresh_from_db()
    return run if run.is_finished else None


def test_two_workers_train_two_runs_at_once_each_exactly_once(two_gpu_workers, charlie, alice, tmp_path, client):
    backbone = build_tiny_backbone(tmp_path / "tiny-backbone")
    batch = judged_batch("b", alice, items=16)
    runs = [start_reward_run(charlie, [batch], backbone=backbone, **SLOW_TINY) for _ in range(2)]
    logs = lambda: "\n\n".join(w.log() for w in two_gpu_workers)  # noqa: E731

    for run in runs:
        wait_for(lambda run=run: _finished(run), timeout=180, message=f"run {run.pk} to finish\n{logs()}")

    first, second = runs
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED] * 2, [run.error for run in runs]
    # Trained by two different processes, at the same time.
    assert first.worker != second.worker
    assert first.started_at < second.finished_at and second.started_at < first.finished_at
    # Each worker received exactly one task: no run was taken twice.
    received = [
        sum("Task rewardmodel.tasks.train_reward_run[" in line and line.endswith("received") for line in w.output)
        for w in two_gpu_workers
    ]
    assert received == [1, 1], logs()
    for run in runs:
        assert sorted(run.logs.values_list("step", flat=True)) == sorted(set(run.logs.values_list("step", flat=True)))
        # In the store, not in the worker's scratch folder.
        assert run.artifact_path == f"{two_gpu_workers[0].extra_env['ARTIFACT_STORAGE_URL']}/reward-{run.pk}"
        assert not run.planned_artifact_dir.exists()

    client.force_login(charlie)
    response = client.get(reverse("rewardmodel:run_download", args=[first.pk]))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert f"reward-{first.pk}/model.safetensors" in archive.namelist()

    reward_1, reward_2 = score_with_run(first, "what is the sun", "the sun is good", "no")
    assert isinstance(reward_1, float) and isinstance(reward_2, float)
    assert Path(first.artifact_dir).parent == Path(tmp_path / "cache")
