// Loads the published @github/spark runtime's entry point (spark.js) the way a browser page does:
// it reports its load to /_spark/loaded and installs window.spark; then asks spark.user().
// Usage: node --import ./register.mjs user_scenario.mjs <runtime dist dir> <base url>
import { pathToFileURL } from "node:url";
import path from "node:path";

const [distDir, baseUrl] = process.argv.slice(2);
const sent = [];
const browserFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  const request = browserFetch(new URL(url, baseUrl), init);
  sent.push(request.then((response) => ({ url: String(url), status: response.status })));
  return request;
};
globalThis.window = {
  location: { href: `${baseUrl}/app/index.html?session=secret` },
  performance: { now: () => 345.6 },
  parent: { postMessage: () => {} },
};

await import(pathToFileURL(path.join(distDir, "spark.js")).href);
const seen = {};
seen.user = await window.spark.user();
seen.requests = await Promise.all(sent);

process.stdout.write(JSON.stringify(seen));
