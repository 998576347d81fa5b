"""Large imports as Celery tasks: the upload is kept under IMPORT_DIR and an ImportJob row reports progress.

The import itself is `annotate.importers.import_comparisons`, all or nothing, exactly as in the foreground.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import IO

from django.conf import settings
from django.utils import timezone

from annotate.importers import ImportFileError, import_comparisons, open_source
from annotate.models import ImportJob
from rlhf.memory import release_memory

logger = logging.getLogger(__name__)
COPY_CHUNK_BYTES = 1 << 20


def runs_in_background(fileobj: IO[bytes]) -> bool:
    """Whether an upload is handed to the import task rather than imported in the request: when it *unpacks* to
    more than IMPORT_BACKGROUND_BYTES.

    Only that much is unpacked to tell, a chunk at a time: a 300 KB gzip of 300 MB goes to the task, and a file
    the request could not read (a broken gzip) stays in it, to be refused with the importer's message."""
    threshold = settings.IMPORT_BACKGROUND_BYTES
    size = getattr(fileobj, "size", None)
    if size is not None and size > threshold:
        return True
    unpacked = 0
    try:
        with open_source(fileobj) as stream:
            while chunk := stream.read(COPY_CHUNK_BYTES):
                unpacked += len(chunk)
                if unpacked > threshold:
                    return True
    except ImportFileError:
        return False
    finally:
        fileobj.seek(0)
    return False


def start_import_job(
    fileobj: IO[bytes],
    file_name: str,
    batch_name: str,
    *,
    fmt: str = "auto",
    as_judgments: bool = False,
    active: bool | None = None,
    created_by=None,
    allow_ties: bool = False,
    batch_settings: dict | None = None,
) -> ImportJob:
    """Keep the upload under IMPORT_DIR, record the job, and queue its task once the job is committed."""
    folder = Path(settings.IMPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.upload"
    fileobj.seek(0)
    with open(path, "wb") as kept:
        shutil.copyfileobj(fileobj, kept, COPY_CHUNK_BYTES)
    job = ImportJob.objects.create(
        batch_name=batch_name,
        format=fmt,
        as_judgments=as_judgments,
        allow_ties=allow_ties,
        active=active,
        batch_settings=batch_settings or {},
        file_name=file_name[:255],
        file_path=str(path),
        size_bytes=path.stat().st_size,
        created_by=created_by,
    )
    # The outbox: a broker that is down leaves the job queued (the page says it waits), and the watchdog sends it.
    job.dispatch_on_commit()
    return job


def run_import_job(job_id: int) -> str:
    """Import a queued job's file. A redelivered message finds the job claimed and does nothing."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.CHECKING, started_at=timezone.now()
    )
    if not claimed:
        return "not queued"
    job = ImportJob.objects.get(pk=job_id)

    def progress(phase: str, rows: int) -> None:
        ImportJob.objects.filter(pk=job_id).update(status=phase, rows_done=rows)

    try:
        result = import_comparisons(
            job.file_path,
            job.batch_name,
            fmt=job.format,
            as_judgments=job.as_judgments,
            created_by=job.created_by,
            active=job.active,
            progress=progress,
            allow_ties=job.allow_ties,
            batch_settings=job.batch_settings,
        )
    except ImportFileError as exc:
        _finish(job_id, error=f"{job.file_name}: {exc}. Nothing was imported.")
        return "failed"
    except Exception as exc:
        logger.exception("Import job %s failed", job_id)
        stopped = f"the import stopped ({type(exc).__name__}: {exc})"
        _finish(job_id, error=f"{job.file_name}: {stopped}. Nothing was imported.")
        return "failed"
    finally:
        release_memory()
    _finish(
        job_id,
        batch=result.batch,
        rows_done=result.count,
        items_created=result.count,
        judgments_created=result.judgment_count,
    )
    return "done"


def _finish(job_id: int, error: str = "", **fields) -> None:
    status = ImportJob.Status.FAILED if error else ImportJob.Status.DONE
    ImportJob.objects.filter(pk=job_id).update(status=status, error=error, finished_at=timezone.now(), **fields)
    # The upload is needed no more, whatever the outcome.
    job = ImportJob.objects.filter(pk=job_id).only("file_path").first()
    if job and job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
