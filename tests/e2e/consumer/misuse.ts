// Must NOT type-check (package.test.mjs expects these errors, so the types can fail a consumer):
// a whole answer is not iterable, a stream has no `choices`, and the options are checked.
import { LlamaClient } from "llama-web";

export async function misuse(client: LlamaClient): Promise<void> {
  const whole = await client.chat.completions.create({ messages: [], stream: false });
  for await (const chunk of whole) console.log(chunk); // error: not async iterable
  const stream = await client.chat.completions.create({ messages: [], stream: true });
  console.log(stream.choices); // error: no `choices` on a stream
  await LlamaClient.create({ mode: "cloud" }); // error: not a mode
}
