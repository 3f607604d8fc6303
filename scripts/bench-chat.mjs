// What a person meets on the chat page (www/index.html) in local mode, in headless Chromium
// (WebGPU on SwiftShader here): the load, then the same one-line question asked twice in one
// conversation — the first pays for compiling the kernels, the second does not — each timed from
// the click on Send to the first token on the screen and to the end of the reply. Prints one JSON
// object. Then the page is reloaded and connects again: that load reads the model from the browser's
// store (OPFS) instead of the network (`reload_load_s`). Uses whatever pkg/ holds (`scripts/dev.sh build` for release, `build dev` for dev).
// Usage: node scripts/bench-chat.mjs [model-url] [max-tokens] [temperature: 0 (greedy, default) | the page's 0.7 …]
import { withBrowser } from "./page-report.mjs";

const [model = "/models/SmolLM2-135M-Instruct.Q4_1.gguf", maxTokens = "16", temperature = "0"] = process.argv.slice(2);
const QUESTION = "What is the capital of France?";

await withBrowser(async ({ server, browser }) => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#status[data-state="idle"]', { timeout: 60_000 });
  await page.selectOption("#mode", "local");
  await page.fill("#model-url", model);
  await page.fill("#temperature", temperature);
  await page.fill("#max-tokens", maxTokens);
  const loadS = await timeLoad(page);

  const asks = [];
  for (let i = 0; i < 2; i++) asks.push(await timeQuestion(page));
  const speedBadge = await page.textContent("#speed");
  server.requests.length = 0;
  await page.reload();
  await page.waitForSelector('#status[data-state="idle"]', { timeout: 60_000 });
  const reloadLoadS = await timeLoad(page);
  const modelRequests = server.requests.filter((r) => r.path === model).map((r) => r.range);
  console.log(JSON.stringify({
    model, question: QUESTION, max_tokens: Number(maxTokens), temperature: Number(temperature), load_s: loadS,
    first_question: asks[0], second_question: asks[1], speed_badge: speedBadge,
    reload_load_s: reloadLoadS, reload_model_requests: modelRequests,
  }, null, 2));
});

/** Clicks Connect; seconds until the page is ready. */
async function timeLoad(page) {
  const loadStart = Date.now();
  await page.click("#connect");
  await page.waitForSelector('#status:not([data-state="loading"]):not([data-state="idle"]):not([data-state="starting"])',
    { timeout: 600_000 });
  const [state, text] = await page.$eval("#status", (el) => [el.dataset.state, el.textContent]);
  if (state !== "ready") throw new Error(`the model did not load: ${text}`);
  return (Date.now() - loadStart) / 1000;
}

/** Asks QUESTION; seconds to the reply's first text and to its end, and the reply. */
async function timeQuestion(page) {
  await page.evaluate(() => {
    const replies = () => document.querySelectorAll(".message.assistant").length;
    const before = replies();
    window.firstTextAt = null;
    const observer = new MutationObserver(() => {
      const reply = document.querySelector(".message.assistant:last-child");
      if (replies() > before && reply?.textContent && window.firstTextAt === null) {
        window.firstTextAt = performance.now();
        observer.disconnect();
      }
    });
    observer.observe(document.getElementById("messages"), { childList: true, subtree: true, characterData: true });
  });
  await page.fill("#prompt", QUESTION);
  const sentAt = await page.evaluate(() => performance.now());
  await page.click("#send");
  await page.waitForSelector('#status[data-state="generating"]', { timeout: 10_000 }).catch(() => {});
  await page.waitForSelector('#status:not([data-state="generating"])', { timeout: 600_000 });
  const [doneAt, firstAt, reply, state] = await page.evaluate(() => [performance.now(), window.firstTextAt,
    document.querySelector(".message.assistant:last-child")?.textContent, document.getElementById("status").dataset.state]);
  if (state !== "ready" || firstAt === null) throw new Error(`no reply (status ${state})`);
  return { first_token_s: (firstAt - sentAt) / 1000, reply_s: (doneAt - sentAt) / 1000, reply };
}
