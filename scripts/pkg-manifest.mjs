// Completes pkg/ as an npm package after wasm-pack: the manifest (ESM `exports` with types, the worker
// entry and the wasm file, `files`, `sideEffects`), the engine's worker beside the glue and the README
// for npm users (npm/README.md; the repository's README is for developers).
// Usage: node scripts/pkg-manifest.mjs [PKG_DIR]   (default pkg/)
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? "pkg";
const path = join(dir, "package.json");
const built = JSON.parse(readFileSync(path, "utf8"));
copyFileSync("src/wasm/worker/llama_web_worker.js", join(dir, "llama_web_worker.js"));
copyFileSync("npm/README.md", join(dir, "README.md"));

const manifest = {
  name: built.name,
  version: built.version,
  description: built.description,
  license: built.license,
  repository: built.repository,
  keywords: ["llama", "llm", "webgpu", "wasm", "openai", "chat-completions", "gguf", "inference"],
  type: "module",
  main: "./llama_web.js",
  module: "./llama_web.js",
  types: "./llama_web.d.ts",
  exports: {
    ".": { types: "./llama_web.d.ts", default: "./llama_web.js" },
    // The files the glue and the worker load by URL, for bundlers and servers that copy them by name.
    "./llama_web_bg.wasm": "./llama_web_bg.wasm",
    "./llama_web_worker.js": "./llama_web_worker.js",
    "./package.json": "./package.json",
  },
  files: [
    "llama_web.js",
    "llama_web.d.ts",
    "llama_web_bg.wasm",
    "llama_web_bg.wasm.d.ts",
    "llama_web_worker.js",
    "snippets/",
    "LICENSE-MIT",
    "LICENSE-APACHE",
  ],
  // The snippets are imported by the glue for their exports only; the worker entry runs on import.
  sideEffects: ["./llama_web_worker.js"],
};
writeFileSync(path, JSON.stringify(manifest, null, 2) + "\n");
