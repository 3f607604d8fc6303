#!/usr/bin/env bash
# Side by side, in one run, on the same GGUF files: our engine natively (Vulkan; lavapipe here) and
# in headless Chromium (WebGPU; SwiftShader here), llama.cpp natively on the CPU (the `xllamacpp`
# wheel: llama.cpp's own server code, in process, 1 and 2 threads), and wllama (llama.cpp in wasm)
# in the same Chromium, on its CPU path and on WebGPU. Prints one Markdown table of prefill and
# decode tok/s with our ratio to each peer (native against native, browser against browser), then
# the floors of both devices measured with minimal hand-written kernels (examples/vulkan_floor,
# scripts/probe-webgpu.mjs); the JSON reports are kept in target/peers/. For SmolLM2 the table has
# a row for the matrices of its decode step alone, multiplied by the best hand-written GEMVs on the
# same Vulkan device right after our own bench: the floor a WGSL engine's step has there.
#
#   scripts/bench-peers.sh                      SmolLM2-135M Q4_1, then the synthetic 8B Q4_K_M
#   MODELS=smollm2 scripts/bench-peers.sh       one model (smollm2 | 8b)
#   PROMPT=64 GEN=16                            prompt and decoded tokens (the defaults)
#   LLAMA_WEB_BIN=target/release/llama-web      another build of ours (default: the dev build the
#                                               tests use; kernels run on the device either way)
#
# Installs what it needs, idempotently, like the README's commands: `scripts/dev.sh setup`, then
# xllamacpp (PyPI) into .peers/venv and @wllama/wllama (npm) into .peers/. Builds our CLI, pkg/
# (release) when there is none, and the synthetic 8B as a real GGUF file (`llama-web synth`, 4.9 GB)
# into models/. The 8B runs natively only: the bench page holds the whole file in wasm memory (4 GiB
# at most), and an 8B on SwiftShader would take hours.
set -euo pipefail
cd "$(dirname "$0")/.."

XLLAMACPP_VERSION=2026.10.11549
WLLAMA_VERSION=3.8.1
PROMPT=${PROMPT:-64}
GEN=${GEN:-16}
MODELS=${MODELS:-smollm2 8b}
BIN=${LLAMA_WEB_BIN:-target/debug/llama-web}
OUT=target/peers
SMOLLM2=SmolLM2-135M-Instruct.Q4_1.gguf
SYNTH_8B=synthetic-llama3.1-8b-Q4_K_M.gguf

say() { printf '\033[1m[bench-peers]\033[0m %s\n' "$*" >&2; }

# ---------------------------------------------------------------- install
install_peers() {
  scripts/dev.sh setup
  mkdir -p .peers
  if ! .peers/venv/bin/python -c "import xllamacpp, sys; sys.exit(xllamacpp.__version__ != '$XLLAMACPP_VERSION')" 2>/dev/null; then
    say "installing xllamacpp $XLLAMACPP_VERSION (llama.cpp, prebuilt) into .peers/venv"
    if ! python3 -m venv .peers/venv 2>/dev/null; then
      # Debian's python3 ships venv in a package of its own.
      say "installing python3-venv (Debian)"
      local sudo=()
      [ "$(id -u)" -eq 0 ] || sudo=(sudo)
      "${sudo[@]}" apt-get update -qq
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      rm -rf .peers/venv
      python3 -m venv .peers/venv
    fi
    .peers/venv/bin/pip install --quiet --disable-pip-version-check "xllamacpp==$XLLAMACPP_VERSION"
  fi
  local have
  have=$(node -p "require('./.peers/node_modules/@wllama/wllama/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$WLLAMA_VERSION" ]; then
    say "installing @wllama/wllama $WLLAMA_VERSION into .peers/"
    [ -f .peers/package.json ] || echo '{ "private": true }' > .peers/package.json
    (cd .peers && npm install --no-audit --no-fund --loglevel=error "@wllama/wllama@$WLLAMA_VERSION")
  fi
}

build_ours() {
  if [ -z "${LLAMA_WEB_BIN:-}" ]; then
    # Built as the tests build it (`cargo test` unifies the dev-dependencies' features into the
    # shared dependencies; a plain `cargo build --bin` would recompile all of them).
    say "building llama-web (dev profile, as the tests build it)"
    cargo test --quiet --no-run --test cli
  fi
  cargo build --quiet --example vulkan_floor
  [ -f pkg/llama_web_bg.wasm ] || scripts/dev.sh build release
  if [[ " $MODELS " == *" 8b "* ]] && [ ! -f "models/$SYNTH_8B" ]; then
    say "writing the synthetic Llama 3.1 8B Q4_K_M to models/$SYNTH_8B"
    "$BIN" synth llama3.1-8b:Q4_K_M --out "models/$SYNTH_8B" >/dev/null
  fi
}

