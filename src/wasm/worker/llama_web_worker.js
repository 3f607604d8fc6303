// llama-web's engine worker (the npm package ships it beside llama_web.js). The page's
// LlamaClient starts it with `local.worker` (the default) and sends the page's compiled
// WebAssembly module first; the engine then runs here, off the page's thread.
import init, { workerMain } from "./llama_web.js";

// Diagnostics: the GPU devices this worker obtained (`self.llamaWebDevices`), so a test can
// simulate the loss of the GPU with `destroy()` and watch the client recover.
if (self.GPUAdapter?.prototype?.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  self.llamaWebDevices = [];
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    self.llamaWebDevices.push(device);
    return device;
  };
}

self.onmessage = async (event) => {
  if (event.data?.type !== "init") return;
  self.onmessage = null;
  try {
    await init({ module_or_path: event.data.module });
    workerMain();
  } catch (error) {
    self.postMessage({ type: "startFailed", message: String(error?.message ?? error) });
  }
};
