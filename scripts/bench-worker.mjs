// The engine's Web Worker against the page's thread, side by side in one headless Chromium (WebGPU on
// SwiftShader here): the same model loaded and the same question answered with `local.worker` true and false,
// in the order worker, page, page, worker (so neither side always goes first). For each run: the load's
// seconds, the first token's seconds after create() returned, decode tok/s, and the main thread's long tasks
// (PerformanceObserver `longtask`: tasks over 50 ms, their count and the longest). Prints one JSON object.
// Uses whatever pkg/ holds (`scripts/dev.sh build` for release, `build dev` for dev).
// Usage: node scripts/bench-worker.mjs [model-url] [max-tokens]
import { withBrowser } from "./page-report.mjs";

const [model = "/models/SmolLM2-135M-Instruct.Q4_1.gguf", maxTokens = "32"] = process.argv.slice(2);
const QUESTION = "Write a short poem about the sea.";

await withBrowser(async ({ server, browser }) => {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench.html?model=none`);
  await page.evaluate(async () => {
    const pkg = await import("/pkg/llama_web.js");
    await pkg.default();
    window.pkg = pkg;
  });
  const runs = [];
  for (const worker of [true, false, false, true]) {
    runs.push(await page.evaluate(async ({ modelUrl, worker, question, maxTokens }) => {
      const longTasks = [];
      const observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) longTasks.push(e.duration);
      });
      observer.observe({ type: "longtask" });
      const t0 = performance.now();
      const client = await window.pkg.LlamaClient.create({
        mode: "local", local: { modelUrl, worker, cache: false, contextSize: 512 },
      });
      const t1 = performance.now();
      const stream = await client.chat.completions.create({
        messages: [{ role: "user", content: question }], stream: true, max_tokens: maxTokens, temperature: 0,
      });
      let first = null;
      let tokens = 0;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) {
          tokens += 1;
          first ??= performance.now();
        }
      }
      const t2 = performance.now();
      await new Promise((r) => setTimeout(r, 200));
      observer.disconnect();
      client.dispose();
      return {
        worker, load_s: (t1 - t0) / 1000, first_token_s: (first - t1) / 1000,
        decode_tok_s: (tokens - 1) / ((t2 - first) / 1000), content_chunks: tokens,
        long_tasks: longTasks.length, longest_task_ms: Math.round(Math.max(0, ...longTasks)),
      };
    }, { modelUrl: model, worker, question: QUESTION, maxTokens: Number(maxTokens) }));
  }
  const mean = (worker, key) => {
    const xs = runs.filter((r) => r.worker === worker).map((r) => r[key]);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  console.log(JSON.stringify({
    model, question: QUESTION, max_tokens: Number(maxTokens), runs,
    worker_over_page: {
      load: mean(true, "load_s") / mean(false, "load_s"),
      first_token: mean(true, "first_token_s") / mean(false, "first_token_s"),
      decode: mean(true, "decode_tok_s") / mean(false, "decode_tok_s"),
    },
  }, null, 2));
});
