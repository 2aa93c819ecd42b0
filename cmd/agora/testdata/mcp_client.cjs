// Drives `agora mcp` with the official MCP TypeScript client, unmodified:
// lists the tools, then asks a model (paid from the key) and reads the
// wallet. Usage: AGORA=path/to/agora HOME_DIR=... NODE_URL=... KEY=agent
// node mcp_client.cjs (NODE_PATH must reach @modelcontextprotocol/sdk).
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

async function main() {
  const transport = new StdioClientTransport({
    command: process.env.AGORA,
    args: ["mcp", "--key", process.env.KEY, "--max", "100000uusdc", "--home", process.env.HOME_DIR, "--node", process.env.NODE_URL],
    stderr: "inherit",
  });
  const client = new Client({ name: "agora-test", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const models = await client.callTool({ name: "list_models", arguments: {} });
  const asked = await client.callTool({ name: "ask_model", arguments: { model: "agora/tiny-lm", prompt: "ROMEO:", max_tokens: 12, seed: 2 } });
  const bad = await client.callTool({ name: "ask_model", arguments: { model: "no/such-model", prompt: "x" } });
  // A batch job: submitted, then followed to its end (bounded).
  const fs = require("fs");
  const placed = await client.callTool({ name: "submit_job", arguments: {
    module_base64: fs.readFileSync(process.env.WASM).toString("base64"), input_base64: Buffer.from("8 2\n").toString("base64"),
    max_price: "2000uusdc", memory_mib: 64 } });
  let job = null;
  for (let i = 0; i < 120 && !(job && job.done); i++) {
    if (placed.isError) break;
    await new Promise((r) => setTimeout(r, 500));
    job = (await client.callTool({ name: "job_result", arguments: { order_id: placed.structuredContent.order_id } })).structuredContent;
  }
  const tooDear = await client.callTool({ name: "submit_job", arguments: {
    module_base64: fs.readFileSync(process.env.WASM).toString("base64"), max_price: "1000000uusdc" } });
  const wallet = await client.callTool({ name: "wallet", arguments: {} });
  await client.close();
  console.log(JSON.stringify({
    tools: tools.map((t) => ({ name: t.name, input: !!t.inputSchema, output: !!t.outputSchema })),
    models: models.structuredContent,
    answer: asked.structuredContent,
    answerText: asked.content && asked.content[0] && asked.content[0].text,
    badIsError: !!bad.isError,
    badText: bad.content && bad.content[0] && bad.content[0].text,
    wallet: wallet.structuredContent,
    placed: placed.isError ? placed.content[0].text : placed.structuredContent,
    tooDear: tooDear.isError ? tooDear.content[0].text : "",
    job,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
