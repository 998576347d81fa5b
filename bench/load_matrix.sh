#!/usr/bin/env bash
# The tables in docs/benchmarks.md ("Web tier", "Annotation serving"): bench/load_annotators.py against gunicorn +
# PostgreSQL on loopback, one JSON line per cell on stdout. Everything runs under nice (a shared machine).
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_load bash bench/load_matrix.sh [SECONDS] [ANNOTATORS...]
# Environment: WORKERS (gunicorn processes, default "1 2"), MODES (connection modes among new-connection, persistent,
# pool; default all three), PATHS (api, browser; default api), ITEMS (default 10080), PORT, LOAD_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-20}
shift || true
ANNOTATORS=${*:-1 10 50}
WORKERS=${WORKERS:-1 2}
MODES=${MODES:-new-connection persistent pool}
PATHS=${PATHS:-api}
ITEMS=${ITEMS:-10080}
# The load generator needs httpx (bench/requirements.txt), in a venv that also sees the project venv.
LOAD_PYTHON=${LOAD_PYTHON:-.venv/bin/python}
export DEBUG=false ALLOWED_HOSTS=127.0.0.1 SECRET_KEY=${SECRET_KEY:-load-benchmark-only-$(date +%s)-secret-key-xxxxxxxxxxxx}
# Plain HTTP on loopback: cookies must not be marked Secure or the browser path's session and CSRF cookies are dropped.
export SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
export WEB_BIND=127.0.0.1:${PORT:-8765} WEB_ACCESS_LOG="" WEB_LOG_LEVEL=warning
.venv/bin/python manage.py migrate --noinput >/dev/null
for workers in $WORKERS; do
  for mode in $MODES; do
    case $mode in
      new-connection) env_mode="CONN_MAX_AGE=0 DB_POOL=false" ;;
      persistent) env_mode="CONN_MAX_AGE=60 DB_POOL=false" ;;
      pool) env_mode="DB_POOL=true" ;;
    esac
    env $env_mode WEB_WORKERS=$workers nice -n 19 .venv/bin/gunicorn -c gunicorn.conf.py arbiter.wsgi &
    server=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://$WEB_BIND/" && break; sleep 0.2; done
    for path in $PATHS; do
      for n in $ANNOTATORS; do
        env $env_mode nice -n 19 "$LOAD_PYTHON" bench/load_annotators.py --url "http://$WEB_BIND" --annotators "$n" \
          --seconds "$SECONDS_EACH" --items "$ITEMS" --path "$path" --label "workers=$workers $mode" || true
      done
    done
    kill "$server"; wait "$server" 2>/dev/null || true
  done
done
