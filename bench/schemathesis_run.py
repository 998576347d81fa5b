"""Schemathesis against a live development server: the API must answer as its OpenAPI schema says.

Starts `manage.py runserver --noreload` on 127.0.0.1 with DEBUG on, a fresh SQLite database in a temporary
ARBITER_VAR_DIR and the filesystem broker (no worker: runs started by the fuzzer stay queued, nothing trains),
loads the demo (`create_demo`), makes API tokens for the annotator `alice` and the staff user `admin`
(`create_api_token`), then runs `schemathesis run --checks all` once per token, the annotator first (staff may
delete the demo batch). Exits non-zero on any server error, schema violation or other failed check.

    .venv/bin/python bench/schemathesis_run.py                    # the full run: every phase, ~3,000 cases per token
    .venv/bin/python bench/schemathesis_run.py --max-examples 6   # the short form .ci/run runs

Left out, because they would end the run's own authentication: POST and DELETE of /api/auth/token/ (with a token
they rotate or revoke that very token) and of /api/auth/tokens/{username}/ (staff rotating or revoking a token,
the annotator's included). Their GET is tested; their writes are covered by tests/accounts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SCHEMATHESIS = str(Path(PYTHON).with_name("schemathesis"))
# Token writes would rotate or revoke the token the run authenticates with (see the docstring).
EXCLUDED_OPERATIONS = r"^auth_tokens?_(create|destroy)$"
CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
ROLES = {"annotator": "alice", "staff": "admin"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DEBUG="true",
        ARBITER_VAR_DIR=str(var_dir),
        SECRET_KEY=secrets.token_urlsafe(50),
        # The fuzzer tries wrong passwords on the token endpoint; it must not lock the address out mid-run.
        LOGIN_FAILURE_LIMIT="1000000",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return result.stdout


def wait_for(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"runserver exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without a token)
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"runserver did not answer {url} within {timeout} s")


def summary(output: str) -> str:
    """Schemathesis' own tally: "N generated, M found K unique failures, ..." (the line under "Test cases:")."""
    lines = output.splitlines()
    for number, line in enumerate(lines):
        if line.strip() == "Test cases:" and number + 1 < len(lines):
            return lines[number + 1].strip()
    return "no summary (see the output above)"


def run_schemathesis(base_url: str, token: str, role: str, args: argparse.Namespace, report_dir: Path) -> int:
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG_FILE),
        "run",
        f"{base_url}/api/schema/",
        "--url",
        base_url,
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        "all",
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--exclude-operation-id-regex",
        EXCLUDED_OPERATIONS,
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "60",
        # Django's development server now and then drops a keep-alive connection after an early answer (403)
        # to a request whose body it did not read: a network error, not an answer, so it is tried again.
        "--request-retries",
        "2",
        *args.schemathesis_args,
    ]
    shown = " ".join("'Authorization: Token …'" if "Token " in part else part for part in command)
    print(f"== {role} ({ROLES[role]}): {shown}")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        print(line, end="")
        output.append(line)
    code = process.wait()
    print(f"== {role}: {summary(''.join(output))}; exit {code}")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=5, help="Cases per operation, phase and token.")
    parser.add_argument("--seed", type=int, default=1, help="Hypothesis seed (reproducible runs).")
    parser.add_argument("--workers", default="1", help="Concurrent schemathesis workers.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (database, reports, log).")
    parser.add_argument("schemathesis_args", nargs="*", help="Extra arguments for `schemathesis run` (after --).")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="arbiter-schemathesis."))
    env = server_env(var_dir)
    manage(env, "migrate", "--noinput")
    manage(env, "create_demo")
    tokens = {role: manage(env, "create_api_token", username).strip() for role, username in ROLES.items()}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = (var_dir / "runserver.log").open("w")
    server = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        wait_for(f"{base_url}/api/", server)
        codes = [run_schemathesis(base_url, tokens[role], role, args, var_dir) for role in ROLES]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    print(f"== {time.monotonic() - started:.0f} s; files in {var_dir}" if args.keep else "")
    if any(codes):
        print("runserver log (tail):\n" + "\n".join((var_dir / "runserver.log").read_text().splitlines()[-40:]))
    if not args.keep:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
