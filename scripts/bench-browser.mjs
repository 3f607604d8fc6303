// Runs the bench page in headless Chromium (SwiftShader WebGPU) and prints its JSON report.
// Usage: node scripts/bench-browser.mjs [model-url] [prompt-len] [gen] [kv: q8 (default) | f16 | f32] [context]
//   [sampled] [nographs] [stages]
//   (`sampled`: also time sampled decoding from the shortlist and from every logit; `nographs`: launch
//   every decode step kernel by kernel instead of replaying a recording; `stages`: also time a decode
//   step stage by stage; `-` skips an argument)
//   e.g. node scripts/bench-browser.mjs /models/SmolLM2-135M-Instruct.Q4_1.gguf 8 4
// Needs pkg/ (scripts/dev.sh build release|dev) and the model under models/ or tests/fixtures/.
import { pageReport } from "./page-report.mjs";

const [model = "/models/SmolLM2-135M-Instruct.Q4_1.gguf", prompt = "8", gen = "4", kv = "q8", context, sampled,
  graphs, stages] = process.argv.slice(2);
const query = `model=${model}&prompt=${prompt}&gen=${gen}&kv=${kv}` +
  (context && context !== "-" ? `&context=${context}` : "") +
  (sampled === "sampled" ? "&sampled=1" : "") + (graphs === "nographs" ? "&graphs=0" : "") +
  (stages === "stages" ? "&stages=1" : "");
console.log(await pageReport({ path: `bench.html?${query}` }));
