// End-to-end: `LlamaClient` in local mode in headless Chromium (WebGPU on SwiftShader) with the tiny
// Llama 3.1 test model: the model comes in by HTTP Range requests (through the browser's store) with
// progress, answers in OpenAI's shapes, stops on abort — and one consumer reads a local and a remote
// stream with the same code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";
import { startOpenAiServer } from "../openai-server.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"];
const MODEL = "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf";

let pages, api, browser, page;
const modelRequests = [];
before(async () => {
  pages = await startServer({ port: 0 });
  api = await startOpenAiServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("request", (r) => {
    if (r.url().endsWith(".gguf")) modelRequests.push(r.headers()["range"] ?? null);
  });
  await page.goto(`${pages.url}bench.html?model=none`);
  await page.evaluate(async () => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
    // The consumer both backends are read with: the same code, whatever answered.
    window.consume = async (stream) => {
      const out = { text: "", chunks: 0, role: null, finish: null, usage: null, shapes: new Set() };
      for await (const chunk of stream) {
        out.chunks += 1;
        out.shapes.add(Object.keys(chunk).filter((k) => k !== "usage").sort().join(","));
        const choice = chunk.choices[0];
        if (choice?.delta?.role) out.role = choice.delta.role;
        out.text += choice?.delta?.content ?? "";
        if (choice?.finish_reason) out.finish = choice.finish_reason;
        if (chunk.usage) out.usage = chunk.usage;
      }
      out.shapes = [...out.shapes];
      return out;
    };
  });
});
after(async () => {
  await browser?.close();
  await api?.close();
  pages?.close();
});

test("local mode loads the model by Range requests with progress and streams an answer", { timeout: 300_000 }, async () => {
  modelRequests.length = 0;
  const r = await page.evaluate(async (modelUrl) => {
    const progress = [];
    const client = await window.pkg.LlamaClient.create({
      mode: "local", local: { modelUrl, contextSize: 160 }, onProgress: (p) => progress.push(p),
    });
    window.localClient = client;
    const stream = await client.chat.completions.create({
      messages: [{ role: "user", content: "hello" }], stream: true, max_tokens: 6, temperature: 0,
    });
    return { backend: client.backend, reason: client.fallbackReason ?? null, progress, out: await window.consume(stream) };
  }, MODEL);
  assert.equal(r.backend, "local");
  assert.equal(r.reason, null);
  // Progress: bytes grow to the file's size, then the kernels compile (one event, last).
  const last = r.progress.at(-1);
  assert.ok(r.progress.slice(0, -1).every((p) => p.phase === "download"));
  assert.equal(last.phase, "compile");
  assert.equal(last.etaSeconds, null);
  assert.equal(last.loadedBytes, last.totalBytes);
  assert.equal(r.progress.at(-2).loadedBytes, last.totalBytes);
  assert.ok(r.progress.length > 10, `${r.progress.length} progress events`);
  assert.ok(r.progress.every((p, i) => i === 0 || p.loadedBytes >= r.progress[i - 1].loadedBytes));
  // Every request for the model was a Range request: one byte to learn the file's version, then its
  // pieces (one 16 MiB piece holds all of the tiny model), each kept in the browser's store.
  assert.deepEqual(modelRequests, ["bytes=0-0", `bytes=0-${last.totalBytes - 1}`]);
  // An OpenAI stream: the role first, text, a finish reason, usage last.
  assert.equal(r.out.role, "assistant");
  assert.ok(["stop", "length"].includes(r.out.finish), r.out.finish);
  assert.equal(r.out.usage.completion_tokens <= 6, true);
  assert.equal(r.out.usage.total_tokens, r.out.usage.prompt_tokens + r.out.usage.completion_tokens);
});

