// The JS half of llama-web's Web Worker host (src/wasm/worker/): starting the engine's worker
// from the page, and the worker's own end of the messages. wasm-bindgen copies this file to
// pkg/snippets/llama-web-<hash>/src/wasm/worker/glue.js, five folders below pkg/.

/**
 * Page side: starts pkg/llama_web_worker.js as a module worker and hands it this page's
 * compiled WebAssembly module (so the worker neither downloads nor compiles it again).
 * `onMessage(data)` gets each message; `onError(text)` a failure to start or a crash.
 */
export function spawnEngineWorker(module, onMessage, onError) {
  // One literal `new URL(…, import.meta.url)`: bundlers (Vite, webpack) find and ship the file.
  const worker = new Worker(new URL("../../../../../llama_web_worker.js", import.meta.url), {
    type: "module",
    name: "llama-web engine",
  });
  worker.onmessage = (event) => onMessage(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    onError(event.message || "the engine's worker could not be started");
  };
  worker.onmessageerror = () => onError("a message from the engine's worker could not be read");
  worker.postMessage({ type: "init", module });
  return worker;
}

/** Page side: sends `message` to the worker. */
export function postToWorker(worker, message) {
  worker.postMessage(message);
}

/** Page side: stops the worker at once. */
export function terminateWorker(worker) {
  worker.onmessage = worker.onerror = worker.onmessageerror = null;
  worker.terminate();
}

/** Worker side: `onMessage(data)` gets each message from the page. */
export function listenToPage(onMessage) {
  self.onmessage = (event) => onMessage(event.data);
}

/** Worker side: sends `message` to the page. */
export function postToPage(message) {
  self.postMessage(message);
}

/** Worker side: ends the worker (its GPU device and memory with it). */
export function closeWorker() {
  self.close();
}
