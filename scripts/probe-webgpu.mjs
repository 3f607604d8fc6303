// The floor of a decode step on headless Chromium's WebGPU (SwiftShader here), measured with
// minimal hand-written kernels (scripts/peers/webgpu-floor.html): what one dispatch costs, the
// streaming-read bandwidth, Q4_1 GEMVs and tiled GEMMs (f32 arithmetic, and int8 activations by
// dot4I8Packed and by its polyfill). Prints one JSON object. Usage: [CHROMIUM_ARGS=…] node scripts/probe-webgpu.mjs
// CHROMIUM_ARGS: more flags, space-separated (e.g. to ask Dawn for another adapter).
import { fileURLToPath } from "node:url";
import { pageReport } from "./page-report.mjs";

console.log(await pageReport({
  path: "peers/webgpu-floor.html",
  mounts: [["/peers/", fileURLToPath(new URL("peers/", import.meta.url))]],
  args: (process.env.CHROMIUM_ARGS ?? "").split(" ").filter(Boolean),
  timeoutMs: 10 * 60_000,
}));
