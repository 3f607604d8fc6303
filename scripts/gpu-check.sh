#!/usr/bin/env bash
# The GPU check for a session that has the lent H100/H200 (../.library/device; 15 minutes of device
# time per session, so this is one prepared run). It runs `llama-web bench` natively on Vulkan
# (the same WGSL as the browser) with the synthetic Llama 3.1 8B in Q4_K_M and Q4_0, and prints,
# per model: decode tok/s, effective GB/s of weights, the streaming-read bandwidth measured on
# the same device (our roofline) and the fraction of it reached, with the 8-bit KV cache allocated
# for 8k tokens (the budget's setting), and the step's device time stage by stage (`--stages`).
# JSON reports go to $OUT (or ./gpu-check-out).
#
# First the fidelity checks on the same device (scripts/gpu-fidelity.py: the hardware kernels
# against HF transformers' goldens).
#
# Then, when carried, the hand-written floor on the same device (examples/vulkan_floor/): a
# 4096 × 4096 Q4_1 matrix by several GEMVs, and the Llama 3.1 8B step's matrices (4.7 GB of Q4_1,
# one dispatch a matrix in one pass) by the hardware GPU's GEMV shapes and by a plain read of the
# same buffers — what any engine of one dispatch a matrix reaches here. Then, where python3 has
# PyTorch with CUDA (the lent machine has), the PyTorch peer (scripts/gpu-torch-peer.py): a
# random-weight 8B in bf16 decoding through transformers, and CUDA's own streaming-read bandwidth.
#
# Then the variants of our 8B Q4_K_M: its prefill of a chat-sized prompt (PROMPT_LONG) with the
# shared tile (the default: workgroup memory, register tiles) and with session 17's shared row
# (`--decode-kernel cooperative,prefill=row`), its decode after that prompt with attention in
# segments of 256 keys (`segment=256`, the software GPU's; 32 by default), in f16 arithmetic
# (`--arithmetic f16`), with other shapes of the cooperative GEMV (`bench --decode-kernel`,
# KERNELS: rows a unit, subgroup sums or workgroup memory), and without the decode step's
# recording replayed (`--no-decode-graphs`). The floor, the peer and the variants start only
# within BUDGET_S seconds of the script's start (420 by default): the rest are listed as skipped,
# so one run fits the device's 15 minutes with its start. Each step has a time limit (STEP_S
# seconds). Last, the lent-GPU target's line: our decode, the hand-written step and its read
# against our probe's bandwidth and CUDA's.
#
# Building burn on the device costs minutes of its budget: build the release binaries here first
# (`cargo build --release --bin llama-web --example vulkan_floor`) and carry them, with the Vulkan
# loader (.gl: the Debian packages ../.library/device/README.md names), e.g.
#   run(command="for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; scripts/gpu-check.sh",
#       carry=["target/release/llama-web", "target/release/examples/vulkan_floor", ".gl"],
#       timeout_s=600)
# A dry run on lavapipe works anywhere (~30 min): GEN=2 PROMPT=4 PROMPT_LONG=8 BUDGET_S=99999 scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${LLAMA_WEB_BIN:-target/release/llama-web}
FLOOR=${VULKAN_FLOOR_BIN:-target/release/examples/vulkan_floor}
OUT=${OUT:-gpu-check-out}
GEN=${GEN:-32}
PROMPT=${PROMPT:-16}
PROMPT_LONG=${PROMPT_LONG:-128}
STEP_S=${STEP_S:-150}
# Variants start only while the script has run less than this (the device's 15 minutes include its
# start; each 8B variant takes about a minute on a GPU): those past it are listed as skipped.
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$OUT"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || echo "no Vulkan ICD directory"
if [ ! -x "$BIN" ]; then
  echo "== building $BIN (no carried binary)"
  cargo build --release --bin llama-web
fi

echo "== fidelity on this device (scripts/gpu-fidelity.py: tiny Llama 3.1 against HF, wgpu against cpu)"
timeout "$STEP_S" python3 scripts/gpu-fidelity.py "$BIN" || echo "fidelity: FAILED (above)"

for quant in Q4_K_M Q4_0; do
  # The Q4_0 run prefills a chat-sized prompt (PROMPT_LONG), the Q4_K_M run a short one.
  if [ "$quant" = Q4_0 ]; then prompt=$PROMPT_LONG; else prompt=$PROMPT; fi
  echo "== synthetic llama3.1-8b:$quant, prompt $prompt, decode $GEN"
  report="$OUT/bench-8b-$quant.json"
  timeout "$STEP_S" "$BIN" bench --synthetic "llama3.1-8b:$quant" --device wgpu --context 8192 --kv q8 \
    --prompt-len "$prompt" --gen "$GEN" --stages >"$report" 2>"$OUT/bench-8b-$quant.log" || {
    echo "bench failed:"; tail -20 "$OUT/bench-8b-$quant.log"; continue; }
  python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"device            {r['device']}, {r['decode_kernel']}, decode graphs {r['decode_graphs']}")
