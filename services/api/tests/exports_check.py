#!/usr/bin/env python3
"""Reads an export back with pyarrow, independently of the Rust code that wrote it, and
compares it with what the API returned (services/api/tests/exports.rs writes expected.json).

usage: exports_check.py EXPORT_DIR EXPECTED_JSON
Exit 0 when every check passes; otherwise prints the first differences and exits 1.
"""
import collections
import json
import os
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds


def fail(message):
    print("exports_check: " + message, file=sys.stderr)
    sys.exit(1)


def data_files(root, suffix):
    found = []
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in files:
            if name.endswith(suffix) and not name.startswith((".", "_")):
                found.append(os.path.join(base, name))
    return sorted(found)


def partition_of(root, path):
    parts = os.path.relpath(path, root).split(os.sep)
    keys = dict(p.split("=", 1) for p in parts if "=" in p)
    return keys.get("tenant"), keys.get("date")


def same(exported, expected):
    if expected is None:
        return exported is None
    if isinstance(expected, bool) or isinstance(expected, int):
        return exported == expected
    if isinstance(expected, (dict, list)):
        return exported is not None and json.loads(exported) == expected
    return exported is not None and str(exported) == str(expected)


def main():
    root, expected_file = sys.argv[1], sys.argv[2]
    with open(expected_file) as f:
        expected = json.load(f)
    tenant = expected["tenant"]
    fmt = expected["format"]
    orders = {o["id"]: o for o in expected["orders"]}

    files = data_files(root, "." + fmt)
    order_files = [p for p in files if not os.path.relpath(p, root).startswith("lines" + os.sep)]
    line_files = [p for p in files if os.path.relpath(p, root).startswith("lines" + os.sep)]
    if not order_files:
        fail("no %s files under %s" % (fmt, root))
    for path in files:
        t, d = partition_of(root, path)
        if t != tenant:
            fail("a file of tenant %r in an export of %r: %s" % (t, tenant, path))

    rows = []
    lines_of = collections.defaultdict(list)
    if fmt == "parquet":
        partitioning = ds.partitioning(
            pa.schema([("tenant", pa.string()), ("date", pa.string())]), flavor="hive")
        table = ds.dataset(order_files, format="parquet", partitioning=partitioning,
                           partition_base_dir=root).to_table()
        rows = table.to_pylist()
        for row in rows:
            lines_of[row["order_id"]] = row["lines"] or []
    else:
        for path in order_files:
            t, d = partition_of(root, path)
            for row in pacsv.read_csv(path).to_pylist():
                row["tenant"], row["date"] = t, d
                rows.append(row)
        for path in line_files:
            for row in pacsv.read_csv(path).to_pylist():
                lines_of[str(row["order_id"])].append(row)
    for row in rows:
        row["order_id"] = str(row["order_id"])

    # every order exactly once, and no other order (another tenant's among them)
    ids = [r["order_id"] for r in rows]
    duplicates = [i for i, n in collections.Counter(ids).items() if n > 1]
    if duplicates:
        fail("%d orders exported more than once, e.g. %s" % (len(duplicates), duplicates[:3]))
    missing = set(orders) - set(ids)
    if missing:
        fail("%d orders missing, e.g. %s" % (len(missing), sorted(missing)[:3]))
    extra = set(ids) - set(orders)
    foreign = extra & set(expected["other_tenant_ids"])
    if foreign:
        fail("%d orders of the other tenant exported, e.g. %s" % (len(foreign), sorted(foreign)[:3]))
    if extra:
        fail("%d unexpected orders, e.g. %s" % (len(extra), sorted(extra)[:3]))

    # row counts and sums of amounts per date
    count, total = collections.Counter(), collections.Counter()
    want_count, want_total = collections.Counter(), collections.Counter()
    for row in rows:
        count[row["date"]] += 1
        total[row["date"]] += row["payable_minor"]
    for order in orders.values():
        want_count[order["date"]] += 1
        want_total[order["date"]] += order["payable_minor"]
    if count != want_count:
        fail("rows per date differ: exported %s, API %s" % (dict(count), dict(want_count)))
    if total != want_total:
        fail("payable sums per date differ: exported %s, API %s" % (dict(total), dict(want_total)))

    # versions, statuses and every extension column as the API returned them
    policy = expected["pii"]
    differences = []
    for row in rows:
        order = orders[row["order_id"]]
        for column in ("version", "status"):
            if row[column] != order[column]:
                differences.append((row["order_id"], column, row[column], order[column]))
        for column, value in order["ext"].items():
            if column not in row:
                differences.append((row["order_id"], column, "<no column>", value))
            elif not same(row[column], value):
                differences.append((row["order_id"], column, row[column], value))
        # an encrypted field is never its plaintext (a token, masked or null) unless plain
        for column, value in order.get("sealed", {}).items():
            if policy != "plain" and value is not None and same(row.get(column), value):
                differences.append((row["order_id"], column, "plaintext under " + policy, value))
        lines = sorted(lines_of[row["order_id"]], key=lambda l: l["line_no"])
        if len(lines) != len(order["lines"]):
            differences.append((row["order_id"], "lines", len(lines), len(order["lines"])))
            continue
        for line, want in zip(lines, order["lines"]):
            for column, value in want.items():
                if not same(line.get(column), value):
                    differences.append((row["order_id"], "lines." + column, line.get(column), value))
    if differences:
        fail("%d values differ from the API, e.g. %s" % (len(differences), differences[:5]))

    # personal data: never in plaintext unless the policy is plain; tokens join equal values
    secrets = [s for s in expected["secrets"] if s]
    if policy != "plain":
        # one pattern for every secret: linear in the data, not rows x secrets
        import re
        pattern = re.compile("|".join(re.escape(x) for x in sorted(secrets, key=len, reverse=True)))
        raw_pattern = re.compile(pattern.pattern.encode())

        def strings(value):
            if isinstance(value, str):
                yield value
            elif isinstance(value, dict):
                for v in value.values():
                    yield from strings(v)
            elif isinstance(value, list):
                for v in value:
                    yield from strings(v)
        every = list(rows) + [l for ls in lines_of.values() for l in ls]
        for record in every:
            for text in strings(record):
                found = pattern.search(text)
                if found:
                    fail("plaintext personal data %r in an export under policy %s" % (found.group(0), policy))
        for path in files:
            with open(path, "rb") as f:
                found = raw_pattern.search(f.read())
            if found:
                fail("plaintext personal data %r in the bytes of %s" % (found.group(0), path))
    pii_columns = [c for c in ("receiver_name", "receiver_phone", "receiver_address") if rows and c in rows[0]]
    if policy == "dropped" and pii_columns:
        fail("personal-data columns %s present under policy dropped" % pii_columns)
    if policy == "token":
        by_phone = collections.defaultdict(set)
        for row in rows:
            phone = orders[row["order_id"]].get("receiver_phone")
            if phone:
                by_phone[phone].add(row["receiver_phone"])
        for phone, tokens in by_phone.items():
            if len(tokens) != 1 or None in tokens:
                fail("one phone, tokens %s: not joinable" % tokens)
        if len(set(frozenset(t) for t in by_phone.values())) != len(by_phone):
            fail("two phones share a token")
    print("exports_check: %d orders, %d dates, %d files, policy %s: ok"
          % (len(rows), len(count), len(files), policy))


if __name__ == "__main__":
    main()
