// End-to-end: the browser's model store (OPFS) in headless Chromium, against the loopback server's
// request log and injected faults: a second load reads the store, an interrupted download resumes with
// only the missing pieces, a changed file is never mixed, `sha256` is checked, a full disk is
// `storage_quota` (and auto mode goes remote saying so). The tiny Llama 3.1 models, cut into 16 KiB pieces.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";
import { startOpenAiServer } from "../openai-server.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"];
const FIXTURES = new URL("../fixtures/tiny_llama31/", import.meta.url).pathname;
const Q4_0 = join(FIXTURES, "tiny-llama31-Q4_0.gguf");
const Q8_0 = join(FIXTURES, "tiny-llama31-Q8_0.gguf");
const PIECE = 16384;

let server, api, browser, page, dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "llama-web-store-"));
  server = await startServer({ port: 0, mounts: [["/store/", dir]] });
  api = await startOpenAiServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage();
  await preparePage(page);
});

/** Loads the package into `page` and defines the helpers the tests call. */
async function preparePage(page) {
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${server.url}bench.html?model=none`);
  await page.evaluate(async (piece) => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
    // Loads a model and answers one greedy question; a failure comes back as { code, message }.
    window.loadAndAsk = async (modelUrl, local = {}, extra = {}) => {
      const phases = [];
      const started = performance.now();
      try {
        const client = await pkg.LlamaClient.create({
          mode: "local", local: { modelUrl, contextSize: 160, pieceBytes: piece, ...local },
          onProgress: (p) => phases.push(p.phase), ...extra,
        });
        const loadMs = performance.now() - started;
        const answer = await client.chat.completions.create({
          messages: [{ role: "user", content: "hello" }], max_tokens: 8, temperature: 0,
        });
        return { text: answer.choices[0].message.content, backend: client.backend,
                 reason: client.fallbackReason ?? null, phases: [...new Set(phases)], loadMs };
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    };
    window.stored = async () => Object.fromEntries(
      (await pkg.LlamaClient.cache.list()).map((m) => [new URL(m.url, location.href).pathname, m]));
  }, PIECE);
}
after(async () => {
  await browser?.close();
  await api?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The server's requests for `path` since the log was cleared. */
const requestsFor = (path) => server.requests.filter((r) => r.path === path).map((r) => r.range);
/** Bytes asked for by `bytes=a-b` ranges. */
const rangeBytes = (ranges) => ranges.reduce((n, r) => {
  const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(r);
  return n + Number(b) - Number(a) + 1;
}, 0);

let reference; // the greedy answer of the Q8_0 model loaded without the store
test("without the store, the model streams by Range requests and nothing is kept", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "plain.gguf"));
  const r = await page.evaluate(() => window.loadAndAsk("/store/plain.gguf", { cache: false }));
  assert.equal(r.code, undefined, r.message);
  reference = r.text;
  assert.ok(reference.length > 0);
  assert.equal((await page.evaluate(() => window.stored()))["/store/plain.gguf"], undefined);
});

test("a second load reads the store after one 1-byte request, and answers the same", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "a.gguf"));
  server.requests.length = 0;
  const first = await page.evaluate(() => window.loadAndAsk("/store/a.gguf"));
  assert.equal(first.code, undefined, first.message);
  assert.deepEqual(first.phases, ["download", "compile"]);
  const size = readFileSync(Q8_0).length;
  // One revalidation byte, then every piece exactly once.
  const firstRanges = requestsFor("/store/a.gguf");
  assert.equal(firstRanges[0], "bytes=0-0");
  assert.equal(rangeBytes(firstRanges.slice(1)), size, JSON.stringify(firstRanges));
  server.requests.length = 0;
  const second = await page.evaluate(() => window.loadAndAsk("/store/a.gguf"));
  assert.deepEqual(requestsFor("/store/a.gguf"), ["bytes=0-0"]);
  assert.deepEqual(second.phases, ["cache", "compile"]);
  assert.equal(second.text, first.text);
  assert.equal(first.text, reference);
  console.log(`load: first ${first.loadMs.toFixed(0)} ms (download), second ${second.loadMs.toFixed(0)} ms (store)`);
  const entry = (await page.evaluate(() => window.stored()))["/store/a.gguf"];
  assert.equal(entry.bytes, size);
  assert.equal(entry.complete, true);
  assert.ok(Math.abs(entry.lastUsed - Date.now()) < 600_000, JSON.stringify(entry));
});

test("a server that sends more than the range asked (sirv's whole file for bytes=0-0) is read for what was asked", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "r.gguf"));
  server.faults.rangeRunsOn = { path: "/store/r.gguf" };
  try {
    const first = await page.evaluate(() => window.loadAndAsk("/store/r.gguf"));
    assert.equal(first.code, undefined, first.message);
    const second = await page.evaluate(() => window.loadAndAsk("/store/r.gguf"));
    assert.deepEqual([first.phases, second.phases], [["download", "compile"], ["cache", "compile"]]);
    assert.deepEqual([first.text, second.text], [reference, reference]);
  } finally {
    server.faults.rangeRunsOn = null;
  }
  const entry = (await page.evaluate(() => window.stored()))["/store/r.gguf"];
  assert.deepEqual([entry.bytes, entry.complete], [readFileSync(Q8_0).length, true]);
});

test("a load's long-lived signal keeps no listener per piece once the load has ended", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "l.gguf"));
  const r = await page.evaluate(async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    let listening = 0, most = 0;
    const add = signal.addEventListener.bind(signal), remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (type, f, o) => { if (type === "abort") most = Math.max(most, ++listening); add(type, f, o); };
    signal.removeEventListener = (type, f, o) => { if (type === "abort") listening--; remove(type, f, o); };
    const answer = await window.loadAndAsk("/store/l.gguf", {}, { signal });
    return { answer, listening, most };
  });
  assert.equal(r.answer.code, undefined, r.answer.message);
  assert.equal(r.answer.text, reference);
  // Listeners were added (one per piece's request at least), and every one is gone.
  assert.ok(r.most >= 1, JSON.stringify(r));
  assert.equal(r.listening, 0, JSON.stringify(r));
});

test("an interrupted download resumes with the missing pieces only", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "b.gguf"));
  const size = readFileSync(Q8_0).length;
  server.faults.cutAfterBytes = { path: "/store/b.gguf", bytes: 5 * PIECE + 1000 };
  const cut = await page.evaluate(() => window.loadAndAsk("/store/b.gguf"));
  server.faults.cutAfterBytes = null;
  assert.equal(cut.code, "model_fetch", JSON.stringify(cut));
  const partial = (await page.evaluate(() => window.stored()))["/store/b.gguf"];
  assert.equal(partial.complete, false);
  assert.ok(partial.bytes > 0 && partial.bytes < size, JSON.stringify(partial));
  server.requests.length = 0;
  const resumed = await page.evaluate(() => window.loadAndAsk("/store/b.gguf"));
  assert.equal(resumed.code, undefined, resumed.message);
  const ranges = requestsFor("/store/b.gguf");
  assert.equal(ranges[0], "bytes=0-0");
  // Only what the first load did not store came again.
  assert.equal(rangeBytes(ranges.slice(1)), size - partial.bytes, JSON.stringify(ranges));
  assert.equal(resumed.text, reference);
  assert.equal((await page.evaluate(() => window.stored()))["/store/b.gguf"].complete, true);
});

test("a piece that stalls is abandoned after pieceTimeoutSeconds and fetched again", { timeout: 120_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "s.gguf"));
  server.requests.length = 0;
  server.faults.stallOnce = { path: "/store/s.gguf", bytes: 1000 };
  const r = await page.evaluate(() => window.loadAndAsk("/store/s.gguf", { pieceTimeoutSeconds: 2 }));
  server.faults.stallOnce = null;
  assert.equal(r.code, undefined, r.message);
  assert.equal(r.text, reference);
  const ranges = requestsFor("/store/s.gguf").filter((x) => x !== "bytes=0-0");
  assert.equal(new Set(ranges).size, ranges.length - 1, `one piece asked twice: ${JSON.stringify(ranges)}`);
  assert.ok(r.loadMs >= 2000, `waited ${r.loadMs} ms for the stalled piece`);
});

test("a file changed on the server is detected and its old pieces are never mixed in", { timeout: 300_000 }, async () => {
  // Between two loads: the stored Q4_0 is dropped and the new file (Q8_0) is downloaded whole.
  copyFileSync(Q4_0, join(dir, "c.gguf"));
  const old = await page.evaluate(() => window.loadAndAsk("/store/c.gguf"));
  assert.equal(old.code, undefined, old.message);
  copyFileSync(Q8_0, join(dir, "c.gguf"));
  server.requests.length = 0;
  const fresh = await page.evaluate(() => window.loadAndAsk("/store/c.gguf"));
  assert.equal(fresh.code, undefined, fresh.message);
  assert.deepEqual(fresh.phases, ["download", "compile"]);
  assert.equal(rangeBytes(requestsFor("/store/c.gguf").slice(1)), readFileSync(Q8_0).length);
  assert.equal(fresh.text, reference);
  // During a download: the load fails as model_fetch and keeps nothing.
  copyFileSync(Q8_0, join(dir, "d.gguf"));
  server.faults.changeEtagAfter = { path: "/store/d.gguf", requests: 3 };
  const changed = await page.evaluate(() => window.loadAndAsk("/store/d.gguf"));
  server.faults.changeEtagAfter = null;
  assert.equal(changed.code, "model_fetch", JSON.stringify(changed));
  assert.match(changed.message, /changed on the server/);
  assert.equal((await page.evaluate(() => window.stored()))["/store/d.gguf"], undefined);
});

test("sha256: a wrong one is bad_model with nothing kept, the right one loads", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "e.gguf"));
  const right = createHash("sha256").update(readFileSync(Q8_0)).digest("hex");
  const wrong = await page.evaluate(() => window.loadAndAsk("/store/e.gguf", { sha256: "0".repeat(64) }));
  assert.equal(wrong.code, "bad_model", JSON.stringify(wrong));
  assert.match(wrong.message, new RegExp(right));
  assert.equal((await page.evaluate(() => window.stored()))["/store/e.gguf"], undefined);
  const ok = await page.evaluate((sha256) => window.loadAndAsk("/store/e.gguf", { sha256 }), right.toUpperCase());
  assert.equal(ok.code, undefined, ok.message);
  assert.equal((await page.evaluate(() => window.stored()))["/store/e.gguf"].complete, true);
  const bad = await page.evaluate(() => window.loadAndAsk("/store/e.gguf", { sha256: "xyz" }));
  assert.equal(bad.code, "bad_request");
});

test("too little storage is storage_quota; auto mode answers remotely and says why", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "f.gguf"));
  const r = await page.evaluate(async (baseUrl) => {
    // The estimate is replaced on the page's thread, so the model loads there (the worker runs
    // the same check on its own navigator.storage).
    const real = navigator.storage.estimate;
    navigator.storage.estimate = async () => ({ quota: 50_000, usage: 40_000 });
    try {
      const local = await window.loadAndAsk("/store/f.gguf", { worker: false });
      const auto = await window.loadAndAsk("/store/f.gguf", { worker: false },
        { mode: "auto", remote: { baseUrl, apiKey: "k" } });
      return { local, auto };
    } finally {
      navigator.storage.estimate = real;
    }
  }, `${api.url}ok/v1`);
  assert.equal(r.local.code, "storage_quota", JSON.stringify(r.local));
  assert.match(r.local.message, /10000 are available/);
  assert.equal((await page.evaluate(() => window.stored()))["/store/f.gguf"], undefined, "no empty entry is left");
  assert.equal(r.auto.backend, "remote", JSON.stringify(r.auto));
  assert.match(r.auto.reason, /not enough browser storage/);
});

test("two tabs loading one model take turns on its entry: every piece is downloaded once", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "h.gguf"));
  const size = readFileSync(Q8_0).length;
  const context = await browser.newContext(); // one profile: its two pages share the origin's storage
  try {
    const tabs = [await context.newPage(), await context.newPage()];
    for (const tab of tabs) await preparePage(tab);
    server.requests.length = 0;
    const [a, b] = await Promise.all(tabs.map((tab) => tab.evaluate(() => window.loadAndAsk("/store/h.gguf"))));
    assert.equal(a.code, undefined, a.message);
    assert.equal(b.code, undefined, b.message);
    assert.equal(a.text, b.text);
    const ranges = requestsFor("/store/h.gguf");
    assert.deepEqual(ranges.filter((r) => r === "bytes=0-0"), ["bytes=0-0", "bytes=0-0"]);
    assert.equal(rangeBytes(ranges.filter((r) => r !== "bytes=0-0")), size, JSON.stringify(ranges));
    assert.deepEqual([a.phases, b.phases].map((p) => p[0]).sort(), ["cache", "download"]);
  } finally {
    await context.close();
  }
});

test("without OPFS the store is kept in the Cache API, with the same behaviour", { timeout: 300_000 }, async () => {
  copyFileSync(Q8_0, join(dir, "g.gguf"));
  server.requests.length = 0;
  const r = await page.evaluate(async () => {
    // On the page's thread, where OPFS can be hidden from the package.
    const real = StorageManager.prototype.getDirectory;
    StorageManager.prototype.getDirectory = undefined;
    try {
      const first = await window.loadAndAsk("/store/g.gguf", { worker: false });
      const second = await window.loadAndAsk("/store/g.gguf", { worker: false });
      const entry = (await window.stored())["/store/g.gguf"];
      const cached = (await (await caches.open("llama-web-models")).keys()).length;
      const deleted = await window.pkg.LlamaClient.cache.delete("/store/g.gguf");
      const left = (await (await caches.open("llama-web-models")).keys()).length;
      return { first, second, entry, cached, deleted, left };
    } finally {
      StorageManager.prototype.getDirectory = real;
    }
  });
  assert.equal(r.first.code, undefined, r.first.message);
  assert.deepEqual(r.first.phases, ["download", "compile"]);
  assert.deepEqual(r.second.phases, ["cache", "compile"]);
  assert.equal(r.second.text, r.first.text);
  const ranges = requestsFor("/store/g.gguf");
  const size = readFileSync(Q8_0).length;
  assert.equal(rangeBytes(ranges.filter((x) => x !== "bytes=0-0")), size, "the second load fetched no model bytes");
  assert.equal(r.entry.complete, true);
  assert.equal(r.entry.bytes, size);
  assert.ok(r.cached > 2, `${r.cached} cached responses`);
  assert.equal(r.deleted, true);
  assert.equal(r.left, 0, "nothing is left in the cache");
  assert.equal((await page.evaluate(() => window.stored()))["/store/g.gguf"], undefined, "OPFS holds no copy");
});

test("a header of ~80 MB is refused as bad_model after at most 64 MiB, not fetched whole", { timeout: 120_000 }, async () => {
  // GGUF v3, no tensors, one metadata key: an array of 10,000,000 strings, each an 8-byte length
  // of 0 (zeros: a sparse 100 MB file) — skipping it means reading all 80 MB.
  const head = Buffer.alloc(4 + 4 + 8 + 8 + 8 + 3 + 4 + 4 + 8);
  let at = head.write("GGUF", 0, "latin1");
  at = head.writeUInt32LE(3, at);
  at = head.writeBigUInt64LE(0n, at);
  at = head.writeBigUInt64LE(1n, at);
  at = head.writeBigUInt64LE(3n, at);
  at += head.write("big", at, "latin1");
  at = head.writeUInt32LE(9, at); // array
  at = head.writeUInt32LE(8, at); // of strings
  head.writeBigUInt64LE(10_000_000n, at);
  const path = join(dir, "huge-header.gguf");
  writeFileSync(path, head);
  truncateSync(path, 100_000_000);
  server.requests.length = 0;
  const r = await page.evaluate(() => window.loadAndAsk("/store/huge-header.gguf", { cache: false }));
  assert.equal(r.code, "bad_model", JSON.stringify(r));
  assert.match(r.message, /header size/);
  const fetched = rangeBytes(requestsFor("/store/huge-header.gguf").filter((r) => r !== "bytes=0-0"));
  assert.ok(fetched <= 64 << 20, `fetched ${fetched} bytes`);
});

test("a model whose weights are NaN is refused at load with bad_model, and the page goes on", { timeout: 300_000 }, async () => {
  // The tiny F32 model's tensor data (from `llama-web inspect`: data_offset 17856, all F32) set to NaN.
  const bytes = readFileSync(join(FIXTURES, "tiny-llama31-F32.gguf"));
  const DATA_OFFSET = 17856;
  assert.equal((bytes.length - DATA_OFFSET) % 4, 0, "the fixture is the one measured");
  for (let at = DATA_OFFSET; at < bytes.length; at += 4) bytes.writeFloatLE(NaN, at);
  writeFileSync(join(dir, "nan.gguf"), bytes);
  const r = await page.evaluate(() => window.loadAndAsk("/store/nan.gguf", { cache: false }));
  assert.equal(r.code, "bad_model", JSON.stringify(r));
  assert.match(r.message, /NaN/);
  copyFileSync(Q8_0, join(dir, "after-nan.gguf"));
  const after = await page.evaluate(() => window.loadAndAsk("/store/after-nan.gguf", { cache: false }));
  assert.equal(after.text, reference);
});

test("cache.delete and cache.clear empty the store", { timeout: 60_000 }, async () => {
  const r = await page.evaluate(async () => {
    const cache = window.pkg.LlamaClient.cache;
    const before = Object.keys(await window.stored()).length;
    const deleted = await cache.delete("/store/a.gguf");
    const again = await cache.delete("/store/a.gguf");
    const afterDelete = Object.keys(await window.stored());
    await cache.clear();
    return { before, deleted, again, afterDelete, afterClear: (await cache.list()).length };
  });
  assert.ok(r.before >= 3, JSON.stringify(r));
  assert.equal(r.deleted, true);
  assert.equal(r.again, false);
  assert.ok(!r.afterDelete.includes("/store/a.gguf"));
  assert.equal(r.afterClear, 0);
});
