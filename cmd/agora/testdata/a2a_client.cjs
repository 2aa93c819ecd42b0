// Drives an Agora provider with the official A2A JavaScript client
// (@a2a-js/sdk), unmodified: reads its agent card, sends a message and a
// streamed one (A2A 1.0), then a v0.3-style message/send by hand.
// Usage: BASE=http://127.0.0.1:PORT node a2a_client.cjs.
const { ClientFactory } = require("@a2a-js/sdk/client");

const text = (parts) => parts.map((p) => (p.content && p.content.$case === "text" ? p.content.value : "")).join("");

async function main() {
  const client = await new ClientFactory().createFromUrl(process.env.BASE);
  const card = await (await fetch(process.env.BASE + "/.well-known/agent-card.json")).json();
  const msg = (id) => ({ message: { messageId: id, contextId: "", taskId: "", role: 1, parts: [{ content: { $case: "text", value: "ROMEO:" } }], extensions: [], referenceTaskIds: [] } });
  const reply = await client.sendMessage(msg("m1"));
  let streamed = "";
  let final = null;
  const kinds = [];
  for await (const ev of client.sendMessageStream(msg("m2"))) {
    const p = ev.payload || ev;
    kinds.push(p.$case);
    if (p.$case === "artifactUpdate") streamed += text(p.value.artifact.parts);
    if (p.$case === "statusUpdate") final = p.value;
  }
  const legacy = await (await fetch(card.url, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "message/send",
      params: { message: { kind: "message", messageId: "m3", role: "user", parts: [{ kind: "text", text: "ROMEO:" }] } } }),
  })).json();
  console.log(JSON.stringify({
    interfaces: card.supportedInterfaces, skills: card.skills.map((s) => s.name), extensions: card.capabilities.extensions.map((e) => e.uri),
    reply: text(reply.parts || []), replyReceipt: !!(reply.metadata && reply.metadata["agora.receipt"]),
    streamed, kinds: [...new Set(kinds)], finalState: final && final.status && final.status.state, finalReceipt: !!(final && final.metadata && final.metadata["agora.receipt"]),
    legacyKind: legacy.result && legacy.result.kind, legacyText: legacy.result && legacy.result.parts && legacy.result.parts[0].text,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
