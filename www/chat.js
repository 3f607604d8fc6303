// The chat page: the npm package used exactly as a user would. Settings (never the token) and the
// conversation are kept in localStorage across reloads. #status carries a data-state a test can wait
// for: starting (the module loads) | idle | loading | ready | generating | error.
import init, { LlamaClient } from "llama-web";

const $ = (id) => document.getElementById(id);
const SETTINGS_KEY = "llama-web.settings";
const CONVERSATION_KEY = "llama-web.conversation";
const DEFAULTS = {
  mode: "auto",
  modelUrl: "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
  endpoint: "https://openai.inference.de-txl.ionos.com/v1",
  temperature: 0.7,
  maxTokens: 256,
};

/** What each error code means for a person. */
const EXPLAIN = {
  no_webgpu: "This browser offers no WebGPU adapter, so the model cannot run here.",
  insufficient_gpu: "This GPU cannot hold the model.",
  device_lost: "The GPU stopped responding (device lost). Reload the page to try again.",
  model_fetch: "The model file could not be downloaded.",
  bad_model: "The model file is not one this page can run.",
  storage_quota: "This browser has too little free storage to keep the model. Free some space, or use remote mode.",
  quota: "The endpoint says the account's quota is used up.",
  auth: "The endpoint refused the token. Check it in the settings.",
  rate_limited: "The endpoint is rate-limiting requests.",
  network: "The endpoint could not be reached or broke off.",
  context_overflow: "The conversation is too long for the model's context. Clear it and start again.",
  aborted: "Stopped.",
  bad_request: "The request was not valid.",
};

let client = null;
let conversation = loadJson(CONVERSATION_KEY, []);
let running = null; // the AbortController of the answer being streamed

function loadJson(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function explain(error) {
  const why = EXPLAIN[error?.code];
  const detail = error?.message ?? String(error);
  const wait = error?.retryAfterSeconds ? ` Try again in ${error.retryAfterSeconds} s.` : "";
  return why ? `${why}${wait} (${detail})` : `Something went wrong: ${detail}`;
}

// ---- settings -------------------------------------------------------------------------------

function readSettings() {
  return {
    mode: $("mode").value,
    modelUrl: $("model-url").value.trim(),
    hybrid: $("hybrid").checked,
    endpoint: $("endpoint").value.trim(),
    temperature: Number($("temperature").value),
    maxTokens: Number($("max-tokens").value),
  };
}

function showSettings() {
  const s = { ...DEFAULTS, ...loadJson(SETTINGS_KEY, {}) };
  $("mode").value = s.mode;
  $("model-url").value = s.modelUrl;
  $("hybrid").checked = Boolean(s.hybrid);
  $("endpoint").value = s.endpoint;
  $("temperature").value = s.temperature;
  $("max-tokens").value = s.maxTokens;
}

function showBackend() {
  $("backend").dataset.backend = client.backend;
  $("backend").textContent = client.backend === "local" ? "local · WebGPU" : "remote";
}

function megabytes(n) {
  return (n / 1e6).toFixed(1);
}

async function connect(event) {
  event.preventDefault();
  const settings = readSettings();
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings)); // the token is not part of it
  client = null;
  setComposer(false);
  $("backend").dataset.backend = "none";
  $("backend").textContent = "connecting…";
  $("reason").hidden = true;
  setStatus("loading", settings.mode === "remote" ? "Connecting…" : "Checking the GPU and loading the model…");
  const token = $("token").value;
  try {
    client = await LlamaClient.create({
      mode: settings.mode,
      local: settings.modelUrl ? { modelUrl: settings.modelUrl } : undefined,
      remote: { baseUrl: settings.endpoint, ...(token ? { apiKey: token } : {}) },
      hybrid: settings.mode === "auto" && settings.hybrid && Boolean(settings.modelUrl),
      onProgress: showProgress,
      onBackendChange: () => {
        $("progress-box").hidden = true;
        $("reason").hidden = true;
        showBackend();
        showStoredModels();
        setStatus("ready", "The local model is ready; it answers from now on.");
      },
    });
  } catch (e) {
    $("backend").textContent = "not connected";
    $("progress-box").hidden = true;
    return setStatus("error", explain(e));
  }
  // A hybrid start keeps loading (and showing progress) while the remote endpoint answers.
  $("progress-box").hidden = !client.fallbackReason?.includes("hybrid");
  showBackend();
  if (client.fallbackReason) {
    $("reason").hidden = false;
    $("reason").textContent = `Answering remotely because ${client.fallbackReason}.`;
  }
  $("settings").open = false;
  showStoredModels();
  setComposer(true);
  setStatus("ready", client.backend === "local" ? "The model is loaded on your GPU. Ask away." : "Connected. Ask away.");
}

