#!/usr/bin/env bash
# Order Center's soak (issue #19): cluster mode on the live engines of services.sh, with the
# relay, both projector members and the scheduler SIGKILLed at random moments and the
# workers' links to Kafka, HBase and OpenSearch cut through loopback proxies, while a writer
# places, updates, pays, ships and cancels orders of two tenants. At the end every order's
# version is the same in the shard, the search index, the cold store and the cache,
# `reconcile` is clean, every unpaid order was timed out exactly once, stock adds up, nothing
# was dead-lettered and the outbox is drained. It prints a JSON report (also written to
# soak-report.json in the repository root).
#
#   deploy/local/soak.sh            # 50,000 orders, 5 kills of each worker, 3+2+2 link cuts
#
# Bounded: the run stops by itself within 15 minutes (the test's own limits, and a timeout
# around it). The test command runs the same test small (2,000 orders, 2 kills each) as part
# of nextest: services/ordercenter/tests/soak.rs, whose header lists the variables below.
#
# Environment (all optional): OC_SOAK_ORDERS (50000), OC_SOAK_RATE (110 orders/s),
# OC_SOAK_KILLS (5), OC_SOAK_KAFKA_CUTS (3), OC_SOAK_HBASE_CUTS (2), OC_SOAK_SEARCH_CUTS (2),
# OC_SOAK_SEED (random; printed, replays the same schedule), OC_SOAK_REPORT, CARGO_TARGET_DIR,
# OC_TEST_SKIP_SERVICES=1 (services managed by hand), the OC_TEST_* service addresses.
set -euo pipefail
exec </dev/null

readonly REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ordercenter/target}"
export OC_SOAK_ORDERS="${OC_SOAK_ORDERS:-50000}"
export OC_SOAK_RATE="${OC_SOAK_RATE:-110}"
export OC_SOAK_KILLS="${OC_SOAK_KILLS:-5}"
export OC_SOAK_KAFKA_CUTS="${OC_SOAK_KAFKA_CUTS:-3}"
export OC_SOAK_HBASE_CUTS="${OC_SOAK_HBASE_CUTS:-2}"
export OC_SOAK_SEARCH_CUTS="${OC_SOAK_SEARCH_CUTS:-2}"
export OC_SOAK_REPORT="${OC_SOAK_REPORT:-$REPO_ROOT/soak-report.json}"

if [[ ${OC_TEST_SKIP_SERVICES:-} != 1 ]]; then
    deploy/local/services.sh up
fi
# Release binaries, as a deployment runs them: a debug `serve` with the whole cluster on two
# cores kept only ~60 of the 110 orders/s the writer asks for (the test command's small soak
# uses the debug build it already has). The build is not part of the 15 minutes.
cargo nextest run --locked --cargo-profile release -p ordercenter --test soak --no-run
timeout 900 cargo nextest run --locked --cargo-profile release -p ordercenter --test soak \
    --profile soak --no-capture
echo "soak report: $OC_SOAK_REPORT"