test("one consumer reads local and remote streams alike", { timeout: 300_000 }, async () => {
  const r = await page.evaluate(async (baseUrl) => {
    const remote = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl, apiKey: "k" } });
    const params = { messages: [{ role: "user", content: "hello" }], stream: true, max_tokens: 4 };
    return {
      local: await window.consume(await window.localClient.chat.completions.create(params)),
      remote: await window.consume(await remote.chat.completions.create(params)),
    };
  }, `${api.url}ok/v1`);
  // Locally, usage also says how many prompt tokens came from the kept cache (OpenAI's prompt caching field):
  // at least the chat template's preamble, which the load prefilled.
  const cached = r.local.usage.prompt_tokens_details?.cached_tokens;
  assert.ok(cached > 0 && cached < r.local.usage.prompt_tokens, JSON.stringify(r.local.usage));
  delete r.local.usage.prompt_tokens_details;
  for (const [name, out] of Object.entries(r)) {
    assert.equal(out.role, "assistant", name);
    assert.deepEqual(out.shapes, ["choices,created,id,model,object"], name);
    assert.deepEqual(Object.keys(out.usage).sort(), ["completion_tokens", "prompt_tokens", "total_tokens"], name);
    assert.ok(["stop", "length"].includes(out.finish), `${name}: ${out.finish}`);
  }
  assert.equal(r.remote.text, "You said: hello. Grüße 🦙");
});

test("local answers: a whole completion, abort, bad requests and context overflow", { timeout: 300_000 }, async () => {
  const r = await page.evaluate(async () => {
    const client = window.localClient;
    const messages = [{ role: "user", content: "hello" }];
    const completion = await client.chat.completions.create({ messages, max_tokens: 3, temperature: 0 });
    const error = async (params) => {
      try {
        const s = await client.chat.completions.create(params);
        if (s[Symbol.asyncIterator]) for await (const _ of s) { /* drain */ }
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, message: e.message };
      }
    };
    const controller = new AbortController();
    let seen = 0;
    let aborted = null;
    try {
      // Greedy: the tiny model answers "hello" with 40 tokens and no end token (`llama-web
      // generate … --max-tokens 40` on either device), so the abort always lands mid-answer; a
      // sampled answer could end within two chunks and leave nothing to abort.
      const s = await client.chat.completions.create({
        messages, stream: true, max_tokens: 40, temperature: 0, signal: controller.signal,
      });
      for await (const _ of s) {
        seen += 1;
        if (seen === 2) controller.abort();
      }
    } catch (e) {
      aborted = e.code;
    }
    return {
      completion,
      aborted,
      seen,
      overflow: await error({ messages, max_tokens: 200 }),
      bad: await error({ messages: [] }),
      preAborted: await error({ messages, max_tokens: 40, signal: AbortSignal.abort() }),
      preAbortedStream: await error({ messages, stream: true, max_tokens: 40, signal: AbortSignal.abort() }),
      // Llama 3.1's template raises on two tool calls in one message: the request's fault.
      refused: await error({ messages: [{ role: "assistant", tool_calls: [
        { type: "function", function: { name: "a", arguments: "{}" } },
        { type: "function", function: { name: "b", arguments: "{}" } }] }, ...messages] }),
      hugeMaxTokens: await error({ messages, max_tokens: 2 ** 32 }),
      after: await client.chat.completions.create({ messages, max_tokens: 2, temperature: 0 }),
    };
  });
  assert.equal(r.preAborted?.code, "aborted", JSON.stringify(r.preAborted));
  assert.equal(r.preAbortedStream?.code, "aborted", JSON.stringify(r.preAbortedStream));
  assert.equal(r.refused?.code, "bad_request", JSON.stringify(r.refused));
  assert.match(r.refused.message, /refused the messages/);
  assert.equal(r.hugeMaxTokens?.code, "bad_request", JSON.stringify(r.hugeMaxTokens));
  assert.equal(r.completion.object, "chat.completion");
  assert.equal(r.completion.choices[0].message.role, "assistant");
  assert.equal(r.completion.usage.completion_tokens <= 3, true);
  assert.equal(r.aborted, "aborted");
  assert.ok(r.seen < 10, `stopped after ${r.seen} chunks`);
  assert.equal(r.overflow?.code, "context_overflow", JSON.stringify(r.overflow));
  assert.equal(r.bad?.code, "bad_request");
  assert.equal(r.after.object, "chat.completion", "the engine is usable after errors");
});

test("requests sent at once take turns on the one model, first in first out", { timeout: 300_000 }, async () => {
  const r = await page.evaluate(async () => {
    const client = window.localClient;
    const ask = (content) => ({ messages: [{ role: "user", content }], max_tokens: 5, temperature: 0 });
    const alone = [await client.chat.completions.create(ask("hello")), await client.chat.completions.create(ask("bye"))]
      .map((c) => c.choices[0].message.content);
    // Sent together, one streamed and one whole: each must finish, in order, with its own answer.
    const finished = [];
    const streamed = client.chat.completions.create({ ...ask("hello"), stream: true })
      .then(window.consume).then((out) => { finished.push("first"); return out.text; });
    const whole = client.chat.completions.create(ask("bye"))
      .then((c) => { finished.push("second"); return c.choices[0].message.content; });
    return { alone, together: await Promise.all([streamed, whole]), finished };
  });
  assert.deepEqual(r.together, r.alone);
  assert.deepEqual(r.finished, ["first", "second"]);
});

