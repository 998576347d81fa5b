"""gunicorn.conf.py: what two gunicorn instances on one host must not share."""

from __future__ import annotations

import runpy
from pathlib import Path

from gunicorn.config import Config

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def _settings(monkeypatch, var_dir: Path, **env: str) -> Config:
    monkeypatch.setenv("ARBITER_VAR_DIR", str(var_dir))
    monkeypatch.delenv("WEB_CONTROL_SOCKET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    for name, value in runpy.run_path(str(CONF)).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_each_instance_has_its_own_control_socket(monkeypatch, tmp_path):
    first = _settings(monkeypatch, tmp_path / "one")
    second = _settings(monkeypatch, tmp_path / "two")
    assert first.control_socket == str(tmp_path / "one" / "gunicorn.ctl")
    assert second.control_socket == str(tmp_path / "two" / "gunicorn.ctl")
    assert not first.control_socket_disable


def test_the_control_socket_can_be_turned_off(monkeypatch, tmp_path):
    assert _settings(monkeypatch, tmp_path, WEB_CONTROL_SOCKET="").control_socket_disable
