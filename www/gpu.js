// The GPU check page: which WebGPU adapter the browser offers, and a matrix product that the wasm
// module computed on it with Burn. Every outcome ends in a data-state on #status that a
// person can read and a test can wait for: ok | no-webgpu | mismatch | error.
import init, { probeWebGpu, webgpuSelfTest } from "llama-web";

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showAdapter(adapter) {
  const name = adapter.description || [adapter.vendor, adapter.architecture, adapter.device].filter(Boolean).join(" ") || "(the browser gives no name)";
  $("adapter-name").textContent = name + (adapter.isFallbackAdapter ? " — software fallback adapter" : "");
  const limits = $("adapter-limits");
  for (const [key, value] of adapter.limits) {
    const row = limits.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value.toLocaleString("en-US");
  }
  const features = $("adapter-features");
  for (const f of adapter.features) {
    const li = document.createElement("li");
    li.textContent = f;
    features.append(li);
  }
  if (adapter.features.length === 0) features.append("none");
  $("adapter-section").hidden = false;
}

function showSelfTest(result) {
  const summary = $("selftest-summary");
  summary.textContent = `${result.rows}×${result.cols} product of small integers: ` +
    (result.passed ? "exactly right." : "WRONG — this GPU or its driver computes incorrect results.");
  summary.dataset.actual = JSON.stringify(result.actual);
  summary.dataset.rows = result.rows;
  summary.dataset.cols = result.cols;
  $("selftest-row").textContent = result.actual.slice(0, result.cols).join(", ");
  $("selftest-section").hidden = false;
}

async function main() {
  await init();
  setStatus("loading", "Looking for a WebGPU adapter…");
  const probe = await probeWebGpu();
  if (!probe.available) {
    setStatus("no-webgpu", `No WebGPU here: ${probe.reason}.`);
    return;
  }
  showAdapter(probe.adapter);
  setStatus("loading", "Running a matrix product on the GPU…");
  const result = await webgpuSelfTest();
  showSelfTest(result);
  if (result.passed) setStatus("ok", "WebGPU works: the GPU computed the self-test exactly.");
  else setStatus("mismatch", "WebGPU is present but computed a wrong result.");
}

main().catch((err) => setStatus("error", `Something went wrong: ${err?.message ?? err}`));
