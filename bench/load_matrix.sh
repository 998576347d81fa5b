#!/usr/bin/env bash
# The table in docs/benchmarks.md ("Web tier"): bench/load_annotators.py against gunicorn + PostgreSQL on loopback,
# for 1 and 2 web processes, three connection modes, and 1 / 10 / 50 annotators. One JSON line per cell on stdout.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_load bash bench/load_matrix.sh [SECONDS] [ANNOTATORS...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-20}
shift || true
ANNOTATORS=${*:-1 10 50}
export DEBUG=false ALLOWED_HOSTS=127.0.0.1 SECRET_KEY=${SECRET_KEY:-load-benchmark-only-$(date +%s)-secret-key-xxxxxxxxxxxx}
export WEB_BIND=127.0.0.1:${PORT:-8765} WEB_ACCESS_LOG="" WEB_LOG_LEVEL=warning
.venv/bin/python manage.py migrate --noinput >/dev/null
for workers in 1 2; do
  for mode in new-connection persistent pool; do
    case $mode in
      new-connection) env_mode="CONN_MAX_AGE=0 DB_POOL=false" ;;
      persistent) env_mode="CONN_MAX_AGE=60 DB_POOL=false" ;;
      pool) env_mode="DB_POOL=true" ;;
    esac
    env $env_mode WEB_WORKERS=$workers .venv/bin/gunicorn -c gunicorn.conf.py arbiter.wsgi &
    server=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://$WEB_BIND/" && break; sleep 0.2; done
    for n in $ANNOTATORS; do
      env $env_mode .venv/bin/python bench/load_annotators.py --url "http://$WEB_BIND" --annotators "$n" \
        --seconds "$SECONDS_EACH" --label "workers=$workers $mode" || true
    done
    kill "$server"; wait "$server" 2>/dev/null || true
  done
done
