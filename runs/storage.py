"""Where finished run folders live, so that workers on other machines write where the web app can read.

Two places, chosen by ARTIFACT_STORAGE_URL:

- unset: `ARTIFACTS_DIR` itself (var/artifacts, or a shared mount such as NFS that every machine sees). The run's
  `artifact_path` is the folder's path.
- a URL (`s3://bucket/prefix`, `gs://…`, `file:///shared/artifacts`, `memory://…`): an object store reached through
  fsspec (the operator installs the backend: s3fs, gcsfs…). Training still writes to `ARTIFACTS_DIR` on the worker,
  a local scratch folder; the finished folder is uploaded (put, recursive) to `<URL>/<prefix>-<id>`, the scratch copy
  is removed, and the run's `artifact_path` is that URL.

Readers never care which: downloads stream the files from wherever they are (`iter_files` / `open_file`), listings
use `subfolders`, and code that loads a model (scoring, a policy's reward model or base weights) asks `local_folder`,
which is the folder itself when local and otherwise a copy in ARTIFACT_CACHE_DIR, downloaded once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec
from django.conf import settings

# Written last into a cached copy: a folder without it is an interrupted download, fetched again.
CACHE_COMPLETE_MARKER = ".arbiter-complete"


def is_url(location: str) -> bool:
    return "://" in location


def store_url() -> str:
    """ARTIFACT_STORAGE_URL without a trailing slash; "" when artifacts stay in ARTIFACTS_DIR."""
    return settings.ARTIFACT_STORAGE_URL.rstrip("/")


def join(location: str, *names: str) -> str:
    """`location` / names, for a path or a URL alike."""
    if is_url(location):
        return "/".join([location.rstrip("/"), *names])
    return str(Path(location).joinpath(*names))


def basename(location: str) -> str:
    """The folder's own name (`reward-7`), for a path or a URL alike."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def _filesystem(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(location)


def publish(local_folder: Path) -> str:
    """Put a finished run folder where readers find it and return that location.

    Without a store the folder stays where it is. With one it is uploaded to `<store>/<folder name>` (anything an
    earlier attempt left there is replaced), then removed here: it was scratch space on the worker.
    """
    url = store_url()
    if not url:
        return str(local_folder)
    target = join(url, local_folder.name)
    fs, path = _filesystem(target)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    # cp -r semantics: the target does not exist, so it becomes a copy of the folder (not a folder inside it).
    fs.put(str(local_folder), path, recursive=True)
    shutil.rmtree(local_folder, ignore_errors=True)
    return target


def exists(location: str) -> bool:
    """Whether the folder at `location` is there (a store that cannot be reached counts as not there)."""
    if not is_url(location):
        return Path(location).is_dir()
    try:
        fs, path = _filesystem(location)
        return fs.isdir(path)
    except OSError:
        return False


def subfolders(location: str) -> list[str]:
    """Names of the folders directly inside `location`."""
    if not is_url(location):
        folder = Path(location)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    fs, path = _filesystem(location)
    return sorted(
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(path, detail=True)
        if entry["type"] == "directory"
    )


def iter_files(location: str) -> Iterator[tuple[str, int]]:
    """(path relative to `location` in POSIX form, size in bytes) of every file under it, sorted by path."""
    if not is_url(location):
        folder = Path(location)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield path.relative_to(folder).as_posix(), path.stat().st_size
        return
    fs, root = _filesystem(location)
    root = root.rstrip("/")
    found = fs.find(root, detail=True)
    for name in sorted(found):
        yield name[len(root) + 1 :], int(found[name].get("size") or 0)


def open_file(location: str, relative: str) -> IO[bytes]:
    """One file under `location`, opened for reading in binary (a streamed object-store read when remote)."""
    if not is_url(location):
        return (Path(location) / relative).open("rb")
    return fsspec.open(join(location, relative), "rb").open()


def local_folder(location: str) -> Path:
    """A folder on this machine holding what `location` holds: itself when local, else a cached copy.

    The copy is downloaded once into ARTIFACT_CACHE_DIR (under a name made from the URL) through a temporary folder
    that is renamed when complete, so two processes fetching at once never see half a model. Finished artifacts never
    change, so a complete copy is never fetched again.
    """
    if not is_url(location):
        return Path(location)
    cache_root = Path(settings.ARTIFACT_CACHE_DIR)
    name = location.rstrip("/").rsplit("/", 1)[-1]
    cached = cache_root / f"{hashlib.sha256(location.encode()).hexdigest()[:16]}-{name}"
    if (cached / CACHE_COMPLETE_MARKER).is_file():
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    download = cache_root / f".{cached.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fs, path = _filesystem(location)
    try:
        fs.get(path, str(download), recursive=True)
        download.mkdir(exist_ok=True)  # an empty folder gets no local copy from get()
        (download / CACHE_COMPLETE_MARKER).touch()
        if cached.exists():
            shutil.rmtree(cached, ignore_errors=True)  # an earlier, interrupted copy
        try:
            download.rename(cached)
        except OSError:
            if not (cached / CACHE_COMPLETE_MARKER).is_file():  # not another process's finished copy: a real error
                raise
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return cached
