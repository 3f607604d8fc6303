// The demo: the chat page with SmolLM2 as the embedded default model (local mode works with no
// network), and the loopback OpenAI-compatible server for trying remote mode without a token.
// Usage: node scripts/demo.mjs [--port 8080] [--api-port 8081]      (scripts/dev.sh demo runs it)
import { startServer } from "./serve.mjs";
import { startOpenAiServer } from "../tests/openai-server.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const pages = await startServer({ port: arg("--port", Number(process.env.PORT ?? 8080)) });
const api = await startOpenAiServer({ port: arg("--api-port", 8081) });
console.log(`llama-web chat:     ${pages.url}
  local mode:        the default model URL /models/SmolLM2-135M-Instruct.Q4_1.gguf is served from models/
  remote mode:       IONOS (https://openai.inference.de-txl.ionos.com/v1, needs a token), or the loopback
                     stand-in ${api.url}ok/v1 (other cases: 401, 429, 500, stall, malformed, … — see
                     tests/openai-server.mjs)
GPU check:         ${pages.url}gpu.html
Bench page:        ${pages.url}bench.html
Chromium on Linux needs --enable-unsafe-webgpu for WebGPU. Ctrl-C stops.`);
