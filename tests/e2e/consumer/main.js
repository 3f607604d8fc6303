// A consumer app of the packed npm package: it imports "llama-web" by name, as an app does, and is
// built by Vite (index.html) or webpack (webpack.html), or served as is with an import map
// (plain.html). package.test.mjs drives `window.consumer.answer(…)` in Chromium.
import init, { LlamaClient } from "llama-web";

window.consumer = {
  /** One streamed and one whole answer from a fresh client; `options` are LlamaClient.create's. */
  async answer(options) {
    await init();
    const client = await LlamaClient.create(options);
    const messages = [{ role: "user", content: "Hello from a packaged app" }];
    let streamed = "";
    const stream = await client.chat.completions.create({ messages, stream: true, max_tokens: 6, temperature: 0 });
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
    const whole = await client.chat.completions.create({ messages, max_tokens: 6, temperature: 0 });
    const result = { backend: client.backend, streamed, whole: whole.choices[0].message.content };
    client.dispose();
    return result;
  },
};
document.body.dataset.ready = "yes";
