// The model store's I/O on the browser's origin private file system (OPFS), for
// src/wasm/opfs.rs: a root directory, one directory per model, one file per piece.
// Every function is async and throws the browser's own DOMExceptions; Rust maps them.

const ROOT = "llama-web-models";

/** The store's root directory, or null where the browser has no OPFS (or refuses it). */
export async function storeRoot() {
  if (!globalThis.navigator?.storage?.getDirectory) return null;
  try {
    const origin = await navigator.storage.getDirectory();
    return await origin.getDirectoryHandle(ROOT, { create: true });
  } catch {
    return null;
  }
}

/** A child directory; null when it does not exist and `create` is false. */
export async function childDir(dir, name, create) {
  try {
    return await dir.getDirectoryHandle(name, { create });
  } catch (e) {
    if (e?.name === "NotFoundError") return null;
    throw e;
  }
}

/** The directory's files as [name, size] pairs. */
export async function listFiles(dir) {
  const out = [];
  for await (const [name, handle] of dir.entries()) {
    if (handle.kind === "file") out.push([name, (await handle.getFile()).size]);
  }
  return out;
}

/** The names of the directory's subdirectories. */
export async function listDirs(dir) {
  const out = [];
  for await (const [name, handle] of dir.entries()) if (handle.kind === "directory") out.push(name);
  return out;
}

/** Writes a whole file; it appears with all of `bytes` or not at all (the stream commits on close). */
export async function writeFile(dir, name, bytes) {
  const copy = bytes.slice(); // `bytes` is a view of wasm memory, which may move while we wait
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
