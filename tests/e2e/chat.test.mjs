// End-to-end: the chat page (www/index.html) driven like a person would, in headless Chromium:
// remote mode against the loopback OpenAI-compatible server, local mode with SmolLM2 on SwiftShader
// WebGPU (the network log must show nothing but the page, the package and the model file), and auto
// mode in a browser without WebGPU. Screenshots go to tests/e2e/screenshots/ (not committed).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";
import { startOpenAiServer } from "../openai-server.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BASE_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];
const WEBGPU = [...BASE_ARGS, "--enable-unsafe-webgpu"];
const SHOTS = new URL("./screenshots/", import.meta.url);

let pages, api;
before(async () => {
  pages = await startServer({ port: 0 });
  api = await startOpenAiServer({ port: 0 });
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  await api?.close();
  pages?.close();
});

/** A fresh browser (empty storage) on the chat page; `requests` collects every URL it fetches. */
async function openChat(args) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(pages.url);
  await page.waitForSelector('#status[data-state="idle"]', { timeout: 60_000 });
  return { browser, page, requests, errors };
}

/** Fills the settings and connects; `whileLoading(page)` runs as soon as the load has begun. */
async function connect(page, settings, { timeout = 30_000, whileLoading = null } = {}) {
  for (const [id, value] of Object.entries(settings)) {
    if (id === "mode") await page.selectOption("#mode", value);
    else if (typeof value === "boolean") await page.setChecked(`#${id}`, value);
    else await page.fill(`#${id}`, String(value));
  }
  await page.click("#connect");
  if (whileLoading) await whileLoading(page);
  await page.waitForSelector('#status:not([data-state="loading"]):not([data-state="idle"]):not([data-state="starting"])', { timeout });
}

/** Sends `text`; returns the successive texts the reply's bubble showed (more than one: streamed). */
async function ask(page, text, timeout = 30_000) {
  await page.evaluate(() => {
    window.replyTexts = [];
    new MutationObserver(() => {
      const reply = document.querySelector(".message.assistant:last-child");
      const t = reply?.textContent ?? "";
      if (t && t !== window.replyTexts.at(-1)) window.replyTexts.push(t);
    }).observe(document.getElementById("messages"), { childList: true, subtree: true, characterData: true });
  });
  await page.fill("#prompt", text);
  await page.click("#send");
  await page.waitForSelector('#status[data-state="generating"]', { timeout: 10_000 }).catch(() => {});
  await page.waitForSelector('#status:not([data-state="generating"])', { timeout });
  return page.evaluate(() => window.replyTexts);
}

const status = (page) => page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
const bubbles = (page) => page.$$eval(".message", (els) => els.map((el) => [el.className, el.textContent]));

