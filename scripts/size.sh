#!/usr/bin/env bash
# What a page downloads besides the model: the package's wasm, its JS glue, the worker entry and the
# snippets, each raw, gzip -9 and brotli (quality 11), and the total against the budget (3.0 MB gzip).
# Usage: scripts/size.sh [PKG_DIR] [--check]     (default pkg/; --check exits 1 over the budget)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=pkg check=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    *) dir=$arg ;;
  esac
done
[ -f "$dir/llama_web_bg.wasm" ] || { echo "no $dir/llama_web_bg.wasm: build the package first (scripts/dev.sh build)" >&2; exit 2; }
exec node --input-type=module - "$dir" "$check" <<'JS'
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

const [dir, check] = process.argv.slice(2);
const BUDGET_GZIP = 3.0e6;
const files = [];
const walk = (d) => {
  for (const name of readdirSync(d)) {
    const path = join(d, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (/\.(wasm|js)$/.test(name)) files.push(path);
  }
};
walk(dir);
const mb = (n) => (n / 1e6).toFixed(3).padStart(8);
let total = { raw: 0, gzip: 0, brotli: 0 };
console.log(`${"file".padEnd(60)} ${"raw MB".padStart(8)} ${"gzip".padStart(8)} ${"brotli".padStart(8)}`);
for (const path of files.sort()) {
  const bytes = readFileSync(path);
  const gzip = gzipSync(bytes, { level: 9 }).length;
  const brotli = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11,
    [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length;
  total = { raw: total.raw + bytes.length, gzip: total.gzip + gzip, brotli: total.brotli + brotli };
  console.log(`${relative(dir, path).padEnd(60)} ${mb(bytes.length)} ${mb(gzip)} ${mb(brotli)}`);
}
console.log(`${"total".padEnd(60)} ${mb(total.raw)} ${mb(total.gzip)} ${mb(total.brotli)}`);
console.log(JSON.stringify({ raw_bytes: total.raw, gzip_bytes: total.gzip, brotli_bytes: total.brotli,
  budget_gzip_bytes: BUDGET_GZIP, within_budget: total.gzip <= BUDGET_GZIP }));
if (check === "1" && total.gzip > BUDGET_GZIP) process.exit(1);
JS