test("hybrid start: remote answers while the model loads, then local, and onBackendChange says so", { timeout: 300_000 }, async () => {
  const r = await page.evaluate(async ({ baseUrl, modelUrl }) => {
    const changes = [];
    const client = await window.pkg.LlamaClient.create({
      mode: "auto", hybrid: true, local: { modelUrl, contextSize: 160, cache: false },
      remote: { baseUrl, apiKey: "k" }, onBackendChange: (b) => changes.push(b),
    });
    const params = { messages: [{ role: "user", content: "hello" }], stream: true, max_tokens: 4 };
    const first = { backend: client.backend, reason: client.fallbackReason ?? null,
                    out: await window.consume(await client.chat.completions.create(params)) };
    const deadline = Date.now() + 240_000;
    while (client.backend !== "local" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const second = { backend: client.backend, reason: client.fallbackReason ?? null,
                     out: await window.consume(await client.chat.completions.create(params)) };
    let bad = null;
    try {
      await window.pkg.LlamaClient.create({ mode: "local", hybrid: true, local: { modelUrl } });
    } catch (e) {
      bad = e.code;
    }
    return { first, second, changes, bad };
  }, { baseUrl: `${api.url}ok/v1`, modelUrl: MODEL });
  assert.equal(r.first.backend, "remote");
  assert.match(r.first.reason, /loading/);
  assert.equal(r.first.out.text, "You said: hello. Grüße 🦙");
  assert.equal(r.second.backend, "local");
  assert.equal(r.second.reason, null);
  assert.notEqual(r.second.out.text, r.first.out.text);
  assert.ok(r.second.out.usage.prompt_tokens_details, "local usage carries cached_tokens");
  assert.deepEqual(r.changes, ["local"]);
  assert.equal(r.bad, "bad_request");
});

test("dispose() frees the model's GPU memory and the client then refuses requests", { timeout: 300_000 }, async () => {
  const r = await page.evaluate(async (modelUrl) => {
    const pkg = window.pkg;
    const before = await pkg.gpuMemory();
    // On the page's thread, where gpuMemory() sees its device (worker.test.mjs: the worker's case).
    const client = await pkg.LlamaClient.create({ mode: "local", local: { modelUrl, contextSize: 160, worker: false } });
    await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    const loaded = await pkg.gpuMemory();
    client.dispose();
    const after = await pkg.gpuMemory();
    let refused = null;
    try {
      await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }] });
    } catch (e) {
      refused = e.code;
    }
    return { before, loaded, after, refused, backend: client.backend };
  }, MODEL);
  console.log(`GPU memory in use: ${r.before.inUse} before, ${r.loaded.inUse} loaded, ${r.after.inUse} after dispose; ` +
    `reserved ${r.before.reserved} / ${r.loaded.reserved} / ${r.after.reserved}`);
  assert.ok(r.loaded.inUse > r.before.inUse, JSON.stringify(r));
  assert.ok(r.after.inUse <= r.before.inUse, JSON.stringify(r));
  assert.equal(r.refused, "bad_request");
  assert.equal(r.backend, "disposed");
});

test("a KV cache beyond what the GPU can bind is insufficient_gpu (was bad_model)", { timeout: 300_000 }, async () => {
  // SmolLM2 (3 KV heads of 64) at 2^20 tokens in f32: 768 MiB of keys per block, over a 128 MiB binding.
  const r = await page.evaluate(async () => {
    try {
      await window.pkg.LlamaClient.create({
        mode: "local",
        local: { modelUrl: "/models/SmolLM2-135M-Instruct.Q4_1.gguf", contextSize: 2 ** 20, kvCache: "f32", cache: false },
      });
      return { code: "none" };
    } catch (e) {
      return { code: e.code, message: e.message };
    }
  });
  assert.equal(r.code, "insufficient_gpu", JSON.stringify(r));
  assert.match(r.message, /storage binding/);
});
