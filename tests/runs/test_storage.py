"""Artifacts in an object store through fsspec (runs.storage), tested on fsspec's in-memory filesystem
("memory://"): the same calls an s3:// URL goes through, with no server."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import fsspec
import pytest

from runs import storage
from runs.dashboard import zip_stream


@pytest.fixture
def store(settings, tmp_path) -> str:
    url = f"memory://arbiter-test-{uuid.uuid4().hex[:8]}/artifacts"
    settings.ARTIFACT_STORAGE_URL = url + "/"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    fs.rm(path, recursive=True)


def _run_folder(root: Path) -> Path:
    folder = root / "reward-7"
    (folder / "checkpoint-5").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00weights" * 1000)
    (folder / "checkpoint-5" / "config.json").write_text("{}")
    return folder


def test_without_a_store_a_folder_stays_where_it_was_written(settings, tmp_path):
    settings.ARTIFACT_STORAGE_URL = ""
    folder = _run_folder(tmp_path)
    assert storage.publish(folder) == str(folder)
    assert folder.is_dir() and storage.local_folder(str(folder)) == folder


def test_a_published_folder_is_uploaded_whole_and_the_scratch_copy_removed(store, tmp_path):
    folder = _run_folder(tmp_path / "scratch")
    location = storage.publish(folder)

    assert location == f"{store}/reward-7"
    assert not folder.exists()
    assert storage.exists(location) and not storage.exists(f"{store}/reward-8")
    assert list(storage.iter_files(location)) == [("checkpoint-5/config.json", 2), ("model.safetensors", 8000)]
    assert storage.subfolders(location) == ["checkpoint-5"]


def test_publishing_again_replaces_what_an_earlier_attempt_left(store, tmp_path):
    storage.publish(_run_folder(tmp_path / "first"))
    second = _run_folder(tmp_path / "second")
    (second / "model.safetensors").write_bytes(b"new")
    location = storage.publish(second)
    assert dict(storage.iter_files(location)) == {"checkpoint-5/config.json": 2, "model.safetensors": 3}


def test_a_download_streams_the_zip_from_the_store(store, tmp_path):
    location = storage.publish(_run_folder(tmp_path))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(location, root_name="reward-7", chunk_size=1000))))
    assert sorted(archive.namelist()) == ["reward-7/checkpoint-5/config.json", "reward-7/model.safetensors"]
    assert archive.read("reward-7/model.safetensors") == b"\x00weights" * 1000


def test_loading_a_stored_model_copies_it_to_the_cache_once(store, settings, tmp_path):
    location = storage.publish(_run_folder(tmp_path))
    local = storage.local_folder(location)
    assert local.parent == settings.ARTIFACT_CACHE_DIR
    assert (local / "model.safetensors").read_bytes() == b"\x00weights" * 1000
    assert (local / "checkpoint-5" / "config.json").is_file()
    fs, path = fsspec.core.url_to_fs(location)
    fs.rm(path, recursive=True)  # a complete copy is never fetched again
    assert storage.local_folder(location) == local
