// A loopback stand-in for the IONOS AI Model Hub's OpenAI-compatible endpoint, for the tests and the
// demo's remote mode. It speaks the same stream (`chat.completion.chunk` SSE events, usage at the end,
// `data: [DONE]`), answers CORS preflights as a cross-origin API does, and produces every ugly case a
// client must survive. The case is the first path segment:
//
//   POST http://127.0.0.1:PORT/<case>/v1/chat/completions
//
//   ok          a streamed reply that echoes the last user message (or one chat.completion if !stream)
//   split       the same body written 3 bytes at a time (lines and UTF-8 sequences cut in half)
//   crlf        CRLF line endings, and a keep-alive comment between events
//   multiline   each event's JSON spread over several `data:` lines
//   no-done     the stream ends without `data: [DONE]`
//   tools       tool-call deltas (a function name, then its arguments in pieces), finish "tool_calls"
//   401         {"error": …} with HTTP 401
//   429-once-X  HTTP 429 with Retry-After: 1 the first time X is seen, then `ok`
//   429         HTTP 429 with Retry-After: 1, always
//   500         HTTP 500
//   stall       two chunks, then nothing (the connection stays open)
//   malformed   one chunk, then half a JSON object
//   html        HTTP 200 with an HTML page (a captive portal, a proxy's error page)
//   json-stream a stream request answered with one JSON chat.completion
//   truncated   three chunks, then the body ends cleanly: no finish_reason, no [DONE]
//   no-headers  nothing at all: the response headers never come
//   drip        two chunks, then an SSE comment every 200 ms and no data, forever
//   503-once-X  HTTP 503 with Retry-After: 1 the first time X is seen, then `ok`
//   ctx-llamacpp llama.cpp's server's 400 for a prompt beyond its context
//   cors-after-1-X `ok` the first time X is seen; later, the same answer without CORS headers (blocked)
//
// GET /__requests lists the requests received (method, case, authorization — redacted —, body, and
// `closedEarly`: the client hung up before the answer ended) and DELETE /__requests forgets them; that
// route sends no CORS headers, so no other origin's page can read it. In-process users read `requests`. Usage: node tests/openai-server.mjs [--port 8081]
import { createServer } from "node:http";

const MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function lastUserText(body) {
  const messages = Array.isArray(body?.messages) ? body.messages : [];
  const user = [...messages].reverse().find((m) => m.role === "user");
  return typeof user?.content === "string" ? user.content : "";
}

/** The reply's text pieces: an echo with a multi-byte tail, so splits can cut characters. */
function replyPieces(body) {
  return ["You", " said", ": ", lastUserText(body), ". Grüße", " 🦙"];
}

