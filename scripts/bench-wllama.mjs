// wllama's speed in headless Chromium, for scripts/bench-peers.sh: runs scripts/peers/wllama.html
// (wllama from .peers/, installed by bench-peers.sh) and prints its JSON report.
// Usage: node scripts/bench-wllama.mjs MODEL-URL PROMPT-LEN GEN cpu|gpu
//   e.g. node scripts/bench-wllama.mjs /models/SmolLM2-135M-Instruct.Q4_1.gguf 64 16 gpu
// WLLAMA_LOG=1: the page's console (llama.cpp's log) on stderr.
import { fileURLToPath } from "node:url";
import { pageReport } from "./page-report.mjs";

const [model, prompt = "64", gen = "16", where = "cpu"] = process.argv.slice(2);
if (!model || !["cpu", "gpu"].includes(where)) {
  console.error("usage: node scripts/bench-wllama.mjs MODEL-URL PROMPT-LEN GEN cpu|gpu");
  process.exit(2);
}
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const log = Boolean(process.env.WLLAMA_LOG);
const gpu = where === "gpu" ? 1 : 0;
console.log(await pageReport({
  path: `peers/wllama.html?model=${model}&prompt=${prompt}&gen=${gen}&gpu=${gpu}${log ? "&log" : ""}`,
  mounts: [
    ["/peers/wllama/", here("../.peers/node_modules/@wllama/wllama/esm/")],
    ["/peers/", here("peers/")],
  ],
  onConsole: log ? (line) => console.error(`[page] ${line}`) : undefined,
}));
