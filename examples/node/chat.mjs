// The official `openai` package against Hearth: models, a chat completion, a streamed chat and
// embeddings. Only the base URL changes.
//
//   npm ci && node chat.mjs
//
// HEARTH_BASE_URL (default http://127.0.0.1:8000, with or without /v1), HEARTH_API_KEY (an hk-...
// key; any text for `hearth serve --no-auth`), HEARTH_CHAT_MODEL, HEARTH_EMBED_MODEL.
import OpenAI from "openai";

const root = (process.env.HEARTH_BASE_URL || "http://127.0.0.1:8000").replace(/\/+$/, "").replace(/\/v1$/, "");
const client = new OpenAI({
  baseURL: `${root}/v1`,
  apiKey: process.env.HEARTH_API_KEY || "unused-with-no-auth",
  maxRetries: 1,
});
const chatModel = process.env.HEARTH_CHAT_MODEL || "gemma-3-270m";
const embedModel = process.env.HEARTH_EMBED_MODEL || "all-minilm-l6-v2";

async function main() {
  const models = await client.models.list();
  console.log(`models: ${models.data.map((m) => m.id).join(", ")}`);

  const reply = await client.chat.completions.create({
    model: chatModel,
    messages: [
      { role: "system", content: "You answer in one short sentence." },
      { role: "user", content: "What is the capital of France?" },
    ],
    max_tokens: 32,
  });
  console.log(`chat: ${reply.choices[0].message.content}`);
  console.log(`chat usage: ${JSON.stringify(reply.usage)}`);

  const stream = await client.chat.completions.create({
    model: chatModel,
    messages: [{ role: "user", content: "Count from one to five." }],
    max_tokens: 32,
    stream: true,
    stream_options: { include_usage: true },
  });
  process.stdout.write("stream: ");
  let deltas = 0;
  let usage = null;
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta?.content;
    if (text) {
      process.stdout.write(text);
      deltas += 1;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  console.log(`\nstream deltas: ${deltas}, usage: ${JSON.stringify(usage)}`);

  // The SDK asks for base64 vectors and decodes them; Hearth serves both encodings.
  const embeddings = await client.embeddings.create({
    model: embedModel,
    input: ["Hearth serves models from your own machine.", "A cat sleeps on the sofa."],
  });
  const dims = embeddings.data[0].embedding.length;
  console.log(`embeddings: ${embeddings.data.length} vectors of ${dims} dimensions`);
}

main().catch((error) => {
  // The SDK's APIError carries the status and Hearth's OpenAI error envelope.
  console.error(`error: ${error.message}`);
  process.exit(1);
});