# ---------------------------------------------------------------- run
# run_one REPORT ENGINE WHERE COMMAND...: runs COMMAND, keeps its JSON (stdout) in $OUT/REPORT.json
# with the engine and place added; on failure, records the last line it printed on stderr instead.
run_one() {
  local report=$1 engine=$2 where=$3
  shift 3
  say "$engine — $where: $*"
  local json log="$OUT/$report.log"
  if json=$("$@" 2>"$log"); then
    python3 - "$OUT/$report.json" "$engine" "$where" "$json" <<'PY'
import json, sys
path, engine, where, text = sys.argv[1:]
r = json.loads(text)
r.update(engine=engine, where=where)
json.dump(r, open(path, "w"), indent=1)
PY
  else
    local why
    why=$(grep -v '^\s*$' "$log" | grep -E 'Error|error|failed|not run' | tail -1 || true)
    [ -n "$why" ] || why=$(grep -v '^\s*$' "$log" | tail -1)
    why=${why#Error: }
    why=${why#Failed: }
    python3 -c 'import json, sys; json.dump(dict(engine=sys.argv[2], where=sys.argv[3], error=sys.argv[4]), open(sys.argv[1], "w"))' \
      "$OUT/$report.json" "$engine" "$where" "${why:-failed}"
  fi
}

# not_run REPORT ENGINE WHERE WHY: a row that says why it was not measured.
not_run() {
  python3 -c 'import json, sys; json.dump(dict(engine=sys.argv[2], where=sys.argv[3], error="not run: " + sys.argv[4]), open(sys.argv[1], "w"))' \
    "$OUT/$1.json" "$2" "$3" "$4"
}

bench_model() {
  local name=$1 file=$2
  local llamacpp=(.peers/venv/bin/python scripts/bench-llamacpp.py "models/$file" --prompt-len "$PROMPT" --gen "$GEN")
  run_one "$name-1-ours-native" "llama-web" "native, Vulkan" \
    "$BIN" bench "models/$file" --prompt-len "$PROMPT" --gen "$GEN"
  if [ "$name" = smollm2 ]; then
    # The same step's matrices by the best hand-written GEMVs, in the same minutes.
    run_one "$name-1f-floor-native" "hand-written matrices" "native, Vulkan" \
      target/debug/examples/vulkan_floor
  fi
  run_one "$name-2-llamacpp-t1" "llama.cpp" "native CPU, 1 thread" "${llamacpp[@]}" --threads 1
  run_one "$name-3-llamacpp-t2" "llama.cpp" "native CPU, 2 threads" "${llamacpp[@]}" --threads 2
  if [ "$name" = 8b ]; then
    local why="the browser bench holds the whole 4.9 GB file in wasm memory"
    not_run "$name-4-ours-browser" "llama-web" "Chromium, WebGPU" "$why"
    not_run "$name-5-wllama-cpu" "wllama" "Chromium, wasm CPU" "hours at this size on 2 cores"
    not_run "$name-6-wllama-gpu" "wllama" "Chromium, WebGPU" "hours at this size on SwiftShader"
    return
  fi
  run_one "$name-4-ours-browser" "llama-web" "Chromium, WebGPU" \
    node scripts/bench-browser.mjs "/models/$file" "$PROMPT" "$GEN"
  run_one "$name-5-wllama-cpu" "wllama" "Chromium, wasm CPU, 1 thread" \
    node scripts/bench-wllama.mjs "/models/$file" "$PROMPT" "$GEN" cpu
  run_one "$name-6-wllama-gpu" "wllama" "Chromium, WebGPU" \
    node scripts/bench-wllama.mjs "/models/$file" "$PROMPT" "$GEN" gpu
}

# ---------------------------------------------------------------- table
print_table() {
  python3 - "$OUT" "$PROMPT" "$GEN" <<'PY'
import glob, json, os, sys
out, prompt, gen = sys.argv[1:]
print(f"Prompt {prompt} tokens, {gen} decoded; ratio = ours ÷ theirs (native vs native, browser vs browser).\n")
print("| model | engine | where | prefill tok/s | decode tok/s | ours ÷ it, prefill | ours ÷ it, decode |")
print("|---|---|---|---:|---:|---:|---:|")
fmt = lambda v: f"{v:.2f}" if v is not None else "–"
for model in ["smollm2", "8b"]:
    rows = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, f"{model}-*.json")))]
    if not rows:
        continue
    ours = {("browser" if "Chromium" in r["where"] else "native"): r for r in rows if r["engine"] == "llama-web"}
    for r in rows:
        if "step_tok_s" in r:  # examples/vulkan_floor: a step's matrices alone, decode only
            r.update(prefill_tok_s=None, decode_tok_s=r["step_tok_s"])
        name = "SmolLM2-135M Q4_1" if model == "smollm2" else "synthetic 8B Q4_K_M"
        if "error" in r:
            print(f"| {name} | {r['engine']} | {r['where']} | {r['error']} | | | |")
            continue
        ratio = ["", ""]
        mine = ours.get("browser" if "Chromium" in r["where"] else "native")
        if r["engine"] != "llama-web" and mine and "error" not in mine:
            ratio = [f"{mine[k] / r[k]:.3f}" if r[k] else "" for k in ("prefill_tok_s", "decode_tok_s")]
        print(f"| {name} | {r['engine']} | {r['where']} | {fmt(r['prefill_tok_s'])} | "
              f"{fmt(r['decode_tok_s'])} | {ratio[0]} | {ratio[1]} |")
    floor = next((r for r in rows if "step_tok_s" in r), None)
    cpu = next((r for r in rows if r["where"] == "native CPU, 1 thread" and "error" not in r), None)
    native = ours.get("native", {})
    if floor and cpu and "error" not in floor:
        print(f"\nThe hand-written matrices of a step (no attention, no norms) ÷ llama.cpp on one thread, "
              f"decode: {floor['step_tok_s'] / cpu['decode_tok_s']:.3f}"
              + (f"; ours ÷ them: {native['decode_tok_s'] / floor['step_tok_s']:.3f}." if "decode_tok_s" in native else "."))
