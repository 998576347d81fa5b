"""bin/test's cleanup: the kombu keys of the test Redis database and the temporary var folder go, nothing else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.cleanup import clean_redis, clean_var_dir

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")


@needs_redis
def test_clean_redis_deletes_kombu_keys_only():
    import redis

    url = os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url)
    client.sadd("_kombu.binding.cleanup-test", "x")
    client.set("_kombu.binding_deadlines", "x")
    client.set("arbiter-cleanup-test-keep", "x")
    try:
        assert clean_redis(url) >= 2
        assert not list(client.scan_iter(match="_kombu.*"))
        assert client.get("arbiter-cleanup-test-keep") == b"x", "keys that are not kombu's stay"
    finally:
        client.delete("arbiter-cleanup-test-keep")
        client.close()


def test_clean_var_dir_removes_the_folder_and_its_files(tmp_path):
    folder = tmp_path / "arbiter-test.abc"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "artifacts" / "model.bin").write_bytes(b"x")

    assert clean_var_dir(str(folder))
    assert not folder.exists()
    assert not clean_var_dir(str(folder)), "a second call finds nothing"


def test_the_command_line_bin_test_calls(tmp_path):
    folder = tmp_path / "var"
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "tests.cleanup", "--var-dir", str(folder)], check=True)
    assert not folder.exists()


def test_bin_test_defaults_to_test_only_names_and_cleans_up_on_exit():
    script = (Path(settings.BASE_DIR) / "bin" / "test").read_text()
    assert "arbiter_test_${checkout_hash}" in script, "a database name no deployment uses"
    assert "ARBITER_TEST_REDIS_DB:-14" in script
    assert "trap cleanup EXIT" in script and "python -m tests.cleanup" in script
    assert "\nexec " not in script, "exec would replace the shell and skip the EXIT trap"
