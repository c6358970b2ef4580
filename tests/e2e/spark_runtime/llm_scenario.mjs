// Drives the published @github/spark runtime's spark.llm against a running edge, the way a
// Spark app in a browser would, and prints what it saw.
// Usage: node --import ./register.mjs llm_scenario.mjs <runtime dist dir> <base url>
import { pathToFileURL } from "node:url";
import path from "node:path";

const [distDir, baseUrl] = process.argv.slice(2);
const browserFetch = globalThis.fetch;
globalThis.fetch = (url, init) => browserFetch(new URL(url, baseUrl), init);

const { llm, llmPrompt } = await import(pathToFileURL(path.join(distDir, "llm.js")).href);
const seen = {};

seen.text = await llm(llmPrompt`Say ${"hello"} to the user`);
seen.json = JSON.parse(await llm("List three colours as a JSON object", "gpt-4o-mini", true));
seen.claude = await llm("Hi", "claude-3-haiku");
try {
  await llm("Hi", "no-such-model");
  seen.error = "<none>";
} catch (error) {
  seen.error = error.message;
}

process.stdout.write(JSON.stringify(seen));