PY
}

install_peers
build_ours
mkdir -p "$OUT"
rm -f "$OUT"/*.json
for m in $MODELS; do
  case "$m" in
    smollm2) bench_model smollm2 "$SMOLLM2" ;;
    8b) bench_model 8b "$SYNTH_8B" ;;
    *) say "unknown model $m (smollm2 | 8b)"; exit 2 ;;
  esac
done
print_table | tee "$OUT/table.md"

# The floors, measured with minimal hand-written kernels on the same devices: what bounds our rows.
say "the Vulkan floor on the same device (examples/vulkan_floor/)"
# SmolLM2's table row already ran it (in the same minutes as our bench): read that report again.
floor_row="$OUT/smollm2-1f-floor-native.json"
if { [ -f "$floor_row" ] && ! grep -q '"error"' "$floor_row" && cp "$floor_row" "$OUT/vulkan-floor.json"; } ||
  target/debug/examples/vulkan_floor >"$OUT/vulkan-floor.json" 2>"$OUT/vulkan-floor.log"; then
  python3 - "$OUT/vulkan-floor.json" <<'PY' | tee -a "$OUT/table.md"
import json, sys
r = json.load(open(sys.argv[1]))
gemv = max(v for k, v in r.items() if k.startswith("rows") and k.endswith("_gb_s"))
print(f"\nVulkan floor (hand-written WGSL through wgpu, {r['rows']} × {r['cols']} Q4_1): "
      f"{r['tiny_dispatch_ms']:.3f} ms a dispatch, streaming read {r['read_stream_gb_s']:.2f} GB/s, "
      f"reading the rows alone {r['read_rows_gb_s']:.2f} GB/s, the best Q4_1 GEMV {gemv:.2f} GB/s of weights "
      f"(one row a lane: {r['rows1_wg64_gb_s']:.2f}).")
PY
else
  say "the Vulkan probe failed: $(tail -1 "$OUT/vulkan-floor.log")"
fi
say "the WebGPU floor in the same Chromium (scripts/probe-webgpu.mjs)"
if node scripts/probe-webgpu.mjs >"$OUT/webgpu-floor.json" 2>"$OUT/webgpu-floor.log"; then
  python3 - "$OUT/webgpu-floor.json" <<'PY' | tee -a "$OUT/table.md"
import json, sys
r = json.load(open(sys.argv[1]))
gemv = max(v for k, v in r.items() if k.startswith("q4_1_gemv") and k.endswith("_gb_s"))
gemm = max(v for k, v in r.items() if k.startswith("q4_1_gemm"))
print(f"\nWebGPU floor ({r['adapter']}, hand-written kernels): "
      f"{r['ms_per_dispatch_one_pass']:.3f} ms a dispatch ({r['ms_per_dispatch_own_pass']:.3f} in its own pass), "
      f"streaming read {r['read_gb_s']:.2f} GB/s, the best Q4_1 GEMV {gemv:.3f} GB/s of weights "
      f"(one row a lane: {r['q4_1_gemv_gb_s']:.3f}), the best tiled Q4_1 GEMM as fast as a SmolLM2 prefill "
      f"of {gemm:.1f} tok/s with nothing but its matrices; "
      f"shader-f16: {'shader-f16' in r['features']}, subgroups: {'subgroups' in r['features']}.")
int8_gemv = max(v for k, v in r.items() if k.startswith("int8_q4_1_gemv"))
print(f"With int8 activations (llama.cpp's way; WGSL's dot4I8Packed, which CubeCL cannot emit): "
      f"the best Q4_1 GEMV {int8_gemv:.3f} GB/s (by the polyfill CubeCL emits: "
      f"{r['int8_polyfill_q4_1_gemv_rows16_wg8_gb_s']:.3f}), the tiled GEMM a prefill of "
      f"{r['int8_q4_1_gemm_rows8_tokens8_wg8_smollm2_tok_s']:.1f} tok/s.")
PY
else
  say "the WebGPU probe failed: $(tail -1 "$OUT/webgpu-floor.log")"
fi
