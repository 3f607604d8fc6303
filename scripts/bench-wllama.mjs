// wllama's speed in headless Chromium, for scripts/bench-peers.sh: runs scripts/peers/wllama.html
// (wllama from .peers/, installed by bench-peers.sh) and prints its JSON report.
// Usage: node scripts/bench-wllama.mjs MODEL-URL PROMPT-LEN GEN cpu|gpu
//   e.g. node scripts/bench-wllama.mjs /models/SmolLM2-135M-Instruct.Q4_1.gguf 64 16 gpu
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { startServer } from "./serve.mjs";

const [model, prompt = "64", gen = "16", where = "cpu"] = process.argv.slice(2);
if (!model || !["cpu", "gpu"].includes(where)) {
  console.error("usage: node scripts/bench-wllama.mjs MODEL-URL PROMPT-LEN GEN cpu|gpu");
  process.exit(2);
}
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const server = await startServer({
  port: 0,
  mounts: [
    ["/peers/wllama/", here("../.peers/node_modules/@wllama/wllama/esm/")],
    ["/peers/", here("peers/")],
  ],
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu"],
});
try {
  const page = await browser.newPage();
  // WLLAMA_LOG=1: the page's console (llama.cpp's log when the page asks for it) on stderr.
  if (process.env.WLLAMA_LOG) page.on("console", (m) => console.error(`[page] ${m.text()}`));
  const gpu = where === "gpu" ? 1 : 0;
  await page.goto(`${server.url}peers/wllama.html?model=${model}&prompt=${prompt}&gen=${gen}&gpu=${gpu}${process.env.WLLAMA_LOG ? "&log" : ""}`);
  await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 30 * 60_000 });
  const [state, status] = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
  if (state !== "done") throw new Error(status);
  console.log(await page.$eval("#report", (el) => el.textContent));
} finally {
  await browser.close();
  await server.close();
}
