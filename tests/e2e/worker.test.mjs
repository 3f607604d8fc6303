// End-to-end: the local model in the engine's Web Worker (`local.worker`, the default) in headless
// Chromium (WebGPU on SwiftShader). The page's main thread stays free while SmolLM2 loads and
// answers (PerformanceObserver `longtask`, against the same run on the page's thread); the worker
// closes on dispose(); a missing worker file falls back to the page's thread.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"];
const SMOLLM2 = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const TINY = "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf";
const WORKER_FILE = /\/pkg\/llama_web_worker\.js$/;

let pages, browser;
before(async () => {
  pages = await startServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
after(async () => {
  await browser?.close();
  pages?.close();
});

/** A fresh page with the package loaded. */
async function openPage() {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${pages.url}bench.html?model=none`);
  await page.evaluate(async () => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
  });
  return page;
}

/**
 * Loads `modelUrl` (`worker` as given) and streams one answer, recording every main-thread task
 * over 50 ms meanwhile. Returns the long tasks' durations, the answer and how long it all took.
 */
async function loadAndAnswer(page, modelUrl, worker) {
  return page.evaluate(async ({ modelUrl, worker }) => {
    const longTasks = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) longTasks.push(Math.round(entry.duration));
    });
    observer.observe({ type: "longtask" });
    const started = performance.now();
    const client = await window.pkg.LlamaClient.create({
      mode: "local", local: { modelUrl, worker, cache: false, contextSize: 256 },
    });
    const stream = await client.chat.completions.create({
      messages: [{ role: "user", content: "What is the capital of France?" }],
      stream: true, max_tokens: 8, temperature: 0,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    const seconds = (performance.now() - started) / 1000;
    // Entries are delivered after the task that produced them.
    await new Promise((resolve) => setTimeout(resolve, 200));
    observer.disconnect();
    client.dispose();
    return { longTasks, text, seconds, backend: client.backend };
  }, { modelUrl, worker });
}

test("with the worker, no main-thread task passes 50 ms while SmolLM2 loads and answers (the page's thread blocks for seconds)",
  { timeout: 600_000 }, async () => {
    const page = await openPage();
    try {
      assert.ok(await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes("longtask")));
      const workers = [];
      page.on("worker", (w) => workers.push(w.url()));
      const inWorker = await loadAndAnswer(page, SMOLLM2, true);
      const onPage = await loadAndAnswer(page, SMOLLM2, false);
      const longest = (r) => Math.max(0, ...r.longTasks);
      console.log(`worker: ${inWorker.longTasks.length} long tasks (longest ${longest(inWorker)} ms), ` +
        `${inWorker.seconds.toFixed(1)} s; page thread: ${onPage.longTasks.length} long tasks ` +
        `(longest ${longest(onPage)} ms), ${onPage.seconds.toFixed(1)} s`);
      assert.equal(workers.filter((url) => WORKER_FILE.test(url)).length, 1, JSON.stringify(workers));
      assert.match(inWorker.text, /^The capital of France is/);
      assert.equal(onPage.text, inWorker.text, "the same greedy answer either way");
      assert.deepEqual(inWorker.longTasks, [], "no main-thread task over 50 ms with the worker");
      assert.ok(longest(onPage) > 1000, "on the page's thread the load blocks it (the measurement can fail)");
    } finally {
      await page.close();
    }
  });

test("dispose() lets the answer in flight finish, then the worker closes; later requests are refused", { timeout: 300_000 }, async () => {
  const page = await openPage();
  try {
    const workerStarted = page.waitForEvent("worker", (w) => WORKER_FILE.test(w.url()));
    await page.evaluate(async (modelUrl) => {
      window.client = await window.pkg.LlamaClient.create({ mode: "local", local: { modelUrl, contextSize: 160 } });
    }, TINY);
    const worker = await workerStarted;
    const closed = new Promise((resolve) => worker.on("close", () => resolve(true)));
    const r = await page.evaluate(async () => {
      const inFlight = window.client.chat.completions.create({
        messages: [{ role: "user", content: "hello" }], max_tokens: 6, temperature: 0,
      });
      window.client.dispose();
      let refused = null;
      try {
        await window.client.chat.completions.create({ messages: [{ role: "user", content: "hi" }] });
      } catch (e) {
        refused = e.code;
      }
      const answered = await inFlight;
      return { refused, finish: answered.choices[0].finish_reason, backend: window.client.backend };
    });
    assert.equal(r.refused, "bad_request");
    assert.equal(r.finish, "length", "the request sent before dispose() is answered");
    assert.equal(r.backend, "disposed");
    const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 30_000));
    assert.equal(await Promise.race([closed, timeout]), true, "the worker closed");
  } finally {
    await page.close();
  }
});

test("aborting the load in the worker rejects create() with aborted, and the worker is stopped", { timeout: 300_000 }, async () => {
  const page = await openPage();
  try {
    const workerStarted = page.waitForEvent("worker", (w) => WORKER_FILE.test(w.url()));
    const loading = page.evaluate(async (modelUrl) => {
      const controller = new AbortController();
      const started = performance.now();
      let abortedAt = null;
      try {
        await window.pkg.LlamaClient.create({
          mode: "local", local: { modelUrl, cache: false }, signal: controller.signal,
          onProgress: (p) => {
            if (abortedAt === null && p.loadedBytes > 0) {
              abortedAt = p.loadedBytes;
              controller.abort();
            }
          },
        });
        return { code: "none" };
      } catch (e) {
        return { code: e.code, abortedAt, seconds: (performance.now() - started) / 1000 };
      }
    }, SMOLLM2);
    const worker = await workerStarted;
    const closed = new Promise((resolve) => worker.on("close", () => resolve(true)));
    const r = await loading;
    assert.equal(r.code, "aborted", JSON.stringify(r));
    assert.ok(r.abortedAt > 0);
    const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 30_000));
    assert.equal(await Promise.race([closed, timeout]), true, "the worker was stopped");
  } finally {
    await page.close();
  }
});

test("a GPU device lost mid-stream ends the answer with device_lost; the next request loads the model in a new worker and answers", { timeout: 300_000 }, async () => {
  const page = await openPage();
  try {
    const workers = [];
    page.on("worker", (w) => { if (WORKER_FILE.test(w.url())) workers.push(w); });
    await page.exposeFunction("loseDevice", () =>
      workers[0].evaluate(() => self.llamaWebDevices.forEach((d) => d.destroy())));
    const r = await page.evaluate(async (modelUrl) => {
      const client = await window.pkg.LlamaClient.create({ mode: "local", local: { modelUrl, contextSize: 256 } });
      const ask = { messages: [{ role: "user", content: "hello" }], max_tokens: 6, temperature: 0 };
      const before = (await client.chat.completions.create(ask)).choices[0].message.content;
      const stream = await client.chat.completions.create({ ...ask, max_tokens: 150, stream: true });
      let chunks = 0;
      let lost = null;
      const started = performance.now();
      try {
        for await (const _ of stream) {
          chunks += 1;
          if (chunks === 2) await window.loseDevice();
        }
      } catch (e) {
        lost = { code: e.code, message: e.message };
      }
      const seconds = (performance.now() - started) / 1000;
      const after = (await client.chat.completions.create(ask)).choices[0].message.content;
      const again = (await client.chat.completions.create(ask)).choices[0].message.content;
      client.dispose();
      return { before, chunks, lost, seconds, after, again, backend: client.backend };
    }, TINY);
    assert.equal(r.lost?.code, "device_lost", JSON.stringify(r));
    assert.ok(r.chunks < 150, `the stream ended after ${r.chunks} chunks`);
    assert.equal(r.after, r.before, "the model answers as before, on a fresh device");
    assert.equal(r.again, r.before);
    assert.equal(workers.length, 2, "a second worker was started");
  } finally {
    await page.close();
  }
});

test("a worker file that cannot be fetched leaves the model on the page's thread, answering the same", { timeout: 300_000 }, async () => {
  const page = await openPage();
  try {
    const answer = (modelUrl) => page.evaluate(async (modelUrl) => {
      const ask = { messages: [{ role: "user", content: "hello" }], max_tokens: 6, temperature: 0 };
      const client = await window.pkg.LlamaClient.create({ mode: "local", local: { modelUrl, contextSize: 160 } });
      const text = (await client.chat.completions.create(ask)).choices[0].message.content;
      let preAborted = "none";
      try {
        await client.chat.completions.create({ ...ask, signal: AbortSignal.abort() });
      } catch (e) {
        preAborted = e.code;
      }
      const memory = await window.pkg.gpuMemory();
      client.dispose();
      return { text, preAborted, inUse: memory.inUse };
    }, modelUrl);
    const inWorker = await answer(TINY);
    assert.equal(inWorker.inUse, 0, "with the worker, the page's own device holds nothing");
    await page.route(WORKER_FILE, (route) => route.fulfill({ status: 404, body: "not here" }));
    const warnings = [];
    page.on("console", (m) => { if (m.type() === "warning") warnings.push(m.text()); });
    const onPage = await answer(TINY);
    assert.equal(onPage.text, inWorker.text);
    assert.deepEqual([inWorker.preAborted, onPage.preAborted], ["aborted", "aborted"], "a signal aborted before the call");
    assert.ok(onPage.inUse > 0, "the model is on the page's own device");
    assert.ok(warnings.some((w) => /runs on the page's thread/.test(w)), JSON.stringify(warnings));
  } finally {
    await page.close();
  }
});
