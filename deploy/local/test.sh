#!/usr/bin/env bash
# Order Center's test command: what CI runs (`.ci/run`) and what a developer runs.
#
#   deploy/local/test.sh
#
# On a fresh Debian machine (as root, no stdin, CI=true or not) it installs what is missing,
# starts the local services (deploy/local/services.sh up), then runs in order:
#   fmt --check, clippy -D warnings, nextest (unit + integration tests), doc tests,
#   schemathesis against a running single-node server (deploy/local/schemathesis.sh).
# Every step runs even when an earlier one failed, so one run shows every problem; the exit
# status is non-zero when any step failed.
#
# Environment (all optional):
#   CARGO_TARGET_DIR          default ~/.cache/ordercenter/target
#   OC_NEXTEST_PROFILE        nextest profile (default: ci when CI=true, else default)
#   OC_TEST_MYSQL_URL, OC_TEST_REDIS_URL, OC_TEST_KAFKA_BROKERS,
#   OC_TEST_SEARCH_URL, OC_TEST_HBASE_ADDRESS                      where the services are
#   OC_TEST_SKIP_SERVICES=1   do not run services.sh up (services managed by hand)
set -euo pipefail
exec </dev/null

readonly REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ordercenter/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
# One-shot builds gain nothing from incremental caches, which cost gigabytes of a shared disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export PIP_ROOT_USER_ACTION=ignore
export OC_TEST_MYSQL_URL="${OC_TEST_MYSQL_URL:-mysql://oc_test:oc_test@127.0.0.1:3306}"
export OC_TEST_REDIS_URL="${OC_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export OC_TEST_KAFKA_BROKERS="${OC_TEST_KAFKA_BROKERS:-127.0.0.1:9092}"
export OC_TEST_SEARCH_URL="${OC_TEST_SEARCH_URL:-http://127.0.0.1:9200}"
export OC_TEST_HBASE_ADDRESS="${OC_TEST_HBASE_ADDRESS:-127.0.0.1:9090}"
export OC_TEST_KAFKA_FAULT_BROKER="${OC_TEST_KAFKA_FAULT_BROKER:-127.0.0.1:9094}"
export OC_TEST_KAFKA_FAULT_PROXY="${OC_TEST_KAFKA_FAULT_PROXY:-127.0.0.1:9095}"

if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    NEXTEST_PROFILE="${OC_NEXTEST_PROFILE:-ci}"
else
    NEXTEST_PROFILE="${OC_NEXTEST_PROFILE:-default}"
fi
readonly NEXTEST_PROFILE

readonly RUN_LOG_DIR="$HOME/.cache/ordercenter/test-runs/latest"
readonly SCRIPT_STARTED=$SECONDS

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()

section() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    printf '[test] error: %s\n' "$*" >&2
    exit 1
}

# Runs a step, prints its header and timing, remembers the result; never exits.
run_step() {
    local name=$1
    shift
    local log_file="$RUN_LOG_DIR/$name.log"
    local started=$SECONDS status=0
    section "$name: $*"
    "$@" 2>&1 | tee "$log_file" || status=$?
    local took=$((SECONDS - started))
    if [[ $status -eq 0 ]]; then
        printf '==== %s: ok in %ss ====\n' "$name" "$took"
        STEP_RESULTS+=(ok)
    else
        printf '==== %s: FAILED (exit %s) in %ss ====\n' "$name" "$status" "$took"
        STEP_RESULTS+=(FAILED)
    fi
    STEP_NAMES+=("$name")
    STEP_SECONDS+=("$took")
}

# --- tools -------------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

ensure_build_tools() {
    # Crates with C parts (sqlx's bundled sqlite, ring, zstd) need a C compiler.
    if ! command -v cc >/dev/null 2>&1; then
        apt_install gcc libc6-dev make pkg-config
    fi
    # wrk: the bench's second, independent load generator (loadtest's own test runs it).
    if ! command -v wrk >/dev/null 2>&1; then
        apt_install wrk
    fi
}

ensure_rust_toolchain() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "no Rust toolchain (cargo) found: install rustup first; this script cannot download toolchains"
    # rust-toolchain.toml pins the channel and lists rustfmt and clippy: make rustup install
    # them if they are missing (works where rustup's auto-install is disabled too).
    if command -v rustup >/dev/null 2>&1; then
        if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
            rustup toolchain install || true
            rustup component add rustfmt clippy || true
        fi
    fi
    cargo fmt --version >/dev/null 2>&1 || die "cargo fmt (rustfmt) is not installed"
    cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is not installed"
    echo "$(rustc --version), $(cargo --version)"
}

ensure_nextest() {
    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
    cargo nextest --version | head -n 1
}

