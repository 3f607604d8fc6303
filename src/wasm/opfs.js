// The model store's I/O on the browser's origin private file system (OPFS), for
// src/wasm/opfs.rs: a root directory, one directory per model, one file per piece.
// Where OPFS is missing or refused, the same layout is kept in the Cache API instead: a
// "directory" is then a `CachedDir` (a cache and a path), each file one cached response.
// Every function is async and throws the browser's own DOMExceptions; Rust maps them.

const ROOT = "llama-web-models";

/** The store's root directory, or null where the browser has neither OPFS nor the Cache API. */
export async function storeRoot() {
  try {
    if (globalThis.navigator?.storage?.getDirectory) {
      const origin = await navigator.storage.getDirectory();
      return await origin.getDirectoryHandle(ROOT, { create: true });
    }
  } catch {
    // Refused (some private windows): try the Cache API.
  }
  try {
    return globalThis.caches ? new CachedDir(await caches.open(ROOT), "") : null;
  } catch {
    return null;
  }
}


/**
 * A directory of the Cache API fallback: files are responses at `BASE + path + name`; a directory
 * exists when its marker response (`path + name + "/"`) does. Sizes are in the `x-size` header.
 */
class CachedDir {
  static BASE = "https://llama-web.invalid/store/";

  constructor(cache, path) {
    this.cache = cache;
    this.path = path;
  }

  url(name) {
    return CachedDir.BASE + this.path + encodeURIComponent(name);
  }

  /** Each stored URL directly inside this directory, as [name, isDirectory]. */
  async children() {
    const prefix = CachedDir.BASE + this.path;
    const out = [];
    for (const request of await this.cache.keys()) {
      if (!request.url.startsWith(prefix)) continue;
      const rest = request.url.slice(prefix.length);
      const slash = rest.indexOf("/");
      if (slash === -1) out.push([decodeURIComponent(rest), false]);
      else if (slash === rest.length - 1) out.push([decodeURIComponent(rest.slice(0, -1)), true]);
    }
    return out;
  }

  async child(name, create) {
    const marker = this.url(name) + "/";
    if (!(await this.cache.match(marker))) {
      if (!create) return null;
      await this.cache.put(marker, new Response(""));
    }
    return new CachedDir(this.cache, this.path + encodeURIComponent(name) + "/");
  }

  async remove(name) {
    const file = this.url(name);
    await Promise.all((await this.cache.keys())
      .filter((r) => r.url === file || r.url.startsWith(file + "/"))
      .map((r) => this.cache.delete(r)));
  }
}

/** A child directory; null when it does not exist and `create` is false. */
export async function childDir(dir, name, create) {
  if (dir instanceof CachedDir) return dir.child(name, create);
  try {
    return await dir.getDirectoryHandle(name, { create });
  } catch (e) {
    if (e?.name === "NotFoundError") return null;
    throw e;
  }
}

/** The directory's files as [name, size] pairs. */
export async function listFiles(dir) {
  if (dir instanceof CachedDir) {
    const files = (await dir.children()).filter(([, isDir]) => !isDir);
    return Promise.all(files.map(async ([name]) => {
      const response = await dir.cache.match(dir.url(name));
      return [name, Number(response?.headers.get("x-size") ?? 0)];
    }));
  }
  const out = [];
  for await (const [name, handle] of dir.entries()) {
    if (handle.kind === "file") out.push([name, (await handle.getFile()).size]);
  }
  return out;
}

/** The names of the directory's subdirectories. */
export async function listDirs(dir) {
  if (dir instanceof CachedDir) return (await dir.children()).filter(([, isDir]) => isDir).map(([name]) => name);
  const out = [];
  for await (const [name, handle] of dir.entries()) if (handle.kind === "directory") out.push(name);
  return out;
}

/** Writes a whole file; it appears with all of `bytes` or not at all (the stream commits on close). */
export async function writeFile(dir, name, bytes) {
  const copy = bytes.slice(); // `bytes` is a view of wasm memory, which may move while we wait
  if (dir instanceof CachedDir) {
    const headers = { "content-type": "application/octet-stream", "x-size": String(copy.length) };
    return dir.cache.put(dir.url(name), new Response(copy, { headers }));
  }
  const handle = await dir.getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  try {
    await writable.write(copy);
    await writable.close();
  } catch (e) {
    await writable.abort().catch(() => {});
    throw e;
  }
}

/** `len` bytes of a file from `offset`, or null when the file does not exist. */
export async function readFile(dir, name, offset, len) {
  if (dir instanceof CachedDir) {
    const response = await dir.cache.match(dir.url(name));
    if (!response) return null;
    const blob = await response.blob();
    return new Uint8Array(await blob.slice(offset, offset + len).arrayBuffer());
  }
  let file;
  try {
    file = await (await dir.getFileHandle(name)).getFile();
  } catch (e) {
    if (e?.name === "NotFoundError") return null;
    throw e;
  }
  return new Uint8Array(await file.slice(offset, offset + len).arrayBuffer());
}

/** Removes a file or a directory with everything in it; a missing one is not an error. */
export async function removeEntry(dir, name) {
  if (dir instanceof CachedDir) return dir.remove(name);
  try {
    await dir.removeEntry(name, { recursive: true });
  } catch (e) {
    if (e?.name !== "NotFoundError") throw e;
  }
}

/** Bytes the origin may still store ({ quota, usage }), or null where the browser cannot say. */
export async function storageEstimate() {
  try {
    const { quota, usage } = await navigator.storage.estimate();
    return typeof quota === "number" ? { quota, usage: usage ?? 0 } : null;
  } catch {
    return null;
  }
}

/** Asks the browser to keep the origin's storage under pressure; the answer does not matter. */
export function askPersistence() {
  navigator.storage?.persist?.().catch(() => {});
}

/**
 * Holds the Web Lock `llama-web:<name>` (one model entry) until the returned function is called, so two
 * tabs loading the same model take turns: the second finds the first's pieces. Resolves to null where the
 * browser has no Web Locks; rejects with an AbortError when `signal` aborts while waiting.
 */
export function lockEntry(name, signal) {
  if (!globalThis.navigator?.locks?.request) return Promise.resolve(null);
  return new Promise((acquired, failed) => {
    const options = signal ? { signal } : {};
    navigator.locks.request(`llama-web:${name}`, options, () => new Promise((release) => acquired(release)))
      .catch(failed);
  });
}