function chunkObject(id, delta, finishReason = null) {
  return {
    id, object: "chat.completion.chunk", created: 1_780_000_000, model: MODEL,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The SSE events (as JSON values, or the "[DONE]" string) of a streamed reply. */
function replyEvents(body, { tools = false } = {}) {
  const id = "chatcmpl-loopback";
  const events = [chunkObject(id, { role: "assistant", content: "" })];
  let completion = 0;
  if (tools) {
    const call = { index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } };
    events.push(chunkObject(id, { tool_calls: [call] }));
    for (const part of ['{"city":', ' "Berlin"}']) {
      events.push(chunkObject(id, { tool_calls: [{ index: 0, function: { arguments: part } }] }));
      completion += 1;
    }
    events.push(chunkObject(id, {}, "tool_calls"));
  } else {
    for (const piece of replyPieces(body)) {
      events.push(chunkObject(id, { content: piece }));
      completion += 1;
    }
    events.push(chunkObject(id, {}, "stop"));
  }
  const prompt = JSON.stringify(body?.messages ?? []).length >> 2;
  events.push({
    id, object: "chat.completion.chunk", created: 1_780_000_000, model: MODEL, choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  });
  events.push("[DONE]");
  return events;
}

function encodeEvents(events, { eol = "\n", multiline = false, comments = false } = {}) {
  let out = "";
  for (const e of events) {
    if (comments) out += `: keep-alive${eol}${eol}`;
    const data = typeof e === "string" ? e : JSON.stringify(e);
    if (multiline && typeof e !== "string") {
      // Split the JSON between its top-level members: joined by LF it is the same JSON.
      out += data.replace(/,"/g, `,${eol}data: "`).replace(/^/, "data: ") + eol + eol;
    } else {
      out += `data: ${data}${eol}${eol}`;
    }
  }
  return out;
}

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, content-type",
  "access-control-allow-methods": "POST, GET, DELETE, OPTIONS",
  "access-control-expose-headers": "retry-after",
};

function sendJson(res, status, value, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...CORS, ...headers });
  res.end(JSON.stringify(value));
}

function startStream(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...CORS });
}

export async function startOpenAiServer({ port = 0, host = "127.0.0.1" } = {}) {
  const requests = [];
  const seen = new Set();
  const open = new Set();

  const server = createServer(async (req, res) => {
    open.add(res);
    res.on("close", () => open.delete(res));
    const url = new URL(req.url, "http://loopback");
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS);
      return res.end();
    }
    if (url.pathname === "/__requests") {
      if (req.method === "DELETE") requests.length = 0;
      const redacted = requests.map((r) => ({ ...r, authorization: r.authorization && "<redacted>" }));
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(redacted));
    }
    const m = /^\/([^/]+)\/v1\/chat\/completions$/.exec(url.pathname);
    if (!m || req.method !== "POST") return sendJson(res, 404, { error: { message: `no route ${req.method} ${url.pathname}` } });
    let raw = "";
    for await (const part of req) raw += part;
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      return sendJson(res, 400, { error: { message: "request body is not JSON" } });
    }
    let name = m[1];
    const record = { method: req.method, case: name, authorization: req.headers.authorization ?? null, body, closedEarly: false };
    requests.push(record);
    res.on("close", () => { record.closedEarly = !res.writableFinished; });

    for (const [prefix, status] of [["429-once-", 429], ["503-once-", 503]]) {
      if (!name.startsWith(prefix)) continue;
      if (!seen.has(name)) {
        seen.add(name);
        return sendJson(res, status, { error: { message: "busy, try again in a second" } }, { "retry-after": "1" });
      }
      name = "ok";
    }
    if (name.startsWith("cors-after-1-")) {
      if (seen.has(name)) {
        res.writeHead(200, { "content-type": "text/event-stream" }); // no Access-Control-Allow-Origin
        return res.end(encodeEvents(replyEvents(body)));
      }
      seen.add(name);
      name = "ok";
    }
    switch (name) {
      case "401":
        return sendJson(res, 401, { error: { message: "invalid token", type: "authentication_error" } });
      case "429":
        return sendJson(res, 429, { error: { message: "rate limit" } }, { "retry-after": "1" });
      case "500":
        return sendJson(res, 500, { error: { message: "internal error" } });
      case "ctx-llamacpp":
        return sendJson(res, 400, { error: { code: 400, type: "exceed_context_size_error",
          message: "the request exceeds the available context size, try increasing it" } });
      case "html":
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", ...CORS });
        return res.end("<!doctype html><title>Sign in to the Wi-Fi</title><p>Please sign in.</p>");
      case "no-headers":
        return; // the client's time limit must end it
    }
    if (name === "json-stream") {
      return sendJson(res, 200, {
        id: "chatcmpl-loopback", object: "chat.completion", created: 1_780_000_000, model: MODEL,
        choices: [{ index: 0, message: { role: "assistant", content: replyPieces(body).join("") }, finish_reason: "stop" }],
        usage: { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 },
      });
    }
    if (!body.stream) {
      const text = replyPieces(body).join("");
      const prompt = JSON.stringify(body.messages ?? []).length >> 2;
      return sendJson(res, 200, {
        id: "chatcmpl-loopback", object: "chat.completion", created: 1_780_000_000, model: MODEL,
        choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
        usage: { prompt_tokens: prompt, completion_tokens: 6, total_tokens: prompt + 6 },
      });
    }
    startStream(res);
    const events = replyEvents(body, { tools: name === "tools" });
    switch (name) {
      case "split": {
        const bytes = Buffer.from(encodeEvents(events));
        for (let i = 0; i < bytes.length && !res.destroyed; i += 3) {
          res.write(bytes.subarray(i, i + 3));
          if (i % 60 === 0) await sleep(1);
        }
        return res.end();
      }
      case "crlf":
        return res.end(encodeEvents(events, { eol: "\r\n", comments: true }));
      case "multiline":
        return res.end(encodeEvents(events, { multiline: true }));
      case "no-done":
        return res.end(encodeEvents(events.slice(0, -1)));
      case "stall":
        res.write(encodeEvents(events.slice(0, 2)));
        return; // never ends; closed when the client goes away or the server stops
      case "malformed":
        res.write(encodeEvents(events.slice(0, 2)));
        return res.end('data: {"id": "chatcmpl-loopback", "choices": [{"delta": {"content": "x"\n\n');
      case "truncated":
        return res.end(encodeEvents(events.slice(0, 3)));
      case "drip":
        res.write(encodeEvents(events.slice(0, 2)));
        while (!res.destroyed) {
          res.write(": keep-alive\n\n");
          await sleep(200);
        }
        return;
      default: // ok, tools
        for (const e of events) {
          if (res.destroyed) return;
          res.write(encodeEvents([e]));
          await sleep(5);
        }
        return res.end();
    }
  });

  await new Promise((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    requests,
    close: () => new Promise((resolve) => {
      for (const res of open) res.destroy();
      server.close(resolve);
    }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : 8081;
  const s = await startOpenAiServer({ port });
  console.log(`OpenAI-compatible loopback server on ${s.url}<case>/v1 (cases: see the file's header)`);
}
