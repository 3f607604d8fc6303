// End-to-end: the official `openai` npm package (its ESM build, loaded as is) drives a LlamaClient through
// `client.fetch` in headless Chromium — the local backend (the tiny model on WebGPU/SwiftShader) and the
// remote one (the loopback server) — with one and the same code: streamed text, `stream: false`, a
// required tool call, `models.list()`, and an abort mid-stream.
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
before(async () => {
  pages = await startServer({ port: 0 });
  api = await startOpenAiServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${pages.url}bench.html?model=none`);
  await page.evaluate(async () => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
    const { default: OpenAI } = await import("/node_modules/openai/index.mjs");
    // The app's code: it knows only the openai package; `sdk(kind)` gives it a configured client.
    window.driveOpenAI = async (sdk) => {
      const messages = [{ role: "user", content: "What is the weather in Paris?" }];
      const tools = [{ type: "function", function: { name: "get_weather", parameters: {
        type: "object", properties: { city: { type: "string", maxLength: 10 } }, required: ["city"],
        additionalProperties: false } } }];
      const out = {};
      const stream = await sdk("text").chat.completions.create({ model: "any", messages, stream: true, max_tokens: 8 });
      out.streamed = { text: "", chunks: 0, finish: null };
      for await (const chunk of stream) {
        out.streamed.chunks += 1;
        out.streamed.text += chunk.choices[0]?.delta?.content ?? "";
        out.streamed.finish = chunk.choices[0]?.finish_reason ?? out.streamed.finish;
      }
      const whole = await sdk("text").chat.completions.create({ model: "any", messages, max_tokens: 8 });
      out.whole = { object: whole.object, text: whole.choices[0].message.content,
                    finish: whole.choices[0].finish_reason, usage: whole.usage.total_tokens };
      const calls = await sdk("tools").chat.completions.create({
        model: "any", messages, tools, tool_choice: "required", stream: true, max_tokens: 64, seed: 3 });
      out.tools = { name: "", arguments: "", id: null, finish: null };
      for await (const chunk of calls) {
        for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) {
          out.tools.id ??= call.id ?? null;
          out.tools.name += call.function?.name ?? "";
          out.tools.arguments += call.function?.arguments ?? "";
        }
        out.tools.finish = chunk.choices[0]?.finish_reason ?? out.tools.finish;
      }
      out.models = (await sdk("text").models.list()).data.map((m) => m.id);
      // An abort mid-stream ends the SDK's iteration quietly (its documented behaviour), and no chunk
      // comes after it; an abort before the answer is the SDK's APIUserAbortError.
      const controller = new AbortController();
      const long = await sdk("stall").chat.completions.create(
        { model: "any", messages, stream: true, max_tokens: 400 }, { signal: controller.signal });
      out.abort = { chunks: 0, error: null, early: null };
      try {
        for await (const chunk of long) {
          out.abort.chunks += 1;
          if (out.abort.chunks === 2) controller.abort();
        }
      } catch (e) {
        out.abort.error = e.constructor.name;
      }
      const early = new AbortController();
      const pending = sdk("stall").chat.completions.create(
        { model: "any", messages, max_tokens: 400 }, { signal: early.signal });
      early.abort();
      try {
        await pending;
      } catch (e) {
        out.abort.early = e.constructor.name;
      }
      return out;
    };
    window.sdkFor = (fetch) => () =>
      new OpenAI({ baseURL: "https://llama-web.invalid/v1", apiKey: "unused", fetch, dangerouslyAllowBrowser: true, maxRetries: 0 });
    window.OpenAI = OpenAI;
  });
});
after(async () => {
  await browser?.close();
  await api?.close();
  pages?.close();
});

test("the openai package drives the local backend through client.fetch", { timeout: 300_000 }, async () => {
  const out = await page.evaluate(async (modelUrl) => {
    const client = await window.pkg.LlamaClient.create({ mode: "local", local: { modelUrl, contextSize: 4096, cache: false } });
    const out = await window.driveOpenAI(window.sdkFor(client.fetch));
    // After the abort the client goes on.
    const after = await window.sdkFor(client.fetch)().chat.completions.create(
      { model: "any", messages: [{ role: "user", content: "hi" }], max_tokens: 3, temperature: 0 });
    out.after = after.choices[0].finish_reason;
    client.dispose();
    return out;
  }, MODEL);
  assert.equal(out.streamed.finish === "length" || out.streamed.finish === "stop", true, JSON.stringify(out.streamed));
  assert.ok(out.streamed.chunks >= 3, JSON.stringify(out.streamed));
  assert.equal(out.whole.object, "chat.completion");
  assert.ok(out.whole.usage > 0);
  // The tiny model's free output is noise: the call is the grammar's doing.
  assert.equal(out.tools.name, "get_weather");
  assert.match(out.tools.id, /^call_/);
  assert.equal(out.tools.finish, "tool_calls");
  const args = JSON.parse(out.tools.arguments);
  assert.deepEqual(Object.keys(args), ["city"]);
  assert.ok(typeof args.city === "string" && [...args.city].length <= 10, out.tools.arguments);
  assert.deepEqual(out.models, ["tiny-llama31-random"]);
  assert.deepEqual(out.abort, { chunks: 2, error: null, early: "APIUserAbortError" });
  assert.equal(out.after, "length");
});

test("the same code drives the remote backend through client.fetch", { timeout: 120_000 }, async () => {
  const out = await page.evaluate(async (base) => {
    const clients = {};
    for (const name of ["ok", "tools", "stall"]) {
      clients[name] = await window.pkg.LlamaClient.create(
        { mode: "remote", remote: { baseUrl: `${base}${name}/v1`, apiKey: "secret", stallTimeoutSeconds: 30 } });
    }
    const kinds = { text: clients.ok, tools: clients.tools, stall: clients.stall };
    const out = await window.driveOpenAI((kind) => window.sdkFor(kinds[kind].fetch)());
    // An error from the endpoint reaches the SDK as an OpenAI-shaped HTTP error.
    const refused = await window.pkg.LlamaClient.create({ mode: "remote", remote: { baseUrl: `${base}401/v1`, apiKey: "bad" } });
    try {
      await window.sdkFor(refused.fetch)().chat.completions.create({ model: "any", messages: [{ role: "user", content: "x" }] });
      out.refused = "answered";
    } catch (e) {
      out.refused = { name: e.constructor.name, status: e.status, code: e.code };
    }
    return out;
  }, api.url);
  assert.equal(out.streamed.text, "You said: What is the weather in Paris?. Grüße 🦙");
  assert.equal(out.streamed.finish, "stop");
  assert.equal(out.whole.text, "You said: What is the weather in Paris?. Grüße 🦙");
  assert.equal(out.tools.finish, "tool_calls");
  assert.ok(out.tools.name.length > 0);
  JSON.parse(out.tools.arguments);
  assert.deepEqual(out.models, ["meta-llama/Meta-Llama-3.1-8B-Instruct"]);
  assert.deepEqual(out.abort, { chunks: 2, error: null, early: "APIUserAbortError" });
  assert.deepEqual(out.refused, { name: "AuthenticationError", status: 401, code: "auth" });
  // The server saw the stalled request go away (the abort reached the network).
  const stalled = api.requests.filter((r) => r.case === "stall");
  assert.equal(stalled.length, 1);
  assert.equal(stalled[0].closedEarly, true);
});
