// A small static server for the demo and the end-to-end tests, loopback only.
//   /          -> www/      (the page)
//   /pkg/      -> pkg/      (the npm package built by wasm-pack)
//   /models/   -> models/   (model files, served with HTTP Range support)
//   /fixtures/ -> tests/fixtures/ (the tiny test models, for the bench page's e2e test)
//   /node_modules/openai/ -> the official `openai` package's ESM build (a dev dependency), which the
//              e2e tests drive through `client.fetch`
// Files carry an ETag and Last-Modified and `Cache-Control: no-store` (the browser's HTTP cache must
// not stand in for the model store). Tests read the request log and inject faults (startServer's doc).
// Usage: node scripts/serve.mjs [--port 8080]     (also importable: startServer)
import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));

const MOUNTS = [
  ["/pkg/", join(repoRoot, "pkg")],
  ["/models/", join(repoRoot, "models")],
  ["/fixtures/", join(repoRoot, "tests", "fixtures")],
  ["/node_modules/openai/", join(repoRoot, "node_modules", "openai")],
  ["/", join(repoRoot, "www")],
];

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Maps a URL path to a file under one of the mounts, or null if it escapes them. */
function resolvePath(urlPath, mounts) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  for (const [prefix, dir] of mounts) {
    if (!decoded.startsWith(prefix)) continue;
    let rel = decoded.slice(prefix.length);
    if (rel === "" || rel.endsWith("/")) rel += "index.html";
    const file = normalize(join(dir, rel));
    return file === dir || file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

/** Parses a single `bytes=a-b` range against a file size; null when absent, "bad" when unsatisfiable. */
function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "bad";
  let start, end;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start <= end && start < size ? { start, end } : "bad";
}

/** Whether a fault applies to this request path: `fault.path` is a prefix of it. */
const hits = (fault, path) => fault != null && path.startsWith(fault.path);

async function handle(req, res, mounts, log, faults) {
  const url = new URL(req.url, "http://127.0.0.1");
  const file = resolvePath(url.pathname, mounts);
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD" }).end();
    return;
  }
  let info;
  try {
    info = file && (await stat(file));
  } catch {
    info = null;
  }
  if (!info || !info.isFile()) {
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    return;
  }
  // A file's version: another size or modification time is another ETag (`changeEtagAfter` fakes one).
  const change = faults.changeEtagAfter;
  const changed = hits(change, url.pathname) && (change.seen = (change.seen ?? 0) + 1) > change.requests;
  const headers = {
    "Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
    "Accept-Ranges": "bytes",
    "Cache-Control": "no-store",
    ETag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}${changed ? "-new" : ""}"`,
    "Last-Modified": info.mtime.toUTCString(),
  };
  const range = parseRange(req.headers.range, info.size);
  log.push({ path: url.pathname, range: req.headers.range ?? null });
  if (range === "bad") {
    res.writeHead(416, { "Content-Range": `bytes */${info.size}` }).end();
    return;
  }
  // `rangeRunsOn`: a range of the path is answered from its start to the file's end, as sirv (Vite's dev
  // server) answers `bytes=0-0`.
  if (range && hits(faults.rangeRunsOn, url.pathname)) range.end = info.size - 1;
  const { start, end } = range ?? { start: 0, end: info.size - 1 };
  headers["Content-Length"] = info.size === 0 ? 0 : end - start + 1;
  if (range) headers["Content-Range"] = `bytes ${start}-${end}/${info.size}`;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === "HEAD" || info.size === 0) {
    res.end();
    return;
  }
  // `stallOnce`: the next answer for the path longer than that sends that many bytes, then nothing more while the
  // connection stays open (a stalled download); the fault then clears itself.
  const stall = faults.stallOnce;
  if (hits(stall, url.pathname) && end - start + 1 > stall.bytes) {
    faults.stallOnce = null;
    res.write(await readFile(file).then((b) => b.subarray(start, Math.min(end + 1, start + stall.bytes))));
    return;
  }
  // `cutAfterBytes`: the server sends that many bytes of the path in all, then drops connections.
  const cut = faults.cutAfterBytes;
  if (!hits(cut, url.pathname)) {
    createReadStream(file, { start, end }).pipe(res);
    return;
  }
  const budget = cut.bytes - (cut.sent ?? 0);
  const send = Math.max(0, Math.min(end - start + 1, budget));
  cut.sent = (cut.sent ?? 0) + send;
  if (send === 0) {
    res.destroy();
    return;
  }
  const stream = createReadStream(file, { start, end: start + send - 1 });
  stream.pipe(res, { end: false });
  stream.on("end", () => (send === end - start + 1 ? res.end() : res.destroy()));
}

/**
 * Starts the server on 127.0.0.1; resolves to { url, close(), requests, faults }. Port 0 picks a free port.
 * `mounts`: more [url prefix, directory] pairs, tried before the standard ones.
 * `requests`: every file request so far, { path, range } (clear it with `requests.length = 0`).
 * `faults` (set its fields to inject, null them to stop):
 *   cutAfterBytes   { path, bytes }     after `bytes` of files under `path`, connections are dropped
 *   changeEtagAfter { path, requests }  after that many requests under `path`, the ETag says another version
 *   stallOnce       { path, bytes }     the next answer under `path` sends `bytes`, then stalls (open, silent)
 *   rangeRunsOn     { path }            a range under `path` is answered up to the file's end (sirv's bytes=0-0)
 */
export function startServer({ port = 8080, host = "127.0.0.1", mounts = [] } = {}) {
  const all = [...mounts.map(([prefix, dir]) => [prefix, resolve(dir)]), ...MOUNTS];
  const requests = [];
  const faults = { cutAfterBytes: null, changeEtagAfter: null, stallOnce: null, rangeRunsOn: null };
  const server = createServer((req, res) => {
    handle(req, res, all, requests, faults).catch((err) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy(err);
    });
  });
  return new Promise((resolveStart, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolveStart({
        url: `http://${host}:${actual}/`,
        close: () => new Promise((r) => server.close(r)),
        requests,
        faults,
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : 8080;
  startServer({ port }).then(
    ({ url }) => console.log(`llama-web demo: ${url}  (Ctrl-C to stop)`),
    (err) => {
      console.error(`llama-web: cannot serve on port ${port}: ${err.message}`);
      process.exit(1);
    },
  );
}
