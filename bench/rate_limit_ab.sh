#!/usr/bin/env bash
# The cost of keeping the rate limit's budgets in the database: the verification endpoint of
# `otp serve` (release build) on PostgreSQL, loaded by wrk as in compare.sh (16 connections,
# wrong codes on one device), with the rate limit on but never reached (100000 a minute) and
# its budgets in memory (OTP_RATE_LIMIT_SHARED=false) or in the database (true), alternated
# ROUNDS times. Each line: requests/s, p99, requests sent and verifications the account counted
# (they must match: a 429 would be fast and mean nothing), rows in app_rate_limits.
#
#   cargo build --release -p otp-server && bench/rate_limit_ab.sh
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), psql, curl, wrk, python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OTP=${OTP:-${CARGO_TARGET_DIR:-$HERE/../target}/release/otp}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() { # true|false
  local shared=$1 db=otp_rate_limit_ab dir=$WORK/$1-$RANDOM port pid cookie device cleared rows
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  psql "$PG/postgres" -qc "drop database if exists $db with (force)" -c "create database $db" 2>/dev/null
  export OTP_DATABASE_URL=$PG/$db OTP_ADDR=127.0.0.1:$port OTP_LOG=warn
  OTP_SECRET_KEY="1:$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  export OTP_SECRET_KEY OTP_TOTP_THROTTLE_FACTOR=0 OTP_FAILURE_BUDGET=1000000000
  export OTP_RATE_LIMIT_PER_MINUTE=100000 OTP_RATE_LIMIT_SHARED=$shared
  printf 'bench-password\n' | "$OTP" user add alice --password-stdin > /dev/null
  "$OTP" serve > "$dir/out" 2> "$dir/log" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -c "$dir/cookies" -H 'Content-Type: application/json' \
    -d '{"username":"alice","password":"bench-password"}' "http://127.0.0.1:$port/api/v1/session" > /dev/null
  cookie=$(awk '$6 == "otp_session" { print $6 "=" $7 }' "$dir/cookies")
  device=$("$OTP" device add totp --user alice --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  OTP_BENCH_COOKIE=$cookie OTP_BENCH_DEVICE=$device \
    wrk -t2 -c16 -d"$DURATION" --latency -s "$HERE/verify.lua" "http://127.0.0.1:$port" > "$dir/wrk.txt"
  rows=$(psql "$PG/$db" -tAc "select count(*) from app_rate_limits")
  cleared=$("$OTP" user reset --user alice | grep -o '[0-9]*' | head -1)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  printf 'shared=%-5s %8s req/s  p99 %8s  sent %6s  verified %6s  bucket rows %s\n' "$shared" \
    "$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk.txt")" "$(awk '$1 == "99%" { print $2 }' "$dir/wrk.txt")" \
    "$(grep -o '[0-9]* requests in' "$dir/wrk.txt" | cut -d' ' -f1)" "$cleared" "$rows"
}
for _ in $(seq "$ROUNDS"); do run false; run true; done
psql "$PG/postgres" -qc "drop database if exists otp_rate_limit_ab with (force)"
