// End-to-end: Playwright drives Debian's Chromium against the GPU check page on a loopback server.
// The page must report a real WebGPU adapter and a matrix product that the wasm module
// computed on it; this test recomputes that product itself. Needs pkg/ built (dev.sh test does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BASE_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];
const SHOTS = new URL("./screenshots/", import.meta.url);
const PAGE_TIMEOUT_MS = 180_000;

let server;
before(async () => {
  server = await startServer({ port: 0 });
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => server?.close());

/** Opens the demo in a fresh browser and waits until #status settles; returns the page's findings. */
async function openDemo(extraArgs, shot) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, ...extraArgs] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${server.url}gpu.html`);
    await page.waitForSelector('#status:not([data-state="loading"])', { timeout: PAGE_TIMEOUT_MS });
    const found = await page.evaluate(() => {
      const s = document.getElementById("selftest-summary");
      return {
        state: document.getElementById("status").dataset.state,
        status: document.getElementById("status").textContent,
        adapter: document.getElementById("adapter-name").textContent,
        features: [...document.querySelectorAll("#adapter-features li")].map((li) => li.textContent),
        rows: Number(s.dataset.rows),
        cols: Number(s.dataset.cols),
        actual: s.dataset.actual ? JSON.parse(s.dataset.actual) : null,
      };
    });
    await page.screenshot({ path: new URL(shot, SHOTS).pathname, fullPage: true });
    return { ...found, errors };
  } finally {
    await browser.close();
  }
}

// The same small-integer matrices as Matrix::small_integers in src/model/selftest.rs.
function smallIntegers(rows, cols, seed) {
  return Array.from({ length: rows * cols }, (_, i) => {
    const h = (Math.imul(i, 2654435761) + Math.imul(seed, 97)) >>> 0;
    return ((h >>> 7) % 9) - 4;
  });
}

function matmul(a, b, m, k, n) {
  const out = [];
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * n + j];
      out.push(s);
    }
  return out;
}

test("the GPU check page shows the WebGPU adapter and an exact matmul computed on it", { timeout: PAGE_TIMEOUT_MS + 60_000 }, async () => {
  const r = await openDemo(["--enable-unsafe-webgpu"], "gpu-webgpu.png");
  assert.deepEqual(r.errors, []);
  assert.equal(r.state, "ok", `page status: ${r.status}`);
  assert.ok(r.adapter.length > 0, "adapter name is empty");
  assert.ok(r.features.length > 0, "adapter lists no features");
  assert.equal(r.rows, 33);
  assert.equal(r.cols, 17);
  const expected = matmul(smallIntegers(33, 65, 1), smallIntegers(65, 17, 2), 33, 65, 17);
  assert.deepEqual(r.actual, expected);
});

test("without WebGPU the page says so clearly", { timeout: PAGE_TIMEOUT_MS + 60_000 }, async () => {
  const r = await openDemo([], "gpu-no-webgpu.png");
  assert.deepEqual(r.errors, []);
  assert.equal(r.state, "no-webgpu", `page status: ${r.status}`);
  assert.match(r.status, /No WebGPU here: .*adapter/);
});
