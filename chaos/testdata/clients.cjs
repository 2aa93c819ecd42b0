// Load for the chaos test: WORKERS clients of the official OpenAI Node
// client, unmodified, each sending chat requests one after another for
// SECONDS against BASE with API_KEY; odd workers stream. Prints one JSON
// object: every request's outcome, its time and the receipt it came with.
// NODE_PATH must reach a node_modules with the "openai" package.
const OpenAI = require("openai");

const workers = Number(process.env.WORKERS || 8);
const seconds = Number(process.env.SECONDS || 60);

async function worker(w, until, out) {
  // No retries: a request the gateway fails is a failure here.
  const client = new OpenAI({ baseURL: process.env.BASE + "/v1", apiKey: process.env.API_KEY, maxRetries: 0, timeout: 30000 });
  for (let i = 0; Date.now() < until; i++) {
    const stream = w % 2 === 1;
    const req = { model: "agora/tiny-lm", messages: [{ role: "user", content: "KING:" }], max_tokens: 24, seed: w * 1000000 + i };
    const start = Date.now();
    const r = { worker: w, stream, ok: false };
    try {
      if (stream) {
        const s = await client.chat.completions.create({ ...req, stream: true });
        let done = false;
        for await (const chunk of s) {
          if (chunk.agora_receipt) r.receipt = chunk.agora_receipt;
          for (const ch of chunk.choices || []) if (ch.finish_reason) done = true;
        }
        r.ok = done && !!r.receipt;
        if (!r.ok) r.error = "stream ended without its finish and receipt";
      } else {
        const { data, response } = await client.chat.completions.create(req).withResponse();
        r.receipt = response.headers.get("agora-receipt");
        r.ok = !!data.choices[0].message.content && !!r.receipt;
      }
    } catch (e) {
      r.error = String(e && e.message ? e.message : e);
    }
    r.ms = Date.now() - start;
    out.push(r);
  }
}

async function main() {
  const until = Date.now() + seconds * 1000;
  const out = [];
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w, until, out)));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
