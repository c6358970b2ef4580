// Node module hooks that stand in for what Vite does when it builds a Spark app:
// `import.meta.env` exists (Vite defines it), and nothing else about the
// published runtime's code changes.
export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (url.includes("/@github/spark/") || url.includes("/spark-runtime/")) {
    const source = result.source.toString();
    return { ...result, source: `import.meta.env ??= { DEV: false };\n${source}` };
  }
  return result;
}
