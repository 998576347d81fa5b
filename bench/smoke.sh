#!/usr/bin/env bash
# Every bench script once, with tiny arguments (a few seconds each), so that none of them rots: .ci/run calls this.
# The figures printed mean nothing; what counts is that each script runs to the end. A script that needs what a CI
# machine lacks (TRL, a downloaded model, the HH data) is run in a tiny mode, or skipped with the reason printed.
# Needs PostgreSQL and Redis on 127.0.0.1 (as .ci/run starts them); makes and drops databases arbiter_smoke_*.
#   bash bench/smoke.sh [NAME...]     # all scripts, or only those whose file name contains a NAME
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG=postgres://postgres@127.0.0.1:5432
scratch=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-smoke.XXXXXX")
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  for db in arbiter_smoke arbiter_smoke_export arbiter_smoke_ordering; do
    dropdb -h 127.0.0.1 -U postgres --if-exists "$db" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 DEBUG=true ALLOWED_HOSTS=127.0.0.1,testserver
export ARBITER_VAR_DIR=$scratch/var DATABASE_URL=$PG/arbiter_smoke
unset REDIS_URL
dropdb -h 127.0.0.1 -U postgres --if-exists arbiter_smoke && createdb -h 127.0.0.1 -U postgres arbiter_smoke 2>/dev/null
$PY manage.py migrate --noinput >/dev/null
total_started=$SECONDS
wanted() { [ ${#ONLY[@]} -eq 0 ] && return 0; for name in "${ONLY[@]}"; do [[ $1 == *$name* ]] && return 0; done; return 1; }
ONLY=("$@")
smoke() {  # smoke SCRIPT ARGS...: run it, print its output only when it fails
  local script=$1 started=$SECONDS
  wanted "$script" || return 0
  if "$PY" "$@" >"$scratch/out" 2>&1; then
    echo "ok    $script ($((SECONDS - started)) s)"
  else
    cat "$scratch/out"; echo "FAIL  $script: $*"; exit 1
  fi
}
skip() { wanted "$1" || return 0; echo "skip  $1: $2"; }

# Tiny inputs: a 1-layer random BERT (tests/rewardmodel/helpers.py) and a 24-pair file in the HH format.
$PY - "$scratch" <<'PYTHON'
import json, os, sys
from pathlib import Path
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")
django.setup()
from tests.rewardmodel.helpers import build_tiny_backbone
scratch = Path(sys.argv[1])
build_tiny_backbone(scratch / "tiny")
rows = [{"chosen": f"\n\nHuman: what is {i} plus {i}?\n\nAssistant: it is {2 * i}.",
         "rejected": f"\n\nHuman: what is {i} plus {i}?\n\nAssistant: no idea."} for i in range(24)]
(scratch / "hh.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
PYTHON
tiny=$scratch/tiny

smoke bench/bench_reward.py --only ours --backbone "$tiny" --data "$scratch/hh.jsonl" --pairs 16 --max-length 64
if "$PY" -c "import trl" 2>/dev/null; then
  smoke bench/bench_reward.py --only trl --backbone "$tiny" --data "$scratch/hh.jsonl" --pairs 16 --max-length 64
else
  skip "bench/bench_reward.py --only trl" "TRL is not installed (bench/requirements.txt, a separate venv)"
fi
smoke bench/bench_assignment.py --sizes 500 --judged 0 0.5 --repeats 1 --live-hits 2
smoke bench/bench_concurrency.py --annotators 4 --ratings 6 --overlap 1 2 --db-connections 4
smoke bench/bench_broker_down.py --ratings 6 --runs 2 --live-broker redis://127.0.0.1:6379/12
smoke bench/bench_inputs.py --mb 1
smoke bench/bench_export.py --judgments 2000 --baseline-rows 200 --database arbiter_smoke_export --skip-tracemalloc
smoke bench/bench_ordering.py --model tiny --items 50 --database arbiter_smoke_ordering
smoke bench/profile_requests.py --path browser --rounds 1  # the API path is the same code with fewer parts
smoke bench/bench_worker_kills.py --kills 1 --kinds child --epochs 3 --checkpoint-every 1 --redis-url redis://127.0.0.1:6379/12 \
  --database-url "$DATABASE_URL"
skip bench/bench_reinforce.py "needs the converted SmolLM2 policy (a download); tests/policy runs its code on tiny models"
smoke bench/bench_import_memory.py --bomb-mib 1 --array-mib 1
skip bench/bench_dpo.py "needs the converted SmolLM2 policy and TRL; tests/policy/test_dpo.py runs our trainer on tiny models"
skip bench/bench_loop.py "the whole loop on the demo policy, 15+ minutes of CPU"
skip bench/bench_policy_cache.py "times the 90 s GGUF conversion; tests/policy/test_policy_loading.py runs the same code"
skip bench/fuzz_numbers.py "about 7,400 requests, minutes on 2 cores; run by hand (docs/reliability.md)"
skip bench/curve_active.py "needs MiniLM features of the HH file (a download); bench/simulate.py's head is in tests"
skip bench/curve_rankings.py "needs MiniLM features of the HH file (a download)"
skip bench/simulate.py "a library of the two curve scripts above"
skip bench/schemathesis_run.py ".ci/run runs it on its own"
# The load script against a real server: gunicorn on a free loopback port, production settings but plain HTTP.
# It needs httpx (bench/requirements.txt): LOAD_PYTHON names an interpreter that has it, as for bench/load_matrix.sh.
LOAD_PYTHON=${LOAD_PYTHON:-$PY}
if ! "$LOAD_PYTHON" -c "import httpx" 2>/dev/null; then
  skip bench/load_annotators.py "httpx is not installed for $LOAD_PYTHON (bench/requirements.txt; set LOAD_PYTHON)"
elif wanted bench/load_annotators.py; then
  port=$($PY -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  DEBUG=false SECRET_KEY=smoke-only-secret-key-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ARBITER_BENCH_PLAIN_HTTP=true \
    WEB_BIND=127.0.0.1:$port WEB_WORKERS=1 WEB_ACCESS_LOG="" WEB_LOG_LEVEL=warning \
    .venv/bin/gunicorn -c gunicorn.conf.py arbiter.wsgi >"$scratch/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  for path in api browser; do
    PY=$LOAD_PYTHON smoke bench/load_annotators.py --url "http://127.0.0.1:$port" --annotators 2 --seconds 2 --items 60 --path $path
  done
fi
echo "total $((SECONDS - total_started)) s"