ensure_python_tools() {
    # Python helpers for tests: kafka-python (an independent Kafka client), schemathesis
    # (hostile input from the OpenAPI document) and pyarrow (the independent reader of the
    # export test, oc-api tests/exports_check.py). Installed only when not importable.
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-pip
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    pip_install_if_missing kafka kafka-python
    pip_install_if_missing schemathesis schemathesis
    pip_install_if_missing pyarrow pyarrow
    python3 --version
}

# pip_install_if_missing MODULE PACKAGE
pip_install_if_missing() {
    local module=$1 package=$2
    if python3 -c "import $module" >/dev/null 2>&1; then
        return 0
    fi
    echo "pip install $package"
    # Debian's own python3 refuses pip installs outside a venv (PEP 668); a pyenv or venv
    # python accepts the first form.
    python3 -m pip install --quiet --disable-pip-version-check "$package" ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$package" ||
        die "pip install $package failed"
    python3 -c "import $module" || die "$package installed but '$module' does not import"
}

ensure_lockfile() {
    [[ -f Cargo.lock ]] ||
        die "Cargo.lock is missing: run 'cargo generate-lockfile' and commit it (steps use --locked)"
}

# --- summary -----------------------------------------------------------------------------

# Adds up what nextest and the doc tests reported, for one closing line.
count_tests() {
    local passed=0 failed=0 skipped=0 line numbers
    local nextest_log="$RUN_LOG_DIR/nextest.log" doc_log="$RUN_LOG_DIR/doctests.log"
    if [[ -f $nextest_log ]]; then
        # "Summary [   1.2s] 11 tests run: 10 passed, 1 failed, 0 skipped"
        line=$(grep -E '^ *Summary \[' "$nextest_log" | tail -n 1 || true)
        if [[ -n $line ]]; then
            numbers=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            passed=$((passed + numbers))
            numbers=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            failed=$((failed + numbers))
            numbers=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            skipped=$((skipped + numbers))
            numbers=$(grep -oE '[0-9]+ timed out' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            failed=$((failed + numbers))
        fi
    fi
    if [[ -f $doc_log ]]; then
        # "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; ..."
        while IFS= read -r line; do
            numbers=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            passed=$((passed + numbers))
            numbers=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            failed=$((failed + numbers))
            numbers=$(grep -oE '[0-9]+ ignored' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            skipped=$((skipped + numbers))
        done < <(grep -E '^test result:' "$doc_log" || true)
    fi
    echo "$passed $failed $skipped"
}

print_summary() {
    local i any_failed=0
    section "summary (${SECONDS}s in all, logs in $RUN_LOG_DIR)"
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-10s %-7s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
        [[ ${STEP_RESULTS[$i]} == ok ]] || any_failed=1
    done
    local passed failed skipped
    read -r passed failed skipped <<<"$(count_tests)"
    # The closing line: tests of nextest and the doc tests added up.
    printf 'tests: %s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
    return "$any_failed"
}

# --- main --------------------------------------------------------------------------------

main() {
    rm -rf "$RUN_LOG_DIR"
    mkdir -p "$RUN_LOG_DIR" "$CARGO_TARGET_DIR"

    local started=$SECONDS
    section "setup: tools"
    ensure_build_tools
    ensure_rust_toolchain
    ensure_nextest
    ensure_python_tools
    ensure_lockfile
    printf '==== setup: tools ok in %ss ====\n' "$((SECONDS - started))"

    if [[ ${OC_TEST_SKIP_SERVICES:-0} != 1 ]]; then
        started=$SECONDS
        section "setup: services (deploy/local/services.sh up)"
        "$REPO_ROOT/deploy/local/services.sh" up
        printf '==== setup: services ok in %ss ====\n' "$((SECONDS - started))"
    fi
    echo "OC_TEST_MYSQL_URL=$OC_TEST_MYSQL_URL"
    echo "OC_TEST_REDIS_URL=$OC_TEST_REDIS_URL"
    echo "OC_TEST_KAFKA_BROKERS=$OC_TEST_KAFKA_BROKERS"
    echo "OC_TEST_SEARCH_URL=$OC_TEST_SEARCH_URL"
    echo "OC_TEST_HBASE_ADDRESS=$OC_TEST_HBASE_ADDRESS"
    echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR, nextest profile $NEXTEST_PROFILE"

    run_step fmt cargo fmt --all -- --check
    run_step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
    run_step nextest cargo nextest run --workspace --locked --no-fail-fast \
        --profile "$NEXTEST_PROFILE"
    run_step doctests cargo test --workspace --doc --locked
    # the debug binary nextest built for the integration tests
    run_step schemathesis deploy/local/schemathesis.sh "$CARGO_TARGET_DIR/debug/ordercenter"

    print_summary
}

main "$@"
