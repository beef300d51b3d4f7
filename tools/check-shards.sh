#!/usr/bin/env bash
# Reads every output shard of a prep run with DuckDB — a Parquet reader that shares no code with
# cocoflow — and checks row counts and a few columns against the datasets' manifests.
#   tools/check-shards.sh [RUN_DIR]    (default runs/tiny-prep)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/tiny-prep}
dest=.cache/duckdb
version=1.5.6-r.1
if [ ! -f "$dest/node_modules/@duckdb/node-api/package.json" ]; then
  command -v npm >/dev/null || { echo "check-shards: npm is required to install DuckDB" >&2; exit 1; }
  mkdir -p "$dest"
  echo "installing @duckdb/node-api@$version into $dest" >&2
  (cd "$dest" && npm install --silent --no-audit --no-fund "@duckdb/node-api@$version" >&2)
fi
cp tools/duckdb_query.mjs "$dest/query.mjs"
q() { node "$dest/query.mjs" "$@"; }
fail=0
for manifest in "$run"/*/*/_manifest.json; do
  ds=$(dirname "$manifest")
  want=$(sed -n 's/^  "rows": \([0-9]*\),$/\1/p' "$manifest")
  got=$(q "SELECT count(*) AS n FROM '$ds/*.parquet'" | sed 's/.*"n":"\([0-9]*\)".*/\1/')
  if [ "$got" = "$want" ]; then
    echo "ok   $ds: $got rows"
  else
    echo "FAIL $ds: DuckDB counts $got rows, manifest says $want" >&2
    fail=1
  fi
done
if [ -d "$run/triplets/triplets" ]; then
  q "SELECT count(*) AS bad FROM '$run/triplets/triplets/*.parquet' WHERE p1 = p2 OR i <= 0 OR j <= 0 OR len(latent) <> list_product(shape) OR len(mask) <> list_product(mask_shape)" |
    grep -q '"bad":"0"' || { echo "FAIL triplets: rows with bad fields" >&2; fail=1; }
  echo "ok   triplets: fields consistent"
fi
exit $fail
