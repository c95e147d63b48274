#!/usr/bin/env -S node --experimental-websocket
// What counts against a Worker isolate's 128 MB, measured inside workerd (`wrangler dev`), not the process:
// ONNX Runtime's wasm memory (from /healthz: its size is its peak, it never shrinks), the JS heap (V8's own count,
// through the inspector, after a full GC) and the parsed-adapter cache, at idle, after the backbone loads, and
// after the worst requests the limits allow with 0, 10 and 100 adapters cached.
//   npm run bench:memory            (prints a Markdown table for BENCHMARKS.md)
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDev } from "./lib/dev-server.mjs";
import { DEV_KEYS } from "./lib/keys.mjs";

const PORT = 8799, INSPECTOR = 9329;
const MB = 2 ** 20;
const key = DEV_KEYS.find((k) => k[1] === "acme" && k[2] === "admin")[0];
const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8"));
const classifiers = catalog.adapters.filter((a) => a.task === "classify").map((a) => a.alias);
const generator = catalog.adapters.find((a) => a.task === "generate").alias;
const spam = readFileSync(join("adapters", catalog.adapters.find((a) => a.alias === classifiers[0]).file));

console.log("bench-memory: starting wrangler dev with the inspector ...");
const dev = await startDev({ state: join(tmpdir(), "softedge-bench-memory"), port: PORT, devArgs: ["--inspector-port", String(INSPECTOR)] });
const req = async (method, path, body, type = "application/json") => {
  const r = await fetch(dev.base + path, { method, headers: { authorization: `Bearer ${key}`, "content-type": type }, body });
  if (!r.ok) {
    console.error(dev.log().slice(-3000));
    dev.stop();
    throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  }
  return r.json();
};

// the worker's inspector (Chrome DevTools protocol): V8's heap figures for the isolate
const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR}/json`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { origin: "http://localhost" } }); // the inspector proxy wants an Origin
await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
let nextId = 1;
const pending = new Map();
ws.onmessage = (m) => { const j = JSON.parse(m.data); pending.get(j.id)?.(j.result); pending.delete(j.id); };
const cdp = (method, params = {}) => new Promise((ok) => { const id = nextId++; pending.set(id, ok); ws.send(JSON.stringify({ id, method, params })); });

const rows = [];
async function measure(stage) {
  await cdp("HeapProfiler.collectGarbage");
  const heap = await cdp("Runtime.getHeapUsage");
  const h = (await (await fetch(`${dev.base}/healthz`)).json()).isolate;
  const row = { stage, wasm: h.wasm_memory_bytes / MB, heap: heap.usedSize / MB, heapTotal: heap.totalSize / MB, cache: h.adapter_cache_bytes / MB, cached: h.adapters_cached };
  rows.push(row);
  console.log(`  ${stage}: wasm ${row.wasm.toFixed(1)} MB, JS heap ${row.heap.toFixed(1)} MB`);
}
const longText = (i) => Array.from({ length: 120 }, (_, j) => `word${(i * 31 + j * 7) % 997} spam offer meeting`).join(" ");
const worst = async (adapters) => {
  await req("POST", "/v1/classify", JSON.stringify({ items: Array.from({ length: 32 }, (_, i) => ({ adapter: adapters[i % adapters.length], text: longText(i) })) }));
  await req("POST", "/v1/generate", JSON.stringify({ adapter: generator, input: longText(99), max_new_tokens: 64, temperature: 1, seed: 3, stop: ["\u0000"] }));
};

await measure("idle (worker started, nothing loaded)");
await req("POST", "/v1/classify", JSON.stringify({ adapter: classifiers[0], text: "Are we still meeting for lunch tomorrow?" }));
await measure("after the backbone loads (one short classify)");
await worst(classifiers);
await measure("worst case (32 x 128-token classify + 64-token generation), default adapters");
const extra = Array.from({ length: 100 }, (_, i) => `acme/mem${String(i).padStart(3, "0")}`);
for (const a of extra) await req("PUT", `/v1/adapters/${a}`, spam, "application/octet-stream");
for (const [n, from] of [[10, 0], [100, 10]]) {
  for (const a of extra.slice(from, n)) await req("POST", "/v1/classify", JSON.stringify({ adapter: a, text: "hello" }));
  await worst([...extra.slice(0, n), ...classifiers]);
  await measure(`worst case, ${n} more adapters cached`);
}
ws.close();
dev.stop();

const f = (x) => x.toFixed(1);
console.log(`\nbench-memory: ${new Date().toISOString()}, backbone ${catalog.default_backbone}, wrangler dev (workerd), MB = 2^20 bytes\n`);
console.log("| stage | wasm memory (peak) | JS heap used | JS heap reserved | adapter cache (entries) | wasm + JS heap reserved |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.stage} | ${f(r.wasm)} | ${f(r.heap)} | ${f(r.heapTotal)} | ${f(r.cache)} (${r.cached}) | ${f(r.wasm + r.heapTotal)} |`);
const peak = Math.max(...rows.map((r) => r.wasm)), total = Math.max(...rows.map((r) => r.wasm + r.heapTotal));
console.log(`\nbudget: wasm peak ${f(peak)} MB <= 80: ${peak <= 80 ? "pass" : "FAIL"}; wasm + JS heap ${f(total)} MB <= 110: ${total <= 110 ? "pass" : "FAIL"}`);
process.exit(0);
