// One run of one agent task through the Vercel AI SDK's multi-step tool loop (bench/agents.py
// writes the job on stdin and reads one JSON line back). The tool runs here, in Node, with the
// same behaviour as bench/agent_tasks.py; what matters is the loop the SDK drives.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, jsonSchema, stepCountIs, tool } from 'ai';

const job = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));

const capitals = { australia: 'Canberra', canada: 'Ottawa', japan: 'Tokyo', brazil: 'Brasília' };
const factors = { 'km:miles': 0.621371, 'miles:km': 1.609344, 'kg:lb': 2.204623, 'lb:kg': 0.453592 };
const tools = {
  weather: ({ city }) => `It is sunny and 21 C in ${city}.`,
  arithmetic: ({ expression }) => (/^[\d\s+\-*/().]+$/.test(expression)
    ? String(Function(`"use strict"; return (${expression});`)()) : 'error: only + - * / on numbers'),
  conversion: ({ value, from_unit, to_unit }) => {
    const factor = factors[`${from_unit.trim().toLowerCase()}:${to_unit.trim().toLowerCase()}`];
    return factor ? `${value} ${from_unit} = ${(value * factor).toFixed(2)} ${to_unit}` : `error: cannot convert ${from_unit} to ${to_unit}`;
  },
  lookup: ({ country }) => capitals[country.trim().toLowerCase()] ?? `unknown country: ${country}`,
};

const provider = createOpenAICompatible({ name: 'hearth', baseURL: job.base, apiKey: job.key });
const result = await generateText({
  model: provider(job.model),
  system: job.instructions,
  prompt: job.question,
  seed: job.seed,
  maxOutputTokens: job.maxTokens,
  tools: {
    [job.tool]: tool({ description: job.description, inputSchema: jsonSchema(job.parameters), execute: tools[job.task] }),
  },
  stopWhen: stepCountIs(job.turns),
  // A tool call first; afterwards the model chooses (the SDK's default, auto).
  prepareStep: ({ stepNumber }) => (stepNumber === 0 ? { toolChoice: 'required' } : {}),
});
const calls = result.steps.flatMap((step) => step.toolCalls.map((c) => ({ toolName: c.toolName, input: c.input })));
console.log(JSON.stringify({ steps: result.steps.length, text: result.text, finishReason: result.finishReason, calls }));