print(f"decode            {r['decode_tok_s']:.2f} tok/s   (prefill {r['prefill_tok_s']:.2f} tok/s)")
print(f"weights per token {r['weight_bytes_per_token'] / 1e9:.3f} GB")
print(f"effective         {r['effective_gb_s']:.1f} GB/s")
print(f"streaming read    {r['read_bandwidth_gb_s']:.1f} GB/s  -> fraction {100 * r['roofline_fraction']:.1f} %")
print(f"per decode step   {r['dispatches_per_token']:.0f} dispatches, {r['submits_per_token']:.0f} submit(s), {r['readback_bytes_per_token']:.0f} bytes read back")
print(f"host per step     {r['host_ms_per_token']:.1f} ms CPU of the driving thread; warm-up {r['warmup_s']:.1f} s (compiling kernels)")
print(f"peak GPU bytes    {r['peak_gpu_bytes']}")
step = 1e3 / r['decode_tok_s']
print(f"stages of a {step:.2f} ms step (each launched on its own, repeated; device ms a token):")
for s in r.get('stages') or []:
    print(f"  {s['stage']:<10} {s['launches_per_token']:>4} launches {s['ms_per_token']:8.3f} ms "
          f"{100 * s['ms_per_token'] / step:5.1f} %")
total = sum(s['ms_per_token'] for s in r.get('stages') or [])
print(f"  sum        {total:8.3f} ms {100 * total / step:5.1f} % (the rest: hand-offs, the host, the choice)")
PY
done

if [ "$SECONDS" -ge "$BUDGET_S" ]; then
  echo "== the hand-written floor: skipped (${SECONDS} s in, past BUDGET_S=$BUDGET_S)"
elif [ -x "$FLOOR" ]; then
  echo "== the hand-written floor (examples/vulkan_floor: a 4096 × 4096 Q4_1 matrix, the 8B step's matrices)"
  if timeout "$STEP_S" "$FLOOR" 4096 4096 --step llama8b >"$OUT/vulkan-floor.json" 2>"$OUT/vulkan-floor.log"; then
    python3 - "$OUT/vulkan-floor.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
gemv = {k[:-5]: v for k, v in r.items()
        if k.endswith("_gb_s") and k != "tiny_dispatch_gb_s" and not k.startswith("step8b_")}
print(f"dispatch          {r['tiny_dispatch_ms']:.4f} ms")
for name, rate in sorted(gemv.items(), key=lambda kv: -kv[1]):
    print(f"{name:<24} {rate:.1f} GB/s")
print(f"SmolLM2 step's matrices {r['step_ms_median']:.2f} ms median ({r['step_tok_s']:.0f} tok/s, "
      f"{r['step_weight_bytes'] / r['step_ms_median'] / 1e6:.1f} GB/s)")
print(f"Llama 3.1 8B step's matrices ({r['step8b_weight_bytes'] / 1e9:.2f} GB of Q4_1, "
      f"{r['step8b_dispatches']} dispatches in one pass):")
for kernel in ("split32", "split32_repacked", "read"):
    ms = r[f"step8b_{kernel}_ms_median"]
    print(f"  {kernel:<18} {ms:8.3f} ms median ({1e3 / ms:6.1f} tok/s), {r[f'step8b_{kernel}_gb_s']:7.1f} GB/s")
print(f"  one dispatch reading the largest matrix: {r['step8b_read_one_dispatch_gb_s']:.1f} GB/s")
PY
  else
    echo "vulkan_floor failed:"; tail -5 "$OUT/vulkan-floor.log"
  fi
else
  echo "== no hand-written floor ($FLOOR not carried)"
fi

if [ "$SECONDS" -ge "$BUDGET_S" ]; then
  echo "== the PyTorch peer: skipped (${SECONDS} s in, past BUDGET_S=$BUDGET_S)"
elif python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "== the PyTorch peer (random-weight 8B, bf16, transformers eager), prompt $PROMPT, decode $GEN"
  if timeout "$STEP_S" python3 scripts/gpu-torch-peer.py "$PROMPT" "$GEN" >"$OUT/torch-peer.json" 2>"$OUT/torch-peer.log"; then
    python3 - "$OUT/torch-peer.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"device            {r['device']} (torch {r['torch']})")
