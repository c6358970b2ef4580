// Drives the published @github/spark runtime (KV client and /_spark/db collections)
// against a running edge, the way a Spark app in a browser would, and prints what it saw.
// Usage: node --import ./register.mjs scenario.mjs <runtime dist dir> <base url>
import { pathToFileURL } from "node:url";
import path from "node:path";

const [distDir, baseUrl] = process.argv.slice(2);
// A browser resolves the runtime's relative URLs against the page's origin.
const browserFetch = globalThis.fetch;
globalThis.fetch = (url, init) => browserFetch(new URL(url, baseUrl), init);
// Vite's `define` turns this identifier into the KV base path at build time.
globalThis.BASE_KV_SERVICE_URL = "/_spark/kv";

const { DB, collection } = await import(pathToFileURL(path.join(distDir, "db.js")).href);
const kv = new DB().kv;
const schema = { parse: (data) => data };
const seen = {};

seen.keysAtStart = await kv.getKeys();
await kv.setKey("greeting", { hello: "world", n: [1, 2, 3] });
seen.greeting = await kv.getKey("greeting");
seen.missing = (await kv.getKey("never-set")) ?? "<undefined>";
seen.initialFirst = await kv.getOrSetKey("counter", 1);
seen.initialSecond = await kv.getOrSetKey("counter", 2);
await kv.setKey("counter", 3);
seen.counter = await kv.getKey("counter");
const oddKey = "a/b c?%#é 😀";
await kv.setKey(oddKey, "odd value");
seen.odd = await kv.getKey(oddKey);
await kv.setKey("a string", "just text");
seen.aString = await kv.getKey("a string");
seen.keys = (await kv.getKeys()).sort();
await kv.deleteKey("greeting");
seen.afterDelete = (await kv.getKey("greeting")) ?? "<undefined>";
seen.keysAfterDelete = (await kv.getKeys()).sort();

const todos = collection(schema, "todos");
const first = await todos.insert({ title: "first", done: false });
const second = await todos.insert({ title: "second", done: true });
seen.ids = [first._id, second._id];
seen.all = await todos.getAll();
seen.got = await todos.get(first._id);
seen.updated = await todos.update(first._id, { done: true });
seen.doneQuery = (await todos.query({ where: { field: "done", operator: "==", value: true }, sortBy: { field: "title", direction: "asc" } })).map((t) => t.title);
seen.deleted = await todos.delete(second._id);
seen.allAfterDelete = await todos.getAll();
seen.rawCollectionKeyInDefault = (await kv.getKeys()).includes(first._id);

process.stdout.write(JSON.stringify(seen));
