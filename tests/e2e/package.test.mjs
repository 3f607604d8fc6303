// End-to-end: the npm package as users get it. `npm pack` of pkg/ holds only what a page needs and
// `npm publish --dry-run` accepts it; the tarball, installed into a fresh app, type-checks a strict
// TypeScript consumer (and refuses a wrong one); the same app built by Vite and by webpack, and served as
// plain modules with an import map, answers in Chromium — locally (the tiny model, in the engine's
// worker) and from the loopback OpenAI-compatible server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { createServer as createViteServer } from "vite";
import webpack from "webpack";
import { startServer } from "../../scripts/serve.mjs";
import { startOpenAiServer } from "../openai-server.mjs";

const REPO = resolve(import.meta.dirname, "../..");
const BIN = join(REPO, "node_modules", ".bin");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"];
const MODEL = "/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf";

/** Runs a command; resolves with its output, or rejects with it (stdout and stderr) in the message. */
async function run(command, args, cwd) {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { cwd, maxBuffer: 64 << 20 });
    return stdout + stderr;
  } catch (e) {
    e.message += `\n${e.stdout ?? ""}${e.stderr ?? ""}`;
    throw e;
  }
}

/** Builds the consumer app with webpack 5 (production, no loaders or plugins: the package must need none). */
async function bundleWithWebpack(app, outDir) {
  const compiler = webpack({
    mode: "production",
    context: app,
    entry: "./main.js",
    output: { path: outDir, filename: "main.js", publicPath: "auto" },
    performance: { hints: false },
  });
  const stats = await promisify(compiler.run.bind(compiler))();
  await promisify(compiler.close.bind(compiler))();
  assert.ok(!stats.hasErrors() && !stats.hasWarnings(), stats.toString({ all: false, errors: true, warnings: true }));
  // webpack found the module's .wasm and the engine's worker by their `new URL(…, import.meta.url)`.
  const assets = stats.toJson({ all: false, assets: true }).assets.map((a) => a.name);
  assert.equal(assets.filter((name) => name.endsWith(".wasm")).length, 1, `${assets}`);
  assert.ok(assets.filter((name) => name.endsWith(".js")).length >= 2, `a worker chunk beside main.js: ${assets}`);
  cpSync(join(app, "webpack.html"), join(outDir, "webpack.html"));
}

let work, packed, app, pages, viteDev, api, browser;
before(async () => {
  work = mkdtempSync(join(tmpdir(), "llama-web-package-"));
  [packed] = JSON.parse(await run("npm", ["pack", join(REPO, "pkg"), "--pack-destination", work, "--json"], work));
  app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer-app", private: true, type: "module" }));
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock",
    join(work, packed.filename)], app);
  cpSync(join(REPO, "tests", "e2e", "consumer"), app, { recursive: true });
  await run(process.execPath, [join(REPO, "node_modules", "vite", "bin", "vite.js"), "build",
    "--base", "/vite/", "--outDir", join(work, "dist"), "--logLevel", "warn"], app);
  await bundleWithWebpack(app, join(work, "webpack"));
  pages = await startServer({ port: 0, mounts: [
    ["/vite/", join(work, "dist")],
    ["/webpack/", join(work, "webpack")],
    ["/llama-web/", join(app, "node_modules", "llama-web")],
    ["/app/", app],
  ] });
  // Vite's dev server as an app developer runs it: dependencies pre-bundled, no configuration.
  // (publicDir: the test models at /fixtures/, where the other apps' server has them.)
  viteDev = await createViteServer({ root: app, publicDir: join(REPO, "tests"), logLevel: "warn",
    server: { port: 0, host: "127.0.0.1" } });
  await viteDev.listen();
  api = await startOpenAiServer({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
after(async () => {
  await browser?.close();
  await api?.close();
  await viteDev?.close();
  pages?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("npm pack holds the page's files and nothing else; npm publish --dry-run accepts it", async () => {
  const files = packed.files.map((f) => f.path).sort();
  const snippets = files.filter((f) => f.startsWith("snippets/"));
  assert.deepEqual(files.filter((f) => !f.startsWith("snippets/")), ["LICENSE-APACHE", "LICENSE-MIT", "README.md",
    "llama_web.d.ts", "llama_web.js", "llama_web_bg.wasm", "llama_web_bg.wasm.d.ts", "llama_web_worker.js",
    "package.json"]);
  // Every snippet is one the glue imports, and the glue imports no other.
  const glue = readFileSync(join(REPO, "pkg", "llama_web.js"), "utf8");
  const imported = [...glue.matchAll(/from '\.\/(snippets\/[^']+)'/g)].map((m) => m[1]).sort();
  assert.deepEqual(snippets, [...new Set(imported)]);
  const manifest = JSON.parse(readFileSync(join(app, "node_modules", "llama-web", "package.json"), "utf8"));
  assert.deepEqual(manifest.exports["."], { types: "./llama_web.d.ts", default: "./llama_web.js" });
  for (const target of Object.values(manifest.exports).flatMap((e) => typeof e === "string" ? [e] : Object.values(e))) {
    assert.ok(files.includes(target.slice(2)), `exports names ${target}, which the tarball lacks`);
  }
  assert.match(readFileSync(join(app, "node_modules", "llama-web", "README.md"), "utf8"), /npm install llama-web/);
  const dryRun = await run("npm", ["publish", "--dry-run", join(work, packed.filename)], work);
  assert.match(dryRun, /\+ llama-web@\d+\.\d+\.\d+/);
});

test("TypeScript: a strict consumer of every option and both answer shapes type-checks; misuse does not", async () => {
  const config = (file) => {
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext",
        moduleResolution: "bundler", lib: ["es2022", "dom", "dom.iterable", "esnext.disposable"], skipLibCheck: false },
      files: [file],
    }));
  };
  config("typed.ts");
  await run(join(BIN, "tsc"), ["-p", "tsconfig.json"], app);
  config("misuse.ts");
  const refused = await run(join(BIN, "tsc"), ["-p", "tsconfig.json"], app).then(() => "", (e) => e.message);
  const errors = [...refused.matchAll(/misuse\.ts\((\d+),\d+\): error/g)].map((m) => Number(m[1]));
  assert.deepEqual(errors, [7, 9, 10], refused);
});

