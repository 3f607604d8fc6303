// End-to-end: the npm package's `LlamaClient` in headless Chromium, remote mode against the loopback
// OpenAI-compatible server (tests/openai-server.mjs) with every ugly case, and auto mode without WebGPU.
// Each case runs inside the page with the package imported exactly as a user imports it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";
import { startOpenAiServer } from "../openai-server.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BASE_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];

let pages, api, browser, page;
before(async () => {
  pages = await startServer({ port: 0 });
  api = await startOpenAiServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, "--enable-unsafe-webgpu"] });
  page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${pages.url}bench.html?model=none`); // any page of ours; the package is imported below
  await page.evaluate(async () => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
  });
});
after(async () => {
  await browser?.close();
  await api?.close();
  pages?.close();
});

/**
 * Runs one request in the page against loopback case `name`: returns the chunks (or the completion)
 * and the error (code, message, status, retryAfterSeconds) it ended with, if any.
 */
function run(name, { params = {}, remote = {}, abortAfterChunks = null } = {}) {
  return page.evaluate(async ({ baseUrl, params, remote, abortAfterChunks }) => {
    const client = await window.pkg.LlamaClient.create({
      mode: "remote", remote: { baseUrl, apiKey: "test-token", maxRetries: 1, ...remote },
    });
    const controller = new AbortController();
    const chunks = [];
    const started = performance.now();
    try {
      const result = await client.chat.completions.create({
        messages: [{ role: "user", content: "hello" }], stream: true, signal: controller.signal, ...params,
      });
      if (!result[Symbol.asyncIterator]) return { backend: client.backend, completion: result };
      for await (const chunk of result) {
        chunks.push(chunk);
        if (chunks.length === abortAfterChunks) controller.abort();
      }
      return { backend: client.backend, chunks, seconds: (performance.now() - started) / 1000 };
    } catch (e) {
      return {
        backend: client.backend, chunks, seconds: (performance.now() - started) / 1000,
        error: { name: e.name, code: e.code, message: e.message, status: e.status, retryAfterSeconds: e.retryAfterSeconds },
      };
    }
  }, { baseUrl: `${api.url}${name}/v1`, params, remote, abortAfterChunks });
}

const text = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
const EXPECTED = "You said: hello. Grüße 🦙";

test("a streamed reply arrives as OpenAI chunks with usage, and max_tokens and the token are sent", async () => {
  api.requests.length = 0;
  const r = await run("ok");
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.backend, "remote");
  assert.equal(text(r.chunks), EXPECTED);
  assert.equal(r.chunks[0].object, "chat.completion.chunk");
  assert.equal(r.chunks[0].choices[0].delta.role, "assistant");
  const finish = r.chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, "stop");
  const last = r.chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.equal(api.requests.length, 1);
  const sent = api.requests[0];
  assert.equal(sent.authorization, "Bearer test-token");
  assert.equal(sent.body.max_tokens, 1024, "max_tokens is always sent (IONOS defaults to 16)");
  assert.equal(sent.body.model, "meta-llama/Meta-Llama-3.1-8B-Instruct");
  assert.deepEqual(sent.body.stream_options, { include_usage: true });
  assert.equal(sent.body.signal, undefined);
});

test("split chunks, CRLF with comments, multi-line data and a missing [DONE] give the same text", async () => {
  for (const name of ["split", "crlf", "multiline", "no-done"]) {
    const r = await run(name);
    assert.equal(r.error, undefined, `${name}: ${JSON.stringify(r.error)}`);
    assert.equal(text(r.chunks), EXPECTED, name);
    assert.ok(r.chunks.at(-1).usage, `${name}: usage at the end`);
  }
});

test("tool-call deltas are passed through", async () => {
  const r = await run("tools", { params: { tools: [{ type: "function", function: { name: "get_weather" } }] } });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const calls = r.chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
  assert.equal(calls[0].function.name, "get_weather");
  assert.equal(calls.map((c) => c.function.arguments).join(""), '{"city": "Berlin"}');
  assert.equal(r.chunks.find((c) => c.choices[0]?.finish_reason).choices[0].finish_reason, "tool_calls");
});

test("HTTP failures and broken streams end in typed errors", async () => {
  const cases = [
    ["401", "auth", 401],
    ["500", "network", 500],
  ];
  for (const [name, code, status] of cases) {
    const r = await run(name);
    assert.equal(r.error?.name, "LlamaWebError", name);
    assert.equal(r.error.code, code, `${name}: ${r.error.message}`);
    assert.equal(r.error.status, status);
  }
  const malformed = await run("malformed");
  assert.equal(malformed.error?.code, "network");
  assert.match(malformed.error.message, /malformed JSON/);
  assert.equal(malformed.chunks.length, 2, "the chunks before the broken one arrive");

  const stalled = await run("stall", { remote: { stallTimeoutSeconds: 1 } });
  assert.equal(stalled.error?.code, "network");
  assert.match(stalled.error.message, /sent no data for 1 s/);
  assert.equal(stalled.chunks.length, 2);

  const bad = await run("ok", { params: { temperature: 7 } });
  assert.equal(bad.error?.code, "bad_request");
});

test("answers that are not what was asked for: an HTML page is an error sent once, JSON to a stream is converted, a cut-off stream fails after its chunks", { timeout: 60_000 }, async () => {
  for (const stream of [true, false]) {
    api.requests.length = 0;
    const html = await run("html", { params: { stream } });
    assert.equal(html.error?.code, "network", `stream ${stream}: ${JSON.stringify(html.error)}`);
    assert.equal(html.error.status, 200);
    assert.match(html.error.message, /text\/html.*Sign in to the Wi-Fi/);
    assert.equal(api.requests.length, 1, "an answered request is never sent again");
  }
  const converted = await run("json-stream");
  assert.equal(converted.error, undefined, JSON.stringify(converted.error));
  assert.equal(text(converted.chunks), EXPECTED);
  assert.ok(converted.chunks.every((c) => c.object === "chat.completion.chunk"));
  assert.equal(converted.chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, "stop");
  assert.equal(converted.chunks.at(-1).usage.total_tokens, 9);

  const cut = await run("truncated");
  assert.equal(cut.error?.code, "network", JSON.stringify(cut.error));
  assert.match(cut.error.message, /ended before the answer did/);
  assert.equal(cut.chunks.length, 3, "the chunks that came are delivered first");

  const overflow = await run("ctx-llamacpp");
  assert.equal(overflow.error?.code, "context_overflow", JSON.stringify(overflow.error));
});

test("time limits: headers that never come, and a stream of comments only, end in network errors without a retry", { timeout: 60_000 }, async () => {
  api.requests.length = 0;
  const silent = await run("no-headers", { remote: { stallTimeoutSeconds: 1 } });
  assert.equal(silent.error?.code, "network", JSON.stringify(silent.error));
  assert.match(silent.error.message, /did not answer within 1 s/);
  assert.ok(silent.seconds < 10, `took ${silent.seconds} s`);
  assert.equal(api.requests.length, 1, "not sent again: the server may have taken it");

  const drip = await run("drip", { remote: { stallTimeoutSeconds: 1 } });
  assert.equal(drip.error?.code, "network", JSON.stringify(drip.error));
  assert.match(drip.error.message, /sent no data for 1 s/);
  assert.equal(drip.chunks.length, 2);
  assert.ok(drip.seconds < 10, `comments do not keep a stream alive: took ${drip.seconds} s`);
});

test("a token a header cannot carry is an auth error, bad option values are bad_request, and the page can go on", { timeout: 60_000 }, async () => {
  const token = await run("ok", { remote: { apiKey: "tok\u2026en" } });
  assert.equal(token.error?.code, "auth", JSON.stringify(token.error));
  assert.match(token.error.message, /U\+2026/);
  const r = await page.evaluate(async (baseUrl) => {
    const codes = {};
    for (const [name, remote] of Object.entries({
      newline: { getToken: () => "abc\ndef" }, zeroStall: { stallTimeoutSeconds: 0 },
      hugeStall: { stallTimeoutSeconds: 3e9 }, fractionalRetries: { maxRetries: 1.5 },
    })) {
      try {
        const client = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl, ...remote } });
        await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }] });
        codes[name] = "none";
      } catch (e) {
        codes[name] = e.code;
      }
    }
    const client = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl, apiKey: "k" } });
    const after = await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }] });
    return { codes, after: after.object };
  }, `${api.url}ok/v1`);
  assert.deepEqual(r.codes, { newline: "auth", zeroStall: "bad_request", hugeStall: "bad_request", fractionalRetries: "bad_request" });
  assert.equal(r.after, "chat.completion");
});

test("unreachable is network naming CORS; a failure after the endpoint answered (CORS) is not sent again", { timeout: 60_000 }, async () => {
  const offline = await page.evaluate(async () => {
    const client = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0 } });
    try {
      await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }] });
      return null;
    } catch (e) {
      return { code: e.code, message: e.message };
    }
  });
  assert.equal(offline?.code, "network");
  assert.match(offline.message, /CORS/);

  const name = `cors-after-1-${Date.now()}`;
  api.requests.length = 0;
  const r = await page.evaluate(async (baseUrl) => {
    const client = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl, apiKey: "k", maxRetries: 2 } });
    const ask = { messages: [{ role: "user", content: "hi" }], stream: true };
    let first = "";
    for await (const c of await client.chat.completions.create(ask)) first += c.choices[0]?.delta?.content ?? "";
    try {
      for await (const _ of await client.chat.completions.create(ask)) { /* blocked */ }
      return { first, second: "answered" };
    } catch (e) {
      return { first, second: e.code, message: e.message };
    }
  }, `${api.url}${name}/v1`);
  assert.equal(r.first, "You said: hi. Grüße 🦙");
  assert.equal(r.second, "network", JSON.stringify(r));
  assert.match(r.message, /CORS/);
  assert.equal(api.requests.length, 2, "the blocked request was sent once (the server answered it)");
});

test("a 503 with Retry-After is retried after it", { timeout: 60_000 }, async () => {
  api.requests.length = 0;
  const r = await run(`503-once-${Date.now()}`);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(text(r.chunks), EXPECTED);
  assert.equal(api.requests.length, 2);
  assert.ok(r.seconds >= 1.0, `waited ${r.seconds} s`);
});

test("the loopback server's request log is not readable from another origin", { timeout: 60_000 }, async () => {
  const r = await page.evaluate(async (url) => {
    try {
      await (await fetch(url)).json();
      return "read";
    } catch (e) {
      return e.name;
    }
  }, `${api.url}__requests`);
  assert.equal(r, "TypeError", "the page's origin cannot read the log (no CORS)");
});

test("a 429 is retried after its Retry-After; a lasting one is rate_limited with retryAfterSeconds", async () => {
  api.requests.length = 0;
  const once = await run(`429-once-${Date.now()}`);
  assert.equal(once.error, undefined, JSON.stringify(once.error));
  assert.equal(text(once.chunks), EXPECTED);
  assert.equal(api.requests.length, 2);
  assert.ok(once.seconds >= 1.0, `waited ${once.seconds} s`);

  api.requests.length = 0;
  const always = await run("429", { remote: { maxRetries: 1 } });
  assert.equal(always.error?.code, "rate_limited");
  assert.equal(always.error.retryAfterSeconds, 1);
  assert.equal(api.requests.length, 2, "one retry");
});

test("abort mid-stream stops the request with code aborted", async () => {
  api.requests.length = 0;
  const r = await run("stall", { abortAfterChunks: 1, remote: { stallTimeoutSeconds: 30 } });
  assert.equal(r.error?.code, "aborted", JSON.stringify(r.error));
  assert.ok(r.seconds < 10, `took ${r.seconds} s`);
  // The server sees the connection go: the request is stopped, not just ignored.
  for (let i = 0; i < 50 && !api.requests[0]?.closedEarly; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(api.requests[0]?.closedEarly, true);
});

test("one long-lived signal given to many requests keeps no listener once each has ended", async () => {
  const counts = await page.evaluate(async (baseUrl) => {
    const controller = new AbortController();
    const signal = controller.signal;
    // The signal's own abort listeners, counted as they are added and removed.
    let listening = 0;
    const add = signal.addEventListener.bind(signal), remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (type, f, o) => { if (type === "abort") listening++; add(type, f, o); };
    signal.removeEventListener = (type, f, o) => { if (type === "abort") listening--; remove(type, f, o); };
    const client = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl: `${baseUrl}ok/v1`, maxRetries: 0 } });
    const messages = [{ role: "user", content: "hello" }];
    const seen = [];
    const stream = await client.chat.completions.create({ messages, stream: true, signal });
    seen.push(listening); // while the stream is open: its listener
    for await (const _ of stream);
    seen.push(listening);
    const broken = await client.chat.completions.create({ messages, stream: true, signal });
    for await (const _ of broken) break;
    seen.push(listening);
    await client.chat.completions.create({ messages, signal });
    seen.push(listening);
    const failing = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl: `${baseUrl}500/v1`, maxRetries: 0 } });
    await failing.chat.completions.create({ messages, signal }).catch(() => {});
    seen.push(listening);
    return seen;
  }, api.url);
  assert.deepEqual(counts, [1, 0, 0, 0, 0]);
});

test("stream: false returns one chat.completion; getToken() supplies the token", async () => {
  api.requests.length = 0;
  const r = await page.evaluate(async (baseUrl) => {
    const client = await window.pkg.LlamaClient.create({
      mode: "remote", remote: { baseUrl, getToken: async () => "fresh-token" },
    });
    return client.chat.completions.create({ messages: [{ role: "user", content: "hello" }], max_tokens: 5 });
  }, `${api.url}ok/v1`);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.content, EXPECTED);
  assert.equal(api.requests[0].authorization, "Bearer fresh-token");
  assert.equal(api.requests[0].body.max_tokens, 5);
});

test("auto mode without WebGPU answers remotely and says why", async () => {
  const plain = await chromium.launch({ executablePath: CHROMIUM, args: BASE_ARGS });
  try {
    const p = await plain.newPage();
    await p.goto(`${pages.url}bench.html?model=none`);
    const r = await p.evaluate(async ({ baseUrl }) => {
      const pkg = await import("/pkg/llama_web.js");
      await pkg.default();
      const client = await pkg.LlamaClient.create({
        mode: "auto",
        local: { modelUrl: "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf" },
        remote: { baseUrl, apiKey: "k" },
      });
      const stream = await client.chat.completions.create({ messages: [{ role: "user", content: "hello" }], stream: true });
      let text = "";
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
      return { backend: client.backend, reason: client.fallbackReason, text };
    }, { baseUrl: `${api.url}ok/v1` });
    assert.equal(r.backend, "remote");
    assert.match(r.reason, /WebGPU/);
    assert.equal(r.text, EXPECTED);
  } finally {
    await plain.close();
  }
});

test("auto mode with WebGPU: local when the model fits, remote with the reason when it cannot be read", async () => {
  const r = await page.evaluate(async (baseUrl) => {
    const create = (modelUrl) => window.pkg.LlamaClient.create({
      mode: "auto", local: { modelUrl, contextSize: 128 }, remote: { baseUrl, apiKey: "k" },
    });
    const fits = await create("/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf");
    const missing = await create("/fixtures/no-such-model.gguf");
    return {
      fits: [fits.backend, fits.fallbackReason ?? null],
      missing: [missing.backend, missing.fallbackReason ?? null],
    };
  }, `${api.url}ok/v1`);
  assert.deepEqual(r.fits, ["local", null]);
  assert.equal(r.missing[0], "remote");
  assert.match(r.missing[1], /^the local model could not be read: .*HTTP 404/);
});

test("a panic on the page's thread rejects every pending promise with device_lost, and later calls at once", { timeout: 60_000 }, async () => {
  const fresh = await browser.newPage(); // the panic leaves this page's module dead
  try {
    await fresh.goto(`${pages.url}bench.html?model=none`);
    const r = await fresh.evaluate(async (baseUrl) => {
      const pkg = await import("/pkg/llama_web.js");
      await pkg.default();
      const client = await pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl, apiKey: "k", stallTimeoutSeconds: 600 } });
      const stream = await client.chat.completions.create({ messages: [{ role: "user", content: "hi" }], stream: true });
      const chunks = stream[Symbol.asyncIterator]();
      await chunks.next();
      await chunks.next();
      const pending = chunks.next().then(() => "resolved", (e) => e.code); // the stall: nothing more comes
      let thrown = null;
      try {
        pkg.__llamaWebPanic();
      } catch (e) {
        thrown = e.constructor.name;
      }
      const outcome = await Promise.race([pending, new Promise((r) => setTimeout(() => r("still pending"), 5000))]);
      let later = null;
      try {
        await pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl } });
        later = "created";
      } catch (e) {
        later = e.code;
      }
      return { thrown, outcome, later };
    }, `${api.url}stall/v1`);
    assert.equal(r.thrown, "RuntimeError", "the panic traps the module");
    assert.equal(r.outcome, "device_lost", "the pending next() is rejected, not left hanging");
    assert.equal(r.later, "device_lost", "later calls are refused at once");
  } finally {
    await fresh.close();
  }
});
