#!/usr/bin/env bash
# Runs the end-to-end tests: `otp serve` (debug build) in Debian's chromium, headless.
# Screenshots of the main pages are left in e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/otp-target}"
export OTP_BIN="$CARGO_TARGET_DIR/debug/otp"
cargo build --quiet -p otp-server --bin otp
npm ci --no-audit --no-fund --loglevel=error
rm -rf artifacts
npm test
