// Drives an Agora endpoint with the official OpenAI Node client, unmodified.
// Usage: BASE=http://127.0.0.1:PORT node openai_client.cjs (NODE_PATH must
// reach a node_modules with the "openai" package).
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ baseURL: process.env.BASE + "/v1", apiKey: process.env.API_KEY || "none", maxRetries: 0 });
  const models = await client.models.list();
  const ids = models.data.map((m) => m.id);
  const req = { model: "agora/tiny-lm", messages: [{ role: "user", content: "ROMEO:" }], max_tokens: 30, seed: 3 };
  const c = await client.chat.completions.create(req);
  const text = c.choices[0].message.content;
  const s = await client.chat.completions.create({ ...req, stream: true });
  let streamed = "";
  for await (const chunk of s) {
    for (const ch of chunk.choices) streamed += (ch.delta && ch.delta.content) || "";
  }
  const t = await client.completions.create({ model: "agora/tiny-lm", prompt: "KING:", max_tokens: 10, seed: 1 });
  // The Responses API, streamed and not.
  const rq = { model: "agora/tiny-lm", instructions: "A play.", input: "ROMEO:", max_output_tokens: 30, seed: 3 };
  const r = await client.responses.create(rq);
  const rs = await client.responses.create({ ...rq, stream: true });
  let responseStreamed = "";
  let ended = null;
  for await (const ev of rs) {
    if (ev.type === "response.output_text.delta") responseStreamed += ev.delta;
    if (ev.type === "response.completed" || ev.type === "response.incomplete") ended = ev.response;
  }
  let refused = "";
  try {
    await client.responses.create({ ...rq, tools: [{ type: "web_search_preview" }] });
  } catch (e) {
    refused = e.status + " " + (e.param || "");
  }
  console.log(JSON.stringify({
    ids, text, streamed, completion: t.choices[0].text, usage: c.usage,
    response: r.output_text, responseStatus: r.status, responseStreamed, streamedStatus: ended && ended.status, refused,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
