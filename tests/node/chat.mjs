// One chat call with the official Node client, as text-generation-webui's docs show it.
// OPENAI_API_BASE and OPENAI_MODEL come from the test; prints the reply as JSON.
import OpenAI from "openai";

const client = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY,
  baseURL: process.env.OPENAI_API_BASE,
});
const response = await client.chat.completions.create({
  model: process.env.OPENAI_MODEL,
  messages: [{ role: "user", content: "Hello!" }],
  max_tokens: 8,
});
console.log(JSON.stringify({ content: response.choices[0].message.content, usage: response.usage }));
