#!/usr/bin/env bash
# Archive throughput, one bounded run on this machine (single node: SQLite shards, the
# embedded redb cold store). N retail orders are created and cancelled through a single-node
# `serve`, aged past retail's retention.hot_days (180) in the SQLite shards, then one
# `ordercenter archive --once --rate 0` pass moves them; its JSON report ends the output
# (`orders_per_second`). Speed is measured here, never asserted in tests.
#
#   N=500 BIN=target/debug/ordercenter deploy/local/archive_bench.sh
#
# Needs curl, python3 and sqlite3.
set -euo pipefail
readonly REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${N:-500}
BIN=${BIN:-ordercenter}
PORT=${PORT:-18481}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
export OC_DATA_DIR=$D OC_TENANT_CONFIG_DIR=$REPO_ROOT/tenant-config/examples OC_ARCHIVE_RATE=0 OC_LOG=warn
# the example keys of tenant retail (tenant-config/examples/retail.yaml)
KEY=oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9
ADMIN=oc_test_retail_admin_0001_a7c3e91f04b25d6e8f3a
URL=http://127.0.0.1:$PORT
OC_LISTEN=127.0.0.1:$PORT "$BIN" serve >/dev/null 2>&1 &
PID=$!
for _ in $(seq 150); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.2; done
curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"available\":$((N * 2))}" "$URL/v1/stock/TEA" >/dev/null
for i in $(seq "$N"); do
  id=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"business_identity\":\"retail\",\"order_type\":\"standard\",\"buyer_id\":\"b-$i\",\"lines\":[{\"sku\":\"TEA\",\"product_name\":\"Tea\",\"quantity\":1,\"unit_price_minor\":8800}],\"receiver\":{\"name\":\"Li Lei\",\"phone\":\"13900001111\",\"address\":\"1 Nanjing Road\"}}" \
    "$URL/v1/orders" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -X POST -H "Authorization: Bearer $KEY" "$URL/v1/orders/$id/cancel" >/dev/null
done
kill -TERM "$PID"
wait "$PID" || true
# age them: last changed 200 days ago
for shard in "$D"/shard-*.db; do
  sqlite3 "$shard" "UPDATE orders SET updated_at_ms = updated_at_ms - 200 * 86400000;"
done
"$BIN" archive --once --rate 0
