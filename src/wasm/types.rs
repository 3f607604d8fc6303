//! The TypeScript declarations of the JS API (`pkg/llama_web.d.ts`): the options, the response
//! objects, the errors. The classes themselves are declared by wasm-bindgen from `client.rs`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `LlamaClient.create`. */
export interface LlamaClientOptions {
  /** "auto" (default): local when the GPU can hold the model, else remote. */
  mode?: "local" | "remote" | "auto";
  local?: {
    /** A GGUF file, served with HTTP Range support. */
    modelUrl: string;
    /** Tokens of context (default: min(4096, the model's)). */
    contextSize?: number;
    /** KV cache format: "q8" (default: 8-bit, a quarter of the memory), "f16" (half, closer to exact) or "f32" (exact). */
    kvCache?: "f32" | "f16" | "q8";
    /**
     * Keep the file in the browser's model store (OPFS) as it downloads (default true): a reload resumes
     * where the download stopped, and a later load reads the store after one 1-byte revalidation request.
     * See `LlamaClient.cache` to list or clear it.
     */
    cache?: boolean;
    /** The file's SHA-256 (hex): checked as the pieces arrive; a mismatch fails with "bad_model", nothing kept. */
    sha256?: string;
    /** Download piece size in bytes (default 16 MiB, at least 4 KiB, at most 256 MiB). */
    pieceBytes?: number;
    /** Seconds a piece's request may take before it is sent again (default: 30 plus 1 per 64 KiB). */
    pieceTimeoutSeconds?: number;
    /**
     * Run the model in a dedicated Web Worker (default true), so loading and generating never block the page's
     * thread. Where the worker cannot run it (no Worker, no WebGPU in workers, llama_web_worker.js not served
     * beside llama_web.js) the model runs on the page's thread, with a console warning.
     */
    worker?: boolean;
  };
  remote?: {
    /** Default: the IONOS AI Model Hub, https://openai.inference.de-txl.ionos.com/v1 */
    baseUrl?: string;
    /** A bearer token; kept in memory only, never stored or logged. */
    apiKey?: string;
    /** Called before every request for a fresh token. */
    getToken?: () => string | Promise<string>;
    /** Default: meta-llama/Meta-Llama-3.1-8B-Instruct */
    model?: string;
    /** A stream silent this long fails with code "network" (default 60). */
    stallTimeoutSeconds?: number;
    /** Retries of 429/503/unreachable before the first byte (default 3). */
    maxRetries?: number;
  };
  /**
   * Auto mode, opt-in: answer remotely at once and switch to local when the model is ready (a request keeps the
   * backend it began on). Prompts go to the remote endpoint until then.
   */
  hybrid?: boolean;
  onProgress?: (p: LoadProgress) => void;
  /** Hybrid start: called with "local" when the local model takes over. */
  onBackendChange?: (backend: "local" | "remote") => void;
  /** Aborts loading. */
  signal?: AbortSignal;
}

/** Model loading progress. */
export interface LoadProgress {
  /**
   * "download" while tensors are fetched, stored and uploaded one by one (or "cache" when the whole file is
   * read back from the browser's store), then one "compile" event when the GPU kernels start compiling
   * (etaSeconds null). The last event has loadedBytes === totalBytes.
   */
  phase: "download" | "cache" | "compile";
  loadedBytes: number;
  totalBytes: number;
  etaSeconds: number | null;
}

/** `chat.completions.create` parameters (OpenAI's; unknown ones are forwarded to remote endpoints). */
export interface ChatCompletionParams {
  messages: Array<{ role: string; content?: string | null; [key: string]: unknown }>;
  stream?: boolean | null;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  /** Functions the model may call; locally Llama 3.1's own call formats become `tool_calls`. */
  tools?: ChatCompletionTool[];
  /** "required" or a named function: enforced locally by constrained decoding (one call per answer). */
  tool_choice?: "none" | "auto" | "required" | { type: "function"; function: { name: string } };
  /** JSON output, enforced locally by constrained decoding (llguidance). */
  response_format?: { type: "text" } | { type: "json_object" }
    | { type: "json_schema"; json_schema: { name: string; schema: object | boolean; strict?: boolean; description?: string } };
  /** Each answer token's log-probability under the model's own distribution ... */
  logprobs?: boolean;
  /** ... and this many most likely alternatives (0–20). */
  top_logprobs?: number;
  /** false: an answer keeps its first call only. */
  parallel_tool_calls?: boolean;
  signal?: AbortSignal;
  [key: string]: unknown;
}

/** A token's log-probability (`logprobs: true`); `bytes` are its UTF-8 bytes. */
export interface ChatCompletionTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] | null }>;
}

export interface ChatCompletionTool {
  type: "function";
  function: { name: string; description?: string; parameters?: object };
}

/** A call in a whole message: `arguments` is JSON text. */
export interface ChatCompletionMessageToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A piece of a streamed call: the first carries `id`, `type` and the name, the next ones more `arguments`. */
export interface ChatCompletionToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Locally: `cached_tokens` of the prompt were not run again (kept from the last request or the load). */
  prompt_tokens_details?: { cached_tokens: number };
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: string; content?: string | null; tool_calls?: ChatCompletionToolCallDelta[] };
                   finish_reason: "stop" | "length" | "tool_calls" | null;
                   logprobs?: { content: ChatCompletionTokenLogprob[] | null } | null }>;
  usage?: ChatCompletionUsage;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: "assistant"; content: string | null; tool_calls?: ChatCompletionMessageToolCall[] };
                   finish_reason: "stop" | "length" | "tool_calls";
                   logprobs?: { content: ChatCompletionTokenLogprob[] | null } | null }>;
  usage: ChatCompletionUsage;
}

/** A streamed answer: iterate it with `for await`; breaking out of the loop or `abort()` stops it. */
export interface ChatCompletionChunkStream extends AsyncIterable<ChatCompletionChunk> {
  /** Stops the answer (like breaking out of the loop). */
  abort(): void;
}

/** `client.chat.completions`: one overload per `stream` literal, as in the openai package. */
export interface Completions {
  /** Streams the answer as `chat.completion.chunk`s. `signal` aborts (the error's code is "aborted"). */
  create(params: ChatCompletionParams & { stream: true }): Promise<ChatCompletionChunkStream>;
  /** The whole answer as one `chat.completion`. */
  create(params: ChatCompletionParams & { stream?: false | null }): Promise<ChatCompletion>;
  /** `stream` known only at run time. */
  create(params: ChatCompletionParams): Promise<ChatCompletionChunkStream | ChatCompletion>;
}

/** A model in the browser's store (`LlamaClient.cache.list()`). */
export interface CachedModel {
  url: string;
  /** Bytes stored so far. */
  bytes: number;
  /** The whole file is stored. */
  complete: boolean;
  /** Last load that used it, milliseconds since the Unix epoch. */
  lastUsed: number;
}

/** Errors are `Error`s named "LlamaWebError" with a stable `code`. */
export interface LlamaWebError extends Error {
  code: "no_webgpu" | "insufficient_gpu" | "device_lost" | "model_fetch" | "bad_model" | "storage_quota" | "quota"
      | "auth"
      | "rate_limited" | "network" | "context_overflow" | "aborted" | "bad_request";
  status?: number;
  retryAfterSeconds?: number;
}
"#;
