#!/usr/bin/env bash
# Copy the tenant config files into deploy/k8s/tenant-config/, where the kustomization's
# configMapGenerator picks them up, and print the `files:` list it must name.
#
#   deploy/k8s/sync-tenant-config.sh [SOURCE_DIR]     # default: tenant-config/examples
#   deploy/k8s/sync-tenant-config.sh --check          # exit 1 if the copies differ
#
# Validate the source first: `ordercenter config validate SOURCE_DIR`. The committed copies
# are the examples; services/ordercenter/tests/deploy.rs checks that they are in sync.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=0
if [[ ${1:-} == --check ]]; then
    check=1
    shift
fi
source_dir=${1:-$repo/tenant-config/examples}
target=$here/tenant-config
shopt -s nullglob
files=("$source_dir"/*.yaml)
if ((${#files[@]} == 0)); then
    echo "no *.yaml tenant files in $source_dir" >&2
    exit 1
fi
if ((check)); then
    diff -r "$source_dir" "$target" >&2 || { echo "deploy/k8s/tenant-config differs from $source_dir: run $0" >&2; exit 1; }
    echo "in sync with $source_dir"
    exit 0
fi
rm -rf "$target"
mkdir -p "$target"
cp -- "${files[@]}" "$target/"
echo "copied ${#files[@]} file(s) to $target; kustomization.yaml configMapGenerator files:"
for file in "${files[@]}"; do
    echo "      - tenant-config/$(basename "$file")"
done
