#!/usr/bin/env bash
# Side by side with django-otp, in one run on this machine: the baselines of ../shared/bench/
# (django-otp in a Python venv) and ours, on the same databases with the same durability, then
# the ratios into BENCHMARKS.md ("Side by side with django-otp", between its compare.sh
# markers). About three minutes; loopback only; every server started here is stopped on exit.
#
#   bench/compare.sh                 # from the repository, whose parent holds shared/bench
#
# Needs: PostgreSQL on 127.0.0.1:5432 (user postgres, no password), psql, python3, curl, wrk
# (apt-get install -y wrk, done here when run as root), and PyPI for the venv's first set-up.
# Environment (defaults in brackets):
#   SHARED [../shared/bench]   VENV [/tmp/django-otp-bench/venv]   WORK [/tmp/otp-compare]
#   PG_URL [postgres://postgres@127.0.0.1:5432/postgres]  (a server where databases can be made)
#   RUNS [3] SECONDS_PER_RUN [1]      django_otp_bench.py: median of RUNS runs
#   BENCH_SECONDS [3]                 otp bench: seconds per phase
#   HTTP_DURATION [10s] CONNS [16] THREADS [2]   wrk, as http_bench.sh (one run per endpoint)
#   WRITE [1]                         0: print the section, leave BENCHMARKS.md alone
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$(cd "$REPO/.." && pwd)/shared/bench}
VENV=${VENV:-/tmp/django-otp-bench/venv}
WORK=${WORK:-/tmp/otp-compare}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-1}
BENCH_SECONDS=${BENCH_SECONDS:-3}
HTTP_DURATION=${HTTP_DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
WRITE=${WRITE:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/otp-target}
OTP=$CARGO_TARGET_DIR/release/otp
PG_BASE=${PG_URL%/*}
PY=$VENV/bin/python
HTTP_DB_RS=otpbench_http_rs

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------------------ clean-up
SERVERS=()
cleanup() {
  local pid
  for pid in "${SERVERS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  psql "$PG_URL" -qc "drop database if exists $HTTP_DB_RS with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------- prerequisites
[[ -f $SHARED/django_otp_bench.py && -x $SHARED/http_bench.sh ]] \
  || die "no django-otp baselines in $SHARED (set SHARED)"
for tool in python3 psql pg_isready curl cargo; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
if ! command -v wrk >/dev/null; then
  [[ $(id -u) == 0 ]] || die "wrk is required (apt-get install -y wrk)"
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL is not answering on 127.0.0.1:5432"
if [[ ! -x $VENV/bin/gunicorn ]]; then
  log "setting up django-otp in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q django django-otp pyotp 'psycopg[binary]' gunicorn
fi
psql "$PG_URL" -Atc "select 1 from pg_database where datname = 'otpbench'" | grep -q 1 \
  || psql "$PG_URL" -qc "create database otpbench"
# http_bench.sh keeps its SQLite file here.
mkdir -p /tmp/django-otp-bench
rm -rf "$WORK"
mkdir -p "$WORK"

log "building otp (release)"
(cd "$REPO" && cargo build --release -q -p otp-server)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# The disk's fdatasync latency (one 8 kB write each, the median of 200): what every commit of
# PostgreSQL with synchronous_commit=on waits for, on both sides.
FSYNC_US=$(python3 - "$WORK/fsync-probe" <<'PY'
import os, statistics, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
block, times = b"\0" * 8192, []
for _ in range(200):
    os.pwrite(fd, block, 0)
    start = time.perf_counter()
    os.fdatasync(fd)
    times.append(time.perf_counter() - start)
os.close(fd)
os.unlink(sys.argv[1])
print(f"{statistics.median(times) * 1e6:.0f}")
PY
)

# --------------------------------------------------------------- django-otp: in process
django_core() { # DB
  log "django-otp: django_otp_bench.py --db $1"
  local extra=()
  [[ $1 == postgres ]] && extra=(--skip-oath)
  "$PY" "$SHARED/django_otp_bench.py" --db "$1" --runs "$RUNS" --seconds "$SECONDS_PER_RUN" \
    --sqlite-path "$WORK/django-bench.sqlite3" "${extra[@]}" --json "$WORK/django-$1.json" \
    > "$WORK/django-$1.txt" 2>&1 || { cat "$WORK/django-$1.txt" >&2; die "django_otp_bench.py failed"; }
}

# ----------------------------------------------------------------------- ours: in process
ours_core() { # NAME ARGS...
  local name=$1
  shift
  log "otp bench $*"
  "$OTP" bench "$@" --json > "$WORK/otp-$name.json"
}

# -------------------------------------------------------------------- django-otp: HTTP
django_http() { # sqlite|postgres
  local port
  port=$(free_port)
  log "django-otp: http_bench.sh DB=$1 (gunicorn, 2 workers, port $port)"
  DB=$1 RUNS=1 DURATION=$HTTP_DURATION CONNS=$CONNS THREADS=$THREADS PORT=$port VENV=$VENV \
    OUT=$WORK/django-http-$1 "$SHARED/http_bench.sh" > "$WORK/django-http-$1.txt" 2>&1 \
    || { cat "$WORK/django-http-$1.txt" >&2; die "http_bench.sh failed"; }
}

# --------------------------------------------------------------------------- ours: HTTP
ours_http() { # sqlite|postgres
  local db=$1 dir=$WORK/otp-http-$1 port url pid password cookie device status
  port=$(free_port)
  mkdir -p "$dir"
  if [[ $db == sqlite ]]; then
    url="sqlite://$dir/otp.db"
    unset OTP_SECRET_KEY
  else
    psql "$PG_URL" -qc "drop database if exists $HTTP_DB_RS with (force)" -c "create database $HTTP_DB_RS"
    url="$PG_BASE/$HTTP_DB_RS"
    OTP_SECRET_KEY="1:$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    export OTP_SECRET_KEY
  fi
  # The same settings as the django app: throttling off; the account failure budget (100 by
  # default) out of reach, or the account would lock after 100 wrong codes; and no limit of
  # attempts per client address (60 a minute by default), which django-otp does not have. The
  # log at WARN, as gunicorn's (--log-level warning): no line per request.
  export OTP_DATABASE_URL=$url OTP_TOTP_THROTTLE_FACTOR=0 OTP_FAILURE_BUDGET=1000000000
  export OTP_RATE_LIMIT_PER_MINUTE=0 OTP_LOG=warn OTP_ADDR=127.0.0.1:$port
  password=bench-password-$$
  printf '%s\n' "$password" | "$OTP" user add alice --password-stdin > "$dir/user.txt"
  log "otp serve ($db, port $port)"
  "$OTP" serve > "$dir/serve.out" 2> "$dir/serve.log" &
  pid=$!
  SERVERS+=("$pid")
  for _ in $(seq 100); do
    grep -q listening "$dir/serve.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log" >&2; die "otp serve did not start"; }
    sleep 0.1
  done
  # Log in while the user has no device (logged in, not verified: what django's session
  # is), then give the user a TOTP device.
  curl -fsS -c "$dir/cookies" -H 'Content-Type: application/json' \
    -d "{\"username\":\"alice\",\"password\":\"$password\"}" \
    "http://127.0.0.1:$port/api/v1/session" > "$dir/login.json"
  cookie=$(awk '$6 == "otp_session" { print $6 "=" $7 }' "$dir/cookies")
  [[ -n $cookie ]] || die "no session cookie from otp serve"
  device=$("$OTP" device add totp --user alice --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  status=$(curl -sS -o "$dir/check.json" -w '%{http_code}' -H "Cookie: $cookie" \
    -H 'Content-Type: application/json' -d "{\"device\":\"$device\",\"token\":\"000000\"}" \
    "http://127.0.0.1:$port/api/v1/otp/verify")
  grep -q invalid_token "$dir/check.json" || die "unexpected answer $status $(cat "$dir/check.json")"
  export OTP_BENCH_COOKIE=$cookie OTP_BENCH_DEVICE=$device
  wrk -t"$THREADS" -c"$CONNS" -d"$HTTP_DURATION" --latency -s "$HERE/me.lua" "http://127.0.0.1:$port" \
    > "$dir/wrk-me.txt"
  # Resident memory, sampled while wrk loads the verification endpoint. (VmHWM, the peak
  # of the process's life, also holds the log-in's argon2id hash: 19 MiB, freed since.)
  (while kill -0 "$pid" 2>/dev/null; do ps -o rss= -p "$pid"; sleep 0.25; done) > "$dir/rss.txt" &
  local sampler=$!
  wrk -t"$THREADS" -c"$CONNS" -d"$HTTP_DURATION" --latency -s "$HERE/verify.lua" "http://127.0.0.1:$port" \
    > "$dir/wrk-verify.txt"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  awk '/VmHWM|VmRSS/ { print $1, $2 }' "/proc/$pid/status" > "$dir/status.txt"
  # How many verifications the server made: the account's failures (all wrong codes), which
  # must match the requests (a 429 or 403 would be fast and mean nothing).
  "$OTP" user reset --user alice > "$dir/failures.txt"
  python3 - "$dir" <<'PY' || die "otp serve did not verify every request (see $dir)"
import re, sys
d = sys.argv[1]
sent = int(re.search(r"(\d+) requests in", open(f"{d}/wrk-verify.txt").read()).group(1))
counted = int(re.search(r"cleared (\d+)", open(f"{d}/failures.txt").read()).group(1))
# wrk stops with requests in flight; the curl check counted one more.
sys.exit(0 if abs(counted - sent) <= 64 else 1)
PY
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  unset OTP_DATABASE_URL OTP_TOTP_THROTTLE_FACTOR OTP_FAILURE_BUDGET OTP_RATE_LIMIT_PER_MINUTE \
    OTP_LOG OTP_ADDR OTP_SECRET_KEY OTP_BENCH_COOKIE OTP_BENCH_DEVICE
  if [[ $db == postgres ]]; then
    psql "$PG_URL" -qc "drop database if exists $HTTP_DB_RS with (force)"
  fi
}

# ------------------------------------------------------------------------------- the run
# Each of ours right after the corresponding django-otp figure, so that both see the same
# machine (other work on it shifts both).
django_core sqlite-wal
ours_core hotp hotp --seconds "$BENCH_SECONDS"
ours_core sqlite-1 verify --seconds "$BENCH_SECONDS"
ours_core sqlite-16 verify --seconds "$BENCH_SECONDS" --clients 16
django_core postgres
ours_core postgres-1 verify --seconds "$BENCH_SECONDS" --database-url "$PG_URL"
ours_core postgres-16 verify --seconds "$BENCH_SECONDS" --database-url "$PG_URL" --clients 16
ours_core postgres-16-shared verify --seconds "$BENCH_SECONDS" --database-url "$PG_URL" \
  --clients 16 --shared-device
django_http sqlite
ours_http sqlite
django_http postgres
ours_http postgres

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------- the report
log "writing the report"
SQLITE_VERSION=$(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')
PG_VERSION=$(psql "$PG_URL" -Atc 'show server_version' | cut -d' ' -f1)
PG_SYNC=$(psql "$PG_URL" -Atc 'show synchronous_commit')
export WORK LOAD_START LOAD_END SQLITE_VERSION PG_VERSION PG_SYNC CONNS THREADS HTTP_DURATION \
  RUNS SECONDS_PER_RUN BENCH_SECONDS WRITE FSYNC_US
export RUSTC_VERSION=$(rustc --version)
export CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
export NPROC=$(nproc)
export DJANGO_VERSIONS=$("$PY" -c 'import django, importlib.metadata as m; print("Django %s, django-otp %s, gunicorn %s" % (django.get_version(), m.version("django-otp"), m.version("gunicorn")))')
export PYTHON_VERSION=$("$PY" -c 'import sys; print(sys.version.split()[0])')
python3 "$HERE/report.py" "$REPO/BENCHMARKS.md"
log "done: $WORK"
