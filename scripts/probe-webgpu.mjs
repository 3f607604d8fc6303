// The floor of a decode step on headless Chromium's WebGPU (SwiftShader here), measured with
// minimal hand-written kernels (scripts/peers/webgpu-floor.html): what one dispatch costs and the
// streaming-read bandwidth. Prints one JSON object. Usage: [CHROMIUM_ARGS=…] node scripts/probe-webgpu.mjs
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { startServer } from "./serve.mjs";

const server = await startServer({ port: 0, mounts: [["/peers/", fileURLToPath(new URL("peers/", import.meta.url))]] });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // CHROMIUM_ARGS: more flags, space-separated (e.g. to ask Dawn for another adapter).
  args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu",
    ...(process.env.CHROMIUM_ARGS ?? "").split(" ").filter(Boolean)],
});
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}peers/webgpu-floor.html`);
  await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 10 * 60_000 });
  const [state, status] = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
  if (state !== "done") throw new Error(status);
  console.log(await page.$eval("#report", (el) => el.textContent));
} finally {
  await browser.close();
  await server.close();
}
