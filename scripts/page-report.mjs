// Runs one of our report pages in headless Chromium (WebGPU on SwiftShader here) and returns its
// report: the page ends #status in data-state "done" (then #report holds the text) or anything
// else (then this throws #status's text). Shared by bench-browser.mjs, bench-wllama.mjs and
// probe-webgpu.mjs; `withBrowser` (server + browser, closed after) also by bench-chat.mjs and bench-worker.mjs.
import { chromium } from "playwright-core";
import { startServer } from "./serve.mjs";

/**
 * Starts the loopback server (`mounts`: more [prefix, folder] pairs) and headless Chromium (`args`: more
 * flags), runs `work({ server, browser })`, and closes both however it ends. Shared by every script here
 * that drives a page.
 */
export async function withBrowser(work, { mounts = [], args = [] } = {}) {
  const server = await startServer({ port: 0, mounts });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu", ...args],
  });
  try {
    return await work({ server, browser });
  } finally {
    await browser.close();
    await server.close();
  }
}

/**
 * `path`: the page under the loopback server (with its query); `mounts`: more [prefix, folder]
 * pairs for the server; `args`: more Chromium flags; `onConsole`: gets each console line.
 */
export async function pageReport({ path, mounts = [], args = [], timeoutMs = 30 * 60_000, onConsole }) {
  return withBrowser(async ({ server, browser }) => {
    const page = await browser.newPage();
    if (onConsole) page.on("console", (m) => onConsole(m.text()));
    await page.goto(`${server.url}${path}`);
    await page.waitForSelector('#status:not([data-state="loading"])', { timeout: timeoutMs });
    const [state, status] = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
    if (state !== "done") throw new Error(status);
    return await page.$eval("#report", (el) => el.textContent);
  }, { mounts, args });
}