test("remote mode: a typed question gets a streamed reply; the conversation survives a reload, the token does not",
  { timeout: 120_000 }, async () => {
    const { browser, page, errors } = await openChat(BASE_ARGS);
    try {
      await connect(page, { mode: "remote", endpoint: `${api.url}ok/v1`, token: "secret-token" });
      assert.deepEqual(await status(page), ["ready", "Connected. Ask away."]);
      assert.equal(await page.textContent("#backend"), "remote");
      const texts = await ask(page, "hello");
      assert.ok(texts.length >= 3, `streamed: ${JSON.stringify(texts)}`);
      assert.equal((await status(page))[0], "ready");
      assert.deepEqual(await bubbles(page), [["message user", "hello"], ["message assistant", "You said: hello. Grüße 🦙"]]);
      assert.match(await page.textContent("#speed"), /^6 tokens · [\d.]+ tok\/s · first after [\d.]+ s$/);
      assert.equal(await page.isVisible("#progress-box"), false, "no model to load remotely");
      await page.screenshot({ path: new URL("chat-remote.png", SHOTS).pathname, fullPage: true });

      const stored = await page.evaluate(() => JSON.stringify(localStorage));
      assert.ok(!stored.includes("secret-token"), "the token must never be stored");
      await page.reload();
      await page.waitForSelector('#status[data-state="idle"]', { timeout: 60_000 });
      await page.waitForSelector(".message.assistant");
      assert.equal((await bubbles(page)).length, 2, "the conversation is kept");
      assert.equal(await page.inputValue("#token"), "");
      assert.equal(await page.inputValue("#endpoint"), `${api.url}ok/v1`, "settings are kept");

      // A refused token is explained in words.
      await connect(page, { mode: "remote", endpoint: `${api.url}401/v1`, token: "wrong" });
      await ask(page, "hello again");
      const [state, text] = await status(page);
      assert.equal(state, "error");
      assert.match(text, /refused the token/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

test("local mode: SmolLM2 answers on SwiftShader WebGPU, and nothing but the page, the package and the model is fetched",
  { timeout: 600_000 }, async () => {
    const { browser, page, requests, errors } = await openChat(WEBGPU);
    try {
      // Every text the progress line shows while loading (an observer: polling could miss them).
      await page.evaluate(() => {
        window.progressTexts = [];
        new MutationObserver(() => window.progressTexts.push(document.getElementById("progress-text").textContent))
          .observe(document.getElementById("progress-text"), { childList: true, characterData: true, subtree: true });
      });
      await connect(page, {
        mode: "local", "model-url": "/models/SmolLM2-135M-Instruct.Q4_1.gguf", temperature: 0, "max-tokens": 4,
      }, {
        timeout: 300_000,
        whileLoading: async (p) => {
          // Best effort: a picture of the progress bar (the load may finish before it is taken).
          await p.waitForFunction(() => / s left$/.test(document.getElementById("progress-text").textContent),
            null, { timeout: 60_000 })
            .then(() => p.screenshot({ path: new URL("chat-local-loading.png", SHOTS).pathname, fullPage: true }))
            .catch(() => {});
        },
      });
      const progress = await page.evaluate(() => window.progressTexts);
      assert.ok(progress.some((t) => /^[\d.]+ of 98\.4 MB, about \d+ s left$/.test(t)), JSON.stringify(progress.slice(0, 5)));
      assert.equal(progress.at(-1), "98.4 MB loaded; preparing the GPU kernels…");
      assert.deepEqual(await status(page), ["ready", "The model is loaded on your GPU. Ask away."]);
      assert.equal(await page.isVisible("#progress-box"), false, "the progress bar goes once loaded");
      assert.equal(await page.textContent("#backend"), "local · WebGPU");
      const texts = await ask(page, "What is the capital of France?", 300_000);
      assert.ok(texts.length >= 2, `streamed: ${JSON.stringify(texts)}`);
      const [state, text] = await status(page);
      assert.equal(state, "ready", text);
      const reply = (await bubbles(page)).at(-1);
      assert.equal(reply[0], "message assistant");
      // SmolLM2's greedy answer (HF and our engine agree) begins "The capital of France is Paris."
      assert.match(reply[1], /^The capital of/);
      await page.screenshot({ path: new URL("chat-local.png", SHOTS).pathname, fullPage: true });

      const origin = new URL(pages.url).origin;
      const allowed = (url) => url.startsWith("data:") || [
        /^\/$/, /^\/(chat\.js|style\.css)$/, /^\/pkg\//, /^\/models\/SmolLM2-135M-Instruct\.Q4_1\.gguf$/,
      ].some((re) => url.startsWith(origin) && re.test(new URL(url).pathname));
      assert.deepEqual(requests.filter((url) => !allowed(url)), []);
      assert.ok(requests.some((url) => url.includes("/models/")), "the model was fetched");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

test("hybrid start: the first question is answered remotely while the model loads, a later one locally",
  { timeout: 300_000 }, async () => {
    const { browser, page, errors } = await openChat(WEBGPU);
    try {
      await connect(page, {
        mode: "auto", "model-url": "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf", hybrid: true,
        endpoint: `${api.url}ok/v1`, token: "t", "max-tokens": 4,
      });
      assert.equal(await page.textContent("#backend"), "remote");
      assert.match(await page.textContent("#reason"), /the local model is loading \(hybrid start\)/);
      await ask(page, "hello");
      const remote = await page.$eval(".message.assistant:last-child", (el) => [el.dataset.backend, el.textContent]);
      assert.deepEqual(remote, ["remote", "You said: hello. Grüße 🦙"]);
      await page.waitForSelector('#backend[data-backend="local"]', { timeout: 240_000 });
      assert.equal(await page.textContent("#backend"), "local · WebGPU");
      await ask(page, "hello", 120_000);
      const local = await page.$eval(".message.assistant:last-child", (el) => [el.dataset.backend, el.textContent]);
      assert.equal(local[0], "local");
      assert.notEqual(local[1], remote[1]);
      await page.screenshot({ path: new URL("chat-hybrid.png", SHOTS).pathname, fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

test("auto mode without WebGPU answers remotely and the page says why", { timeout: 120_000 }, async () => {
  const { browser, page, errors } = await openChat(BASE_ARGS);
  try {
    await connect(page, { mode: "auto", endpoint: `${api.url}ok/v1`, token: "t" });
    assert.equal((await status(page))[0], "ready");
    assert.equal(await page.textContent("#backend"), "remote");
    const reason = await page.textContent("#reason");
    assert.match(reason, /^Answering remotely because no WebGPU: /);
    await ask(page, "hello");
    assert.equal((await bubbles(page)).at(-1)[1], "You said: hello. Grüße 🦙");
    await page.screenshot({ path: new URL("chat-auto-no-webgpu.png", SHOTS).pathname, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