/** Loads `url` (absolute) in a fresh page, waits for the consumer app, and answers with `options`.
 * Vite's dev server reloads the page once when its first visit makes it optimize a dependency it
 * had not found up front (as it does for an app developer); the answer is then asked again of the
 * reloaded page, with what the first page saw forgotten. */
async function answer(url, options) {
  const page = await browser.newPage();
  let workers = [], warnings = [];
  page.on("worker", (w) => workers.push(w.url()));
  page.on("console", (m) => m.type() === "warning" && warnings.push(m.text()));
  page.on("pageerror", (e) => console.error("page error:", e.message));
  try {
    await page.goto(url);
    for (let reloaded = false; ; reloaded = true) {
      try {
        await page.waitForSelector("body[data-ready=yes]", { state: "attached" });
        const out = await page.evaluate((options) => window.consumer.answer(options), options);
        return { ...out, workers, warnings };
      } catch (e) {
        if (reloaded || !/Execution context was destroyed/.test(e.message)) throw e;
        await page.waitForLoadState("load");
        workers = [];
        warnings = [];
      }
    }
  } finally {
    await page.close();
  }
}

for (const [name, page] of [["the Vite app", () => `${pages.url}vite/index.html`],
  ["the Vite dev server's app", () => viteDev.resolvedUrls.local[0]],
  ["the webpack app", () => `${pages.url}webpack/webpack.html`],
  ["the plain-module app", () => `${pages.url}app/plain.html`]]) {
  test(`${name} answers from the packed package: locally in the engine's worker, and remotely`, { timeout: 300_000 }, async () => {
    const url = page();
    const local = await answer(url, { mode: "local", local: { modelUrl: MODEL, cache: false, contextSize: 256 } });
    assert.equal(local.backend, "local");
    assert.equal(local.streamed, local.whole, "greedy: the streamed answer is the whole one");
    assert.ok(local.whole.length > 0);
    assert.equal(local.workers.length, 1, `one engine worker: ${local.workers}`);
    assert.deepEqual(local.warnings, [], "no fallback to the page's thread");
    const remote = await answer(url, { mode: "remote", remote: { baseUrl: `${api.url}ok/v1`, apiKey: "k" } });
    assert.equal(remote.backend, "remote");
    assert.match(remote.streamed, /^You said: Hello from a packaged app/);
    assert.equal(remote.whole, remote.streamed);
  });
}
