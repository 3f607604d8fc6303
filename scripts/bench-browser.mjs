// Runs the bench page in headless Chromium (SwiftShader WebGPU) and prints its JSON report.
// Usage: node scripts/bench-browser.mjs [model-url] [prompt-len] [gen] [kv: q8 (default) | f32]
//   e.g. node scripts/bench-browser.mjs /models/SmolLM2-135M-Instruct.Q4_1.gguf 8 4
// Needs pkg/ (scripts/dev.sh build release|dev) and the model under models/ or tests/fixtures/.
import { chromium } from "playwright-core";
import { startServer } from "./serve.mjs";

const [model = "/models/SmolLM2-135M-Instruct.Q4_1.gguf", prompt = "8", gen = "4", kv = "q8"] = process.argv.slice(2);
const server = await startServer({ port: 0 });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench.html?model=${model}&prompt=${prompt}&gen=${gen}&kv=${kv}`);
  await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 30 * 60_000 });
  const [state, status] = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
  if (state !== "done") throw new Error(status);
  console.log(await page.$eval("#report", (el) => el.textContent));
} finally {
  await browser.close();
  server.close();
}
