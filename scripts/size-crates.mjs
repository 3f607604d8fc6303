// Where the wasm's bytes go, crate by crate: each function body is attributed to the crate its
// (mangled-then-demangled) name starts with, from the module's name section; each group's bodies are
// gzipped together (-9), so the table shows what a crate costs over the wire, not only raw. Needs a
// module that still has its name section: the release build keeps one in
// target/llama_web_bg.unoptimized.wasm (wasm-opt drops it), a dev build keeps it in pkg/.
// Usage: node scripts/size-crates.mjs [WASM] [ROWS]   (default target/llama_web_bg.unoptimized.wasm, 40)
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const [path = "target/llama_web_bg.unoptimized.wasm", rows = "40"] = process.argv.slice(2);
const bytes = readFileSync(path);

/** An unsigned LEB128 at `pos`: [value, next position]. */
function leb(pos) {
  let value = 0, shift = 0, byte;
  do {
    byte = bytes[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, pos];
}
/** A length-prefixed UTF-8 name at `pos`: [text, next position]. */
function name(pos) {
  const [len, start] = leb(pos);
  return [bytes.toString("utf8", start, start + len), start + len];
}

// The sections: imported functions (they come first in the function index space), the bodies, the
// data segments and the function names.
let importedFunctions = 0, bodies = [], data = [], names = new Map(), nameBytes = 0, other = 0;
for (let pos = 8; pos < bytes.length;) {
  const id = bytes[pos];
  const [size, start] = leb(pos + 1);
  const end = start + size;
  if (id === 2) {
    let [count, p] = leb(start);
    for (let i = 0; i < count; i++) {
      [, p] = name(p);
      [, p] = name(p);
      const kind = bytes[p++];
      if (kind === 0) { importedFunctions++; [, p] = leb(p); }
      else if (kind === 1) { p += 1; const flags = bytes[p++]; [, p] = leb(p); if (flags & 1) [, p] = leb(p); }
      else if (kind === 2) { const flags = bytes[p++]; [, p] = leb(p); if (flags & 1) [, p] = leb(p); }
      else if (kind === 3) p += 2;
      else if (kind === 4) p += 2;
    }
    other += size;
  } else if (id === 10) {
    let [count, p] = leb(start);
    for (let i = 0; i < count; i++) {
      const [len, body] = leb(p);
      bodies.push(bytes.subarray(body, body + len));
      p = body + len;
    }
  } else if (id === 11) {
    data.push(bytes.subarray(start, end));
  } else if (id === 0 && name(start)[0] === "name") {
    nameBytes += size;
    let p = name(start)[1];
    while (p < end) {
      const kind = bytes[p];
      const [len, sub] = leb(p + 1);
      if (kind === 1) {
        let [count, q] = leb(sub);
        for (let i = 0; i < count; i++) {
          let index, text;
          [index, q] = leb(q);
          [text, q] = name(q);
          names.set(index, text);
        }
      }
      p = sub + len;
    }
  } else {
    other += size;
  }
  pos = end;
}
if (names.size === 0) {
  console.error(`${path} has no name section (wasm-opt drops it): give the unoptimized module`);
  process.exit(2);
}

/** The crate a (demangled, Rust-v0 or legacy) function name belongs to. */
function crateOf(fn) {
  const trimmed = fn.replace(/^(<|&|mut |dyn |impl |\(|\[)+/, "");
  const m = /^([A-Za-z_][A-Za-z0-9_]*)::/.exec(trimmed);
  return m ? m[1] : "(no path: wasm-bindgen shims, compiler builtins)";
}
const groups = new Map();
bodies.forEach((body, i) => {
  const crate = crateOf(names.get(importedFunctions + i) ?? "");
  (groups.get(crate) ?? groups.set(crate, []).get(crate)).push(body);
});
const table = [...groups].map(([crate, list]) => {
  const joined = Buffer.concat(list);
  return { crate, functions: list.length, raw: joined.length, gzip: gzipSync(joined, { level: 9 }).length };
});
table.sort((a, b) => b.gzip - a.gzip);
const mb = (n) => (n / 1e6).toFixed(3).padStart(7);
const total = table.reduce((t, r) => ({ raw: t.raw + r.raw, gzip: t.gzip + r.gzip }), { raw: 0, gzip: 0 });
console.log(`${"crate".padEnd(48)} ${"fns".padStart(6)} ${"raw MB".padStart(7)} ${"gzip MB".padStart(7)} share`);
for (const r of table.slice(0, Number(rows))) {
  console.log(`${r.crate.padEnd(48)} ${String(r.functions).padStart(6)} ${mb(r.raw)} ${mb(r.gzip)} ${(100 * r.gzip / total.gzip).toFixed(1).padStart(5)}%`);
}
const rest = table.slice(Number(rows));
if (rest.length) {
  const sum = rest.reduce((t, r) => ({ raw: t.raw + r.raw, gzip: t.gzip + r.gzip }), { raw: 0, gzip: 0 });
  console.log(`${`(${rest.length} more crates)`.padEnd(48)} ${"".padStart(6)} ${mb(sum.raw)} ${mb(sum.gzip)}`);
}
console.log(`${"code, all crates (each gzipped alone)".padEnd(48)} ${String(bodies.length).padStart(6)} ${mb(total.raw)} ${mb(total.gzip)}`);
const dataJoined = Buffer.concat(data);
console.log(`${"data segments (string constants, tables)".padEnd(48)} ${"".padStart(6)} ${mb(dataJoined.length)} ${mb(gzipSync(dataJoined, { level: 9 }).length)}`);
console.log(`${"name section (wasm-opt drops it)".padEnd(48)} ${"".padStart(6)} ${mb(nameBytes)}`);
console.log(`${"other sections (types, imports, tables, …)".padEnd(48)} ${"".padStart(6)} ${mb(other)}`);