function showProgress(p) {
  $("progress-box").hidden = false;
  $("progress").value = p.totalBytes ? p.loadedBytes / p.totalBytes : 0;
  const eta = p.etaSeconds == null ? "" : `, about ${Math.ceil(p.etaSeconds)} s left`;
  const source = p.phase === "cache" ? " from this browser's storage" : "";
  $("progress-text").textContent = p.phase === "compile"
    ? `${megabytes(p.totalBytes)} MB loaded; preparing the GPU kernels…`
    : p.loadedBytes === p.totalBytes
      ? `${megabytes(p.totalBytes)} MB loaded${source}`
      : `${megabytes(p.loadedBytes)} of ${megabytes(p.totalBytes)} MB${source}${eta}`;
}

// ---- conversation ---------------------------------------------------------------------------

function addBubble(role, text) {
  const el = document.createElement("div");
  el.className = `message ${role}`;
  el.textContent = text;
  $("messages").append(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

function showConversation() {
  $("messages").replaceChildren();
  for (const m of conversation) addBubble(m.role, m.content);
}

function saveConversation() {
  localStorage.setItem(CONVERSATION_KEY, JSON.stringify(conversation));
}

function setComposer(enabled) {
  $("prompt").disabled = !enabled;
  $("send").disabled = !enabled;
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || !client || running) return;
  $("prompt").value = "";
  conversation.push({ role: "user", content: text });
  saveConversation();
  addBubble("user", text);
  const bubble = addBubble("assistant", "");
  bubble.classList.add("streaming");
  bubble.dataset.backend = client.backend; // who answers this one (a hybrid start switches later)
  bubble.title = `answered by the ${client.backend} backend`;
  const settings = readSettings();
  running = new AbortController();
  setComposer(false);
  $("stop").disabled = false;
  setStatus("generating", "Answering…");
  let reply = "";
  let pieces = 0;
  let usage = null;
  let finish = null;
  const started = performance.now();
  let firstAt = null; // when the first text arrived: the prompt's processing is over
  try {
    const stream = await client.chat.completions.create({
      messages: conversation, stream: true, signal: running.signal,
      temperature: settings.temperature, max_tokens: settings.maxTokens,
    });
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) {
        firstAt ??= performance.now();
        reply += piece;
        pieces += 1;
        bubble.textContent = reply;
        showSpeed(pieces, started, firstAt);
      }
      if (chunk.usage) usage = chunk.usage;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    setStatus("ready", finish === "length" ? "Done — the answer reached the max tokens setting." : "Done.");
  } catch (e) {
    setStatus(e?.code === "aborted" ? "ready" : "error", explain(e));
  } finally {
    bubble.classList.remove("streaming");
    if (usage && firstAt) showSpeed(usage.completion_tokens, started, firstAt);
    if (reply) {
      conversation.push({ role: "assistant", content: reply });
    } else {
      bubble.remove();
    }
    saveConversation();
    running = null;
    $("stop").disabled = true;
    setComposer(true);
  }
}

/** Tokens so far, their rate after the first one, and how long the first one took. */
function showSpeed(tokens, started, firstAt) {
  const now = performance.now();
  const first = `first after ${((firstAt - started) / 1000).toFixed(1)} s`;
  const rate = tokens > 1 && now > firstAt ? ` · ${((tokens - 1) / ((now - firstAt) / 1000)).toFixed(2)} tok/s` : "";
  $("speed").textContent = `${tokens} tokens${rate} · ${first}`;
}

function clearConversation() {
  conversation = [];
  saveConversation();
  showConversation();
}

/** Says what the browser keeps (`LlamaClient.cache`); `clear` deletes it first. */
async function showStoredModels(clear = false) {
  try {
    if (clear) await LlamaClient.cache.clear();
    const models = await LlamaClient.cache.list();
    const bytes = models.reduce((n, m) => n + m.bytes, 0);
    $("stored").textContent = models.length === 0
      ? "No model is stored in this browser; a local model is kept here after its first download."
      : `Stored in this browser: ${models.length} model${models.length > 1 ? "s" : ""}, ${megabytes(bytes)} MB` +
        ` (${models.filter((m) => !m.complete).length} partly downloaded). "Clear stored models" deletes them.`;
  } catch (e) {
    $("stored").textContent = explain(e);
  }
}

async function main() {
  showSettings();
  showConversation();
  $("settings-form").addEventListener("submit", connect);
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("stop").addEventListener("click", () => running?.abort());
  $("clear").addEventListener("click", clearConversation);
  await init();
  $("clear-models").addEventListener("click", () => showStoredModels(true));
  showStoredModels();
  $("connect").disabled = false;
  setStatus("idle", "Choose the settings and connect.");
}

main().catch((e) => setStatus("error", explain(e)));
