// client.fetch's HTTP side (see fetch.rs): a fetch(input, init) that answers OpenAI's
// chat-completions and models routes from a LlamaClient, for OpenAI-compatible SDKs.

const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };
const JSON_HEADERS = { "content-type": "application/json" };

function jsonResponse(status, value, headers = {}) {
  return new Response(JSON.stringify(value), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function abortError(signal) {
  const reason = signal?.reason;
  return reason instanceof DOMException && reason.name === "AbortError"
    ? reason
    : new DOMException("The operation was aborted.", "AbortError");
}

/** The Response for a failed request, as an OpenAI-compatible server sends it. */
function errorResponse(target, error) {
  const { status, body, retryAfterSeconds } = target.errorResponse(error);
  const headers = { ...JSON_HEADERS, "x-should-retry": "false" };
  if (typeof retryAfterSeconds === "number") headers["retry-after"] = String(Math.ceil(retryAfterSeconds));
  return new Response(body, { status, headers });
}

/** The answer's chunks as the SSE bytes of the hosted API; an error after the first byte
 *  becomes an `error` event (as OpenAI-compatible servers send it), an abort an AbortError. */
function sseStream(target, answer, signal) {
  const encoder = new TextEncoder();
  const iterator = answer[Symbol.asyncIterator]();
  const event = (value) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
  return new ReadableStream({
    async pull(controller) {
      try {
        const { done, value } = await iterator.next();
        if (done) {
          if (signal?.aborted) return controller.error(abortError(signal));
          controller.enqueue(encoder.encode("data: [DONE]\n\n"));
          controller.close();
        } else {
          controller.enqueue(event(value));
        }
      } catch (error) {
        if (error?.code === "aborted" || signal?.aborted) return controller.error(abortError(signal));
        controller.enqueue(event(JSON.parse(target.errorResponse(error).body)));
        controller.close();
      }
    },
    cancel() {
      iterator.return?.();
    },
  });
}

export function openaiFetch(target) {
  return async function llamaWebFetch(input, init = undefined) {
    const request = new Request(input, init);
    const signal = init?.signal ?? request.signal;
    if (signal?.aborted) throw abortError(signal);
    const path = new URL(request.url).pathname.replace(/\/+$/, "");
    if (request.method === "GET" && path.endsWith("/models")) {
      const model = { id: target.model(), object: "model", created: 0, owned_by: "llama-web" };
      return jsonResponse(200, { object: "list", data: [model] });
    }
    if (request.method !== "POST" || !path.endsWith("/chat/completions")) {
      const error = { code: "bad_request", message: `llama-web's fetch answers POST …/chat/completions and GET …/models, not ${request.method} ${path}`, status: 404 };
      return errorResponse(target, error);
    }
    let params;
    try {
      params = JSON.parse(await request.text());
    } catch (e) {
      return errorResponse(target, { code: "bad_request", message: `the request body is not JSON: ${e.message}` });
    }
    let answer;
    try {
      answer = await target.create({ ...params, signal });
    } catch (error) {
      if (error?.code === "aborted" || signal?.aborted) throw abortError(signal);
      return errorResponse(target, error);
    }
    if (!params?.stream) return jsonResponse(200, answer);
    return new Response(sseStream(target, answer, signal), { status: 200, headers: SSE_HEADERS });
  };
}
