#!/usr/bin/env node
// What a request's text costs under `wrangler dev`: the median /v1/classify time for 32 items of 700 and of 8,000
// English characters and of 2,000 CJK characters (all cut to the same MAX_TOKENS budget, so the same forward), and
// the isolate's JS heap before and after N requests of 32 distinct 200-character CJK prompts (each a new BPE word
// for the tokenizer's cache), read through the DevTools protocol (Runtime.getHeapUsage).
//   npm run bench:input [-- --runs 9 --memory-requests 320]   (a few minutes; prints Markdown, writes .cache/bench-input.json)
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startDev } from "./lib/dev-server.mjs";
import { connectInspector } from "./lib/inspector.mjs";

const { values: opt } = parseArgs({
  options: { runs: { type: "string", default: "9" }, "memory-requests": { type: "string", default: "320" } },
});
const RUNS = Number(opt.runs);
const MEMORY_REQUESTS = Number(opt["memory-requests"]);
const KEY = "se_0000000000c1_local-dev-initech-read";
const ADAPTER = "demo/spam-prefix";
const ITEMS = 32; // MAX_ITEMS
const MB = 2 ** 20;

let seed = 12345;
const rand = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const WORDS = "free prize click now meeting lunch tomorrow report budget offer winner claim call the a of to and".split(" ");
const english = (n) => {
  let s = "";
  while (s.length < n) s += WORDS[Math.floor(rand() * WORDS.length)] + " ";
  return s.slice(0, n);
};
const cjk = (n) => Array.from({ length: n }, () => String.fromCodePoint(0x4e00 + Math.floor(rand() * 0x5000))).join("");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dev = await startDev({ state: ".cache/bench-input-state", port: 8973, devArgs: ["--inspector-port", "9273"] });
try {
  const classify = async (texts) => {
    const t0 = performance.now();
    const r = await fetch(dev.base + "/v1/classify", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ items: texts.map((text) => ({ adapter: ADAPTER, text })) }),
      signal: AbortSignal.timeout(120_000),
    });
    if (!r.ok) throw new Error(`classify: ${r.status} ${await r.text()}`);
    const j = await r.json();
    return { ms: performance.now() - t0, truncated: j.results.filter((x) => x.truncated).length };
  };
  await classify(["warm up the backbone"]);
  const cases = [
    ["32 x 700 characters", () => english(700)],
    ["32 x 8,000 characters", () => english(8000)],
    ["32 x 2,000 CJK characters", () => cjk(2000)],
  ];
  const timings = [];
  for (const [name, make] of cases) {
    await classify(Array.from({ length: ITEMS }, make)); // one unmeasured run
    const ms = [];
    let truncated = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await classify(Array.from({ length: ITEMS }, make)); // distinct texts each run
      ms.push(r.ms);
      truncated = r.truncated;
    }
    timings.push({ case: name, median_ms: median(ms), min_ms: Math.min(...ms), truncated });
    process.stderr.write(`${name}: median ${median(ms).toFixed(0)} ms\n`);
  }

  const { cdp, close } = await connectInspector(9273);
  // workerd's inspector does not answer HeapProfiler.collectGarbage (and stops answering after it): the heap is read
  // as found, garbage included, so each figure is an upper bound
  const heap = async () => (await cdp("Runtime.getHeapUsage")).usedSize / MB;
  const before = await heap();
  for (let i = 0; i < MEMORY_REQUESTS; i++) {
    await classify(Array.from({ length: ITEMS }, () => cjk(200)));
    if ((i + 1) % 40 === 0) process.stderr.write(`${i + 1}/${MEMORY_REQUESTS} CJK requests\n`);
  }
  const after = await heap();
  close();
  const memory = { requests: MEMORY_REQUESTS, prompts: MEMORY_REQUESTS * ITEMS, forced_gc: false, heap_before_mb: before, heap_after_mb: after };

  const base = timings[0].median_ms;
  console.log("| request | median | vs 32 x 700 | items truncated |\n|---|---|---|---|");
  for (const t of timings)
    console.log(`| ${t.case} | ${t.median_ms.toFixed(0)} ms | ${(t.median_ms / base).toFixed(2)}x | ${t.truncated}/${ITEMS} |`);
  console.log(
    `\nJS heap (as found, garbage included): ${before.toFixed(1)} MB before, ${after.toFixed(1)} MB after ` +
      `${MEMORY_REQUESTS} requests of ${ITEMS} distinct 200-character CJK prompts (+${(after - before).toFixed(1)} MB)`,
  );
  mkdirSync(".cache", { recursive: true });
  writeFileSync(".cache/bench-input.json", JSON.stringify({ runs: RUNS, timings, memory }, null, 2));
} finally {
  dev.stop();
}
