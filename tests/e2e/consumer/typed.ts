// A TypeScript consumer of the packed package, checked with `tsc --noEmit` under `strict`
// (package.test.mjs): every option of LlamaClient.create and of a request, both response shapes,
// without casts.
import init, {
  LlamaClient,
  type CachedModel,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionParams,
  type LlamaClientOptions,
  type LlamaWebError,
  type LoadProgress,
} from "llama-web";

/** Narrows a caught value to the package's error type. */
function isLlamaWebError(e: unknown): e is LlamaWebError {
  return e instanceof Error && e.name === "LlamaWebError";
}

export async function everything(apiKey: string): Promise<string> {
  await init();
  const loading = new AbortController();
  const options: LlamaClientOptions = {
    mode: "auto",
    local: {
      modelUrl: "/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
      contextSize: 4096,
      kvCache: "q8",
      cache: true,
      sha256: "0".repeat(64),
      pieceBytes: 16 << 20,
      pieceTimeoutSeconds: 60,
      worker: true,
    },
    remote: {
      baseUrl: "/v1",
      apiKey,
      getToken: async () => apiKey,
      model: "meta-llama/Meta-Llama-3.1-8B-Instruct",
      stallTimeoutSeconds: 30,
      maxRetries: 2,
    },
    hybrid: true,
    onProgress: (p: LoadProgress) => {
      const share: number = p.loadedBytes / p.totalBytes;
      const eta: number | null = p.etaSeconds;
      console.log(p.phase, share, eta);
    },
    onBackendChange: (backend: "local" | "remote") => console.log(backend),
    signal: loading.signal,
  };
  const client = await LlamaClient.create(options);
  const backend: string = client.backend;
  const reason: string | undefined = client.fallbackReason;
  const messages: ChatCompletionParams["messages"] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Weather in Paris?" },
  ];
  const request = new AbortController();

  const stream = await client.chat.completions.create({
    messages,
    stream: true,
    max_tokens: 64,
    temperature: 0.7,
    top_p: 0.9,
    top_k: 40,
    seed: 1,
    stop: ["\n\n"],
    presence_penalty: 0.1,
    frequency_penalty: 0.1,
    tools: [{ type: "function", function: { name: "get_weather", description: "Weather now",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
    tool_choice: { type: "function", function: { name: "get_weather" } },
    parallel_tool_calls: false,
    logprobs: true,
    top_logprobs: 2,
    signal: request.signal,
  });
  let text = "";
  for await (const chunk of stream) {
    const typed: ChatCompletionChunk = chunk;
    const choice = typed.choices[0];
    text += choice?.delta.content ?? "";
    for (const call of choice?.delta.tool_calls ?? []) text += call.function?.arguments ?? "";
    for (const entry of choice?.logprobs?.content ?? []) text += entry.logprob.toFixed(2);
    if (choice?.finish_reason === "tool_calls") stream.abort();
  }

  const whole = await client.chat.completions.create({
    messages,
    response_format: { type: "json_schema", json_schema: { name: "answer", strict: true,
      schema: { type: "object", properties: { answer: { type: "string" } } } } },
  });
  const completion: ChatCompletion = whole;
  const message = completion.choices[0].message;
  text += message.content ?? message.tool_calls?.map((c) => c.function.arguments).join() ?? "";
  text += completion.usage.prompt_tokens_details?.cached_tokens ?? 0;

  const json = await client.chat.completions.create({ messages, stream: false, response_format: { type: "json_object" } });
  text += json.choices[0].finish_reason;

  const either = await client.chat.completions.create({ messages, stream: Math.random() < 0.5 });
  if (Symbol.asyncIterator in either) {
    for await (const chunk of either) text += chunk.id;
  } else {
    text += either.choices[0].message.content;
  }

  const stored: CachedModel[] = await LlamaClient.cache.list();
  const removed: boolean = await LlamaClient.cache.delete(stored[0]?.url ?? "");
  await LlamaClient.cache.clear();
  const models: Response = await client.fetch("https://local.invalid/v1/models");
  try {
    await client.chat.completions.create({ messages: [] });
  } catch (e) {
    if (isLlamaWebError(e)) text += `${e.code} ${e.status ?? ""} ${e.retryAfterSeconds ?? ""}`;
  }
  client.dispose();
  return `${backend} ${reason} ${removed} ${models.status} ${text}`;
}
