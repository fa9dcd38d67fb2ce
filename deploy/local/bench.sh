#!/usr/bin/env bash
# Order Center's benchmark: builds the release binaries and runs `loadtest bench` on this
# machine with the local services up (deploy/local/services.sh).
#
#   deploy/local/bench.sh [extra loadtest bench arguments, e.g. --seconds 8]
#
# It measures (a) the raw MariaDB and SQLite ceilings for the order transaction, (b) a bare axum JSON
# endpoint, (c) the order center in cluster and single-node mode, prints a table with the
# ratios, and writes bench.json and bench.svg (latency by percentile) in the repository root.
# The create and cached-GET steps and the bare axum GET are measured a second time by wrk
# (installed here when missing), an independent generator, with both generators' CPU per
# request, and the ratios are printed for both.
# One run takes about four minutes. Speed is measured here, never asserted in tests.
#
# Environment (all optional):
#   CARGO_TARGET_DIR          default ~/.cache/ordercenter/target
#   OC_TEST_MYSQL_URL         MariaDB server URL (a user that may create databases)
#   OC_TEST_SKIP_SERVICES=1   do not run services.sh up (services managed by hand)
set -euo pipefail
exec </dev/null

readonly REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ordercenter/target}"
readonly MYSQL_URL="${OC_TEST_MYSQL_URL:-mysql://oc_test:oc_test@127.0.0.1:3306}"

# MariaDB and Redis only: nothing here uses Kafka, OpenSearch or HBase, and their JVMs (garbage
# collections, compactions, housekeeping) take both cores in bursts: with them up, one run in
# four of single node at a fixed rate had a 100-160 ms stall in its p99, none with them down
# (loadtest/PROFILE.md)
if [[ ${OC_TEST_SKIP_SERVICES:-} != 1 ]]; then
    deploy/local/services.sh up-databases
fi
for port in 9092 9200 9090; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "bench: something answers on 127.0.0.1:$port (a test engine?); the machine is not quiet," \
            "tail latencies will show it (deploy/local/services.sh down stops what it started)" >&2
    fi
done
# wrk, the second and independent load generator the bench runs beside its own client
if ! command -v wrk >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk ||
            echo "bench: wrk could not be installed; only loadtest's own client will measure"
    fi
fi

cargo build --release -p ordercenter -p oc-loadtest
timeout 600 "$CARGO_TARGET_DIR/release/loadtest" bench \
    --ordercenter "$CARGO_TARGET_DIR/release/ordercenter" \
    --mysql "$MYSQL_URL" \
    --tenant-config tenant-config/examples \
    --out bench.json --svg bench.svg "$@"
