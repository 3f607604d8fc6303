// The bench page: fetches a GGUF model, runs `benchmark()` from the package on WebGPU and shows
// its JSON report. #status ends in data-state done | error; #report holds the JSON.
import init, { benchmark } from "llama-web";

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const model = params.get("model") ?? "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const promptLen = Number(params.get("prompt") ?? 32);
  const gen = Number(params.get("gen") ?? 16);
  const kv = params.get("kv") ?? "q8"; // the KV cache: f32, f16 or q8
  // Tokens the cache holds (default prompt + gen; the chat page's context is 4096).
  const context = params.has("context") ? Number(params.get("context")) : undefined;
  // Also time sampled decoding, from the device's shortlist and from every logit.
  const sampled = params.get("sampled") === "1";
  // graphs=0: every decode step launched kernel by kernel, not replayed from a recording.
  const graphs = params.get("graphs") !== "0";
  // stages=1: also time a decode step stage by stage (q/k/v, attention, output, gate/up, down, head).
  const stages = params.get("stages") === "1";
  await init();
  setStatus("loading", `Downloading ${model}…`);
  const response = await fetch(model);
  if (!response.ok) throw new Error(`${model}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  setStatus("loading", `Running ${promptLen} prompt tokens and ${gen} decoded tokens on WebGPU…`);
  const report = await benchmark(bytes, promptLen, gen, kv, context, sampled, graphs, stages);
  report.model = model;
  $("report").textContent = JSON.stringify(report, null, 2);
  setStatus("done", `Decode ${report.decode_tok_s.toFixed(2)} tok/s, ` +
    `${report.effective_gb_s.toFixed(3)} GB/s of weights (${(100 * report.roofline_fraction).toFixed(1)} % of ` +
    `the ${report.read_bandwidth_gb_s.toFixed(2)} GB/s streaming read).`);
}

main().catch((e) => setStatus("error", `Failed: ${e.message ?? e}`));
