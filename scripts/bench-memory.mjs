#!/usr/bin/env node
// The whole isolate's memory under `wrangler dev` (what counts against Workers' 128 MB): the V8 heap and the
// ArrayBuffer backing stores read through the DevTools protocol (Runtime.getHeapUsage), ONNX Runtime's WebAssembly
// memory and the adapter cache from /healthz, at each stage: idle, after
// the first classify (backbone loaded), after the worst requests the limits allow (MAX_ITEMS x MAX_TOKENS classify,
// MAX_NEW_TOKENS generation), with 10, 100 and 250 more adapters loaded (250 fill the adapter cache to its bound). Budget: wasm <= 80 MB, whole isolate <= 110 MB.
//   npm run bench:memory            (about a minute; prints a Markdown table, writes .cache/bench-memory.json)
import { writeFileSync } from "node:fs";
import { startDev } from "./lib/dev-server.mjs";
import { connectInspector } from "./lib/inspector.mjs";
import { request } from "./lib/http.mjs";

const KEY = "se_0000000000a2_local-dev-acme-read";
const MB = 2 ** 20;
const BUDGET = { wasm: 80, isolate: 110 };
const dev = await startDev({
  state: ".cache/bench-memory-state",
  port: 8941,
  devArgs: ["--inspector-port", "9241"],
  seedArgs: ["--bench-aliases", "250"],
});
try {
  const { cdp, close } = await connectInspector(9241);
  const post = async (path, body) => {
    // classify and generate change nothing on the server: safe to send again after a dropped connection
    const r = await request(dev.base + path, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      idempotent: true,
    });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  const limits = { items: 32, tokens: 128, newTokens: 64 }; // src/config.ts defaults (MAX_ITEMS, MAX_TOKENS, MAX_NEW_TOKENS)
  const long = (i) => Array.from({ length: 120 }, (_, j) => `word${(i * 31 + j * 7) % 997} spam offer meeting`).join(" ");
  const worst = async (adapters) => {
    await post("/v1/classify", {
      items: Array.from({ length: limits.items }, (_, i) => ({ adapter: adapters[i % adapters.length], text: long(i) })),
    });
    await post("/v1/generate", {
      adapter: "demo/define-prefix",
      input: long(99),
      max_new_tokens: limits.newTokens,
      temperature: 1,
      seed: 3,
      stop: ["\u0000"],
    });
  };
  const rows = [];
  // a forced GC first, where workerd's inspector offers one (else the heap figure includes garbage: an upper bound)
  let gc = await cdp("HeapProfiler.enable", {}, 5_000).then(
    () => true,
    () => false,
  );
  const measure = async (stage) => {
    if (gc) await cdp("HeapProfiler.collectGarbage", {}, 5_000).catch(() => (gc = false));
    const h = await cdp("Runtime.getHeapUsage");
    const iso = (await (await request(`${dev.base}/healthz`)).json()).isolate;
    const row = {
      stage,
      js_heap_mb: h.usedSize / MB,
      backing_stores_mb: h.backingStorageSize / MB,
      wasm_mb: iso.wasm_memory_bytes / MB,
      adapter_cache_mb: iso.adapter_cache_bytes / MB,
      adapters_cached: iso.adapters_cached,
    };
    // WebAssembly memory is not among the backing stores the inspector reports (5.9 MB of them beside 57.6 MB of wasm
    // right after load): the three add up
    row.isolate_mb = row.js_heap_mb + row.backing_stores_mb + row.wasm_mb;
    rows.push(row);
    process.stderr.write(`${stage}: isolate ${row.isolate_mb.toFixed(1)} MB\n`);
  };
  const catalog = (await import("../adapters/catalog.json", { with: { type: "json" } })).default;
  const classifiers = catalog.adapters.filter((a) => a.task === "classify").map((a) => a.alias);
  const extra = Array.from({ length: 250 }, (_, k) => `acme/bench-a${String(k).padStart(2, "0")}`);
  await measure("idle (no request yet)");
  await post("/v1/classify", { adapter: classifiers[0], text: "hello" });
  await measure("after one short classify (backbone loaded)");
  await worst(classifiers);
  await measure(`after ${limits.items} x ${limits.tokens}-token classify + ${limits.newTokens}-token generation`);
  for (const [n, from] of [
    [10, 0],
    [100, 10],
    [250, 100],
  ]) {
    // 250: past ADAPTER_CACHE_BYTES, the cache full
    for (const a of extra.slice(from, n)) await post("/v1/classify", { adapter: a, text: "hello" });
    await worst([...extra.slice(0, n), ...classifiers]);
    await measure(`worst requests again, ${n} more adapters loaded`);
  }
  close();
  const peak = (k) => Math.max(...rows.map((r) => r[k]));
  const table = [
    "| stage | JS heap | ArrayBuffers | wasm | adapter cache (adapters) | isolate |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.stage} | ${r.js_heap_mb.toFixed(1)} MB | ${r.backing_stores_mb.toFixed(1)} MB | ${r.wasm_mb.toFixed(1)} MB | ` +
        `${r.adapter_cache_mb.toFixed(1)} MB (${r.adapters_cached}) | ${r.isolate_mb.toFixed(1)} MB |`,
    ),
  ];
  const verdict = [
    `wasm peak ${peak("wasm_mb").toFixed(1)} MB (budget ${BUDGET.wasm}): ${peak("wasm_mb") <= BUDGET.wasm ? "PASS" : "FAIL"}`,
    `isolate peak ${peak("isolate_mb").toFixed(1)} MB (budget ${BUDGET.isolate}, limit 128): ${peak("isolate_mb") <= BUDGET.isolate ? "PASS" : "FAIL"}`,
  ];
  console.log([...table, "", `JS heap ${gc ? "after a forced GC" : "as found (no forced GC: an upper bound)"}.`, ...verdict].join("\n"));
  writeFileSync(".cache/bench-memory.json", JSON.stringify({ rows, budget: BUDGET, verdict }, null, 2));
} finally {
  dev.stop();
}
