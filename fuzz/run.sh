#!/usr/bin/env bash
# Builds every fuzz target once and runs each for a set time with libFuzzer, then writes a
# summary table (target, seconds, executions, exec/s, crashes) to stdout and fuzz/last-run.md.
# Exits non-zero if a target crashed (or failed to start).
#
#   fuzz/run.sh                          # every target, 60 s each
#   SECONDS_PER_TARGET=300 fuzz/run.sh totp_verify web_bodies
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Works on the stable toolchain: the
# targets are built with `--sanitizer none` (AddressSanitizer needs `-Zsanitizer`, i.e. nightly
# or RUSTC_BOOTSTRAP=1; the crates forbid unsafe code). One fuzzing process at a time, in
# libFuzzer's default single-process mode (no -jobs/-workers/-fork, which would also move the
# final stats into per-job logs): the machine has two cores.
#
# Inputs: seeds from fuzz/corpus/<target>/ (committed, read only); new corpus entries go to
# fuzz/corpus-run/<target>/ and crashes to fuzz/artifacts/<target>/ (both ignored by git).
# Logs: fuzz/target/run-logs/<target>.log.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"

SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-60}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$FUZZ_DIR/target/$TRIPLE/release"
LOG_DIR="$FUZZ_DIR/target/run-logs"

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi

echo "building ${#TARGETS[@]} targets (--sanitizer none, release with debug assertions)" >&2
cargo fuzz build --sanitizer none --target-dir "$FUZZ_DIR/target" >&2

mkdir -p "$LOG_DIR"
rows=()
failed=0
for target in "${TARGETS[@]}"; do
    mkdir -p "corpus-run/$target" "artifacts/$target" "corpus/$target"
    log="$LOG_DIR/$target.log"
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s" >&2
    before=$(find "artifacts/$target" -type f | wc -l)
    start=$(date +%s)
    # -timeout: one input taking longer than 10 s counts as a crash (a hang).
    set +e
    "$BIN_DIR/$target" "corpus-run/$target" "corpus/$target" \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1 &
    pid=$!
    wait "$pid"
    status=$?
    set -e
    # web_bodies keeps its database in otp-fuzz-web_bodies-PID (see the target).
    rm -rf "/dev/shm/otp-fuzz-$target-$pid" "${TMPDIR:-/tmp}/otp-fuzz-$target-$pid"
    elapsed=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    after=$(find "artifacts/$target" -type f | wc -l)
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="failed (exit $status, see $log)"
    fi
    if [ "$status" -ne 0 ]; then
        failed=1
        grep -m1 -E "^(thread .* panicked|==[0-9]+== ERROR|ALARM|SUMMARY)" "$log" >&2 || true
    fi
    rows+=("| $target | $elapsed | ${execs:-?} | ${rate:-?} | $crashes |")
done

{
    echo "# Last fuzzing run"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -m), $(nproc) cores, $(rustc --version), cargo-fuzz $(cargo fuzz --version | awk '{print $2}'), ${SECONDS_PER_TARGET} s per target (\`fuzz/run.sh\`)."
    echo
    echo "| target | seconds | executions | exec/s | crashes |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} | tee "$FUZZ_DIR/last-run.md"

exit "$failed"
