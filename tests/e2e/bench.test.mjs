// End-to-end: the bench page in headless Chromium (SwiftShader WebGPU) reports the same JSON
// as `llama-web bench`, here for the tiny Q4_0 test model. Needs pkg/ built (dev.sh test does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"];

let server;
before(async () => { server = await startServer({ port: 0 }); });
after(async () => server?.close());

test("the bench page measures the tiny model on WebGPU", { timeout: 300_000 }, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const model = "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf";
    // The 8-bit KV cache: its kernels compile to WGSL and run on SwiftShader too.
    await page.goto(`${server.url}bench.html?model=${model}&prompt=12&gen=6&kv=q8`);
    await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 240_000 });
    const state = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
    assert.equal(state[0], "done", state[1]);
    const report = JSON.parse(await page.$eval("#report", (el) => el.textContent));
    assert.equal(report.prompt_len, 12);
    assert.equal(report.gen, 6);
    assert.equal(report.kv_format, "q8");
    assert.equal(report.decode_graphs, true, "decode steps replayed by default");
    assert.equal(report.arithmetic, "f32", "f32 arithmetic by default");
    assert.equal(report.context, 18);
    for (const key of ["prefill_tok_s", "decode_tok_s", "effective_gb_s", "read_bandwidth_gb_s", "roofline_fraction"]) {
      assert.ok(Number.isFinite(report[key]) && report[key] > 0, `${key}: ${report[key]}`);
    }
    // The same fused decode step in the browser as natively (tests/dispatch_count.rs): 5 launches
    // per block (2 blocks; attention over 18 keys is one segment, RoPE and the cache store folded
    // in) + the head + the greedy choice, one submission, the chosen id read back.
    assert.equal(report.dispatches_per_token, 12);
    assert.ok(report.warmup_s > 0, `warmup_s ${report.warmup_s}`);
    assert.equal(report.host_ms_per_token, null, "no per-thread CPU clock in the browser");
    assert.equal(report.submits_per_token, 1);
    assert.equal(report.readback_bytes_per_token, 4);
    // The tiny Q4_0 model's GPU weights: 16 Q4_0 matrices in their file bytes plus f32 norms.
    assert.ok(report.weight_bytes_per_token > 50_000 && report.weight_bytes_per_token < 120_000,
      `weight_bytes_per_token ${report.weight_bytes_per_token}`);
    assert.ok(report.device.length > 0);
    assert.equal(report.stages, null, "no stage table unless asked for");

    // graphs=0: the same step launched kernel by kernel, counted the same; stages=1 with it.
    await page.goto(`${server.url}bench.html?model=${model}&prompt=12&gen=6&kv=q8&graphs=0&stages=1`);
    await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 240_000 });
    const launched = JSON.parse(await page.$eval("#report", (el) => el.textContent));
    assert.equal(launched.decode_graphs, false);
    assert.equal(launched.dispatches_per_token, 12);
    assert.equal(launched.readback_bytes_per_token, 4);
    // The step stage by stage, as `llama-web bench --stages` reports it: every launch but the
    // greedy choice's, in the step's order.
    assert.deepEqual(launched.stages.map((s) => s.stage), ["qkv", "attention", "output", "gate_up", "down", "head"]);
    assert.deepEqual(launched.stages.map((s) => s.launches_per_token), [2, 2, 2, 2, 2, 1]);
    for (const s of launched.stages) assert.ok(Number.isFinite(s.ms_per_token), `${s.stage}: ${s.ms_per_token}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