print(f"decode            {r['decode_tok_s']:.2f} tok/s, {r['weight_bytes_per_token'] / 1e9:.2f} GB a token "
      f"-> {r['effective_gb_s']:.1f} GB/s")
print(f"CUDA read         {r['cuda_read_bandwidth_gb_s']:.1f} GB/s (a sum over 4 GiB)")
PY
  else
    echo "PyTorch peer failed:"; tail -5 "$OUT/torch-peer.log"
  fi
else
  echo "== no PyTorch with CUDA here: no PyTorch peer"
fi

# One more 8B Q4_K_M run, a prompt of the second argument's tokens, with the extra `bench`
# arguments after it: one line beside the default's above.
variant() {
  local label=$1 prompt=$2; shift 2
  local report="$OUT/bench-8b-variant-${label//[^A-Za-z0-9]/_}.json"
  if [ "$SECONDS" -ge "$BUDGET_S" ]; then
    echo "$label: skipped (${SECONDS} s in, past BUDGET_S=$BUDGET_S)"; return
  fi
  if timeout "$STEP_S" "$BIN" bench --synthetic llama3.1-8b:Q4_K_M --device wgpu --context 8192 --kv q8 \
    --prompt-len "$prompt" --gen "$GEN" "$@" >"$report" 2>"$report.log"; then
    python3 - "$report" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<48} prefill {r['prefill_tok_s']:6.2f}, decode {r['decode_tok_s']:7.2f} tok/s, {r['effective_gb_s']:7.1f} GB/s "
      f"({100 * r['roofline_fraction']:.1f} % of {r['read_bandwidth_gb_s']:.0f}), host {r['host_ms_per_token']:.2f} ms "
      f"a step, warm-up {r['warmup_s']:.1f} s")
PY
  else
    echo "$label: bench failed:"; tail -5 "$report.log"
  fi
}

echo "== prefill kernels, synthetic llama3.1-8b:Q4_K_M, prompt $PROMPT_LONG, decode $GEN"
variant "default (on a GPU: the shared tile)" "$PROMPT_LONG"
variant "cooperative,prefill=row" "$PROMPT_LONG" --decode-kernel cooperative,prefill=row
# Decode attention in the software GPU's segments of 256 keys (the default's are 32): 1 unit a
# head against 4-5 at this prompt's length.
variant "cooperative,segment=256" "$PROMPT_LONG" --decode-kernel cooperative,segment=256
# The default kernel in f16 arithmetic (shader-f16: every format dequantized, groups summed in
# f16): what half-precision registers and packed arithmetic give on this GPU.
variant "default, f16 arithmetic (--arithmetic f16)" "$PROMPT_LONG" --arithmetic f16

# The session-17 shape (one row a unit, sums through workgroup memory), 4 rows without subgroups,
# 8 rows with them: against the default (4 rows, subgroups where the device has them) above.
KERNELS=${KERNELS:-"cooperative,rows=1,subgroups=off cooperative,rows=4,subgroups=off cooperative,rows=8"}
echo "== decode kernel shapes, synthetic llama3.1-8b:Q4_K_M, prompt 4, decode $GEN"
for kernel in $KERNELS; do
  variant "$kernel" 4 --decode-kernel "$kernel"
done
# The default kernel with every decode step launched kernel by kernel (no recording replayed):
# what the replay saves the host and the step on this GPU.
variant "default, launched (--no-decode-graphs)" 4 --no-decode-graphs

# The lent-GPU target (issue 11: 8B Q4_K_M decode >= 60 % of the streaming-read bandwidth) from
# the reports above: our decode, the hand-written step and its plain read, against our probe's
# bandwidth and CUDA's.
echo "== the lent-GPU target"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None
ours, floor, torch = load("bench-8b-Q4_K_M.json"), load("vulkan-floor.json"), load("torch-peer.json")
reads = {}
if ours: reads["our probe"] = ours["read_bandwidth_gb_s"]
if torch: reads["CUDA"] = torch["cuda_read_bandwidth_gb_s"]
rates = {}
if ours: rates["ours, 8B Q4_K_M decode"] = ours["effective_gb_s"]
if floor and "step8b_read_gb_s" in floor:
    rates["hand-written step, best GEMV"] = max(floor["step8b_split32_gb_s"], floor["step8b_split32_repacked_gb_s"])
    rates["hand-written step, read only"] = floor["step8b_read_gb_s"]
for name, rate in rates.items():
    shares = ", ".join(f"{100 * rate / read:.1f} % of {label}'s {read:.0f}" for label, read in reads.items())
    print(f"{name:<32} {rate:8.1f} GB/s  {shares}")
PY
