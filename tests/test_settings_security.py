"""Safe by default: DEBUG off unless asked for, no start without a SECRET_KEY outside development, the documented
production environment passes `check --deploy`, a Content-Security-Policy on every response, password validators."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.forms import AdminPasswordChangeForm

ROOT = Path(__file__).resolve().parent.parent
# The production environment README.md documents (besides DATABASE_URL and REDIS_URL).
PRODUCTION_ENV = {
    "SECRET_KEY": "a-production-key-that-is-long-and-random-enough-0123456789abcdefghijklmnop",
    "ALLOWED_HOSTS": "arbiter.example.org",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    """Python with the app's own settings (not the tests'), in an environment without DEBUG or SECRET_KEY."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "arbiter.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_is_off_by_default():
    result = run_django("from django.conf import settings; print(settings.DEBUG)", SECRET_KEY="k" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_secret_key_and_debug_off_the_app_refuses_to_start():
    result = run_django("print('started')")
    assert result.returncode != 0 and "started" not in result.stdout
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "SECURE_SSL_REDIRECT",
            "ture",
            "SECURE_SSL_REDIRECT='ture': expected one of 1, true, yes, on, 0, false, no, off.",
        ),
        ("SECURE_HSTS_SECONDS", "1y", "SECURE_HSTS_SECONDS='1y': expected a whole number."),
        ("RUN_HEARTBEAT_SECONDS", "thirty", "RUN_HEARTBEAT_SECONDS='thirty': expected a number."),
    ],
)
def test_a_mistyped_setting_stops_the_start_naming_the_variable(variable, value, message):
    """Strict env parsing (as healthchecks.io): SECURE_SSL_REDIRECT=ture used to mean False, silently."""
    result = run_django("print('started')", SECRET_KEY="k" * 50, **{variable: value})
    assert result.returncode != 0 and "started" not in result.stdout
    assert f"ImproperlyConfigured: {message}" in result.stderr


def test_boolean_settings_read_the_usual_words():
    code = "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_PRELOAD)"
    result = run_django(code, SECRET_KEY="k" * 50, SECURE_SSL_REDIRECT=" Yes", SECURE_HSTS_PRELOAD="off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_the_development_key_needs_debug_on():
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    result = run_django(code, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "dev-only-insecure-secret-key"]
    result = run_django(code, DEBUG="true", SECRET_KEY="my-own-key")
    assert result.stdout.split() == ["True", "my-own-key"]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("dev-only-insecure-secret-key", "SECRET_KEY is a known development key"),
        ("django-insecure-" + "x" * 50, "SECRET_KEY is a known development key"),
        ("short-but-not-empty", "SECRET_KEY is 19 characters long; at least 32"),
    ],
)
def test_a_known_or_short_key_with_debug_off_refuses_to_start(key, reason):
    result = run_django("print('started')", SECRET_KEY=key)
    assert result.returncode != 0 and "started" not in result.stdout
    assert reason in result.stderr
    # The same key is accepted on a developer's machine.
    assert run_django("print('started')", SECRET_KEY=key, DEBUG="true").stdout.strip() == "started"


def test_the_documented_production_environment_passes_check_deploy():
    code = "from django.core.management import call_command; call_command('check', deploy=True, fail_level='WARNING')"
    result = run_django(code, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout + result.stderr
    # Without the HTTPS settings the same check fails: the test can tell.
    result = run_django(code, SECRET_KEY=PRODUCTION_ENV["SECRET_KEY"], ALLOWED_HOSTS="arbiter.example.org")
    assert result.returncode != 0 and "security.W004" in result.stderr


def test_the_browsable_api_is_off_outside_debug():
    """Its inline scripts and styles break the Content-Security-Policy: outside DEBUG the API answers JSON only."""
    code = "from django.conf import settings; print(settings.REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES'])"
    result = run_django(code, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "JSONRenderer" in result.stdout and "BrowsableAPIRenderer" not in result.stdout
    assert "BrowsableAPIRenderer" in run_django(code, DEBUG="true").stdout


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` as typed by hand: no DEBUG, SECRET_KEY or DATABASE_URL in the environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=300
    )


def test_commands_typed_by_hand_use_the_settings_bin_run_wrote(tmp_path):
    """bin/run keeps DEBUG and its SECRET_KEY in var/env; manage.py reads it, so `manage.py axes_reset` works on a
    bin/run install with nothing set in the shell (it stopped with "SECRET_KEY is not set")."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    without_env_file = manage("axes_reset", ARBITER_VAR_DIR=str(var_dir))
    assert without_env_file.returncode != 0 and "SECRET_KEY is not set" in without_env_file.stderr

    # What bin/run writes (its own database here: an SQLite file in the test's folder).
    (var_dir / "env").write_text(
        "# Written by bin/run\nDEBUG=true\nSECRET_KEY=a-key-bin-run-made\n"
        f"DATABASE_URL=sqlite:///{var_dir / 'arbiter.sqlite3'}\n"
    )
    assert manage("migrate", "axes", ARBITER_VAR_DIR=str(var_dir)).returncode == 0
    result = manage("axes_reset", ARBITER_VAR_DIR=str(var_dir))
    assert result.returncode == 0, result.stderr
    assert "No attempts found" in result.stdout or "attempts removed" in result.stdout
    key = manage(
        "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)", ARBITER_VAR_DIR=str(var_dir)
    )
    assert key.stdout.strip().splitlines()[-1] == "a-key-bin-run-made"
    # The environment wins over the file (a production shell sets its own).
    key = manage(
        "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
        ARBITER_VAR_DIR=str(var_dir), SECRET_KEY="from-the-shell",
    )  # fmt: skip
    assert key.stdout.strip().splitlines()[-1] == "from-the-shell"


def test_the_security_settings_come_from_the_environment():
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds())"
    )
    result = run_django(code, **PRODUCTION_ENV, LOGIN_FAILURE_LIMIT="7", LOGIN_LOCKOUT_MINUTES="30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') True 31536000 True True 7 1800.0"
    result = run_django(code.replace("s.SECURE_PROXY_SSL_HEADER, ", ""), DEBUG="true")
    assert result.stdout.strip() == "False 0 False False 10 900.0", "development: plain HTTP cookies and defaults"


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/batches/", "/dashboard/quality/", "/accounts/token/"])
def test_every_response_carries_a_content_security_policy(path, charlie_client):
    response = charlie_client.get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"


def test_templates_hold_no_inline_script_or_style():
    for template in (ROOT / "templates").rglob("*.html"):
        text = re.sub(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", "", template.read_text(), flags=re.S)
        for inline in ("<style", "style=", "<script>", " onclick=", " onload=", " onchange=", " onsubmit="):
            assert inline not in text, f"{template.relative_to(ROOT)} has {inline!r}"
        # htmx injects an inline <style> unless its config (htmx reads the first one only) turns that off.
        for config in re.findall(r'<meta name="htmx-config" content=\'(.*?)\'>', text):
            assert json.loads(config)["includeIndicatorStyles"] is False, template.relative_to(ROOT)


def test_password_validators_refuse_weak_passwords(alice):
    for weak in ("1", "password", "12345678901", "alice1"):
        form = AdminPasswordChangeForm(alice, {"password1": weak, "password2": weak})
        assert not form.is_valid(), weak
    strong = "correct-horse-battery-staple"
    assert AdminPasswordChangeForm(alice, {"password1": strong, "password2": strong}).is_valid()
