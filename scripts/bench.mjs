#!/usr/bin/env node
// Edge benchmark: a client against `wrangler dev` (workerd, onnxruntime-web wasm, one thread) and, side by side in
// the same run, the same engine code and ONNX graph in onnxruntime-node (native) inside this process.
//   npm run bench -- [--runs 30] [--warmup 90] [--port 8799]
// Reports warm classification p50/p99 for 16/64/128-token inputs, a 16-item batch over 16 adapters vs one
// adapter, throughput of mixed-adapter batches of 1/4/16/32 items, generation (token 1, ms/token at tokens 2-8, up
// to 32 and to 64), PyTorch eager on the same model and prefix, bytes per adapter, cold start, the worker's memory,
// and the issue's targets as PASS/FAIL lines with their ratios; writes .cache/bench.md, the block between the
// "npm run bench" markers in BENCHMARKS.md, .cache/bench.json and the plots reports/bench-*.png; progress on stderr.
// Loopback only; about a minute.
import { execFileSync } from "node:child_process";
import { readFileSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { startDev } from "./lib/dev-server.mjs";
import { DEV_KEYS } from "./lib/keys.mjs";
import { request } from "./lib/http.mjs";

const args = process.argv.slice(2);
const flag = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const RUNS = Number(flag("--runs", "30"));
const PORT = Number(flag("--port", "8799"));
const WARMUP = Number(flag("--warmup", "90")); // requests before the first measurement
const STATE = ".cache/bench-state";
const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8"));
const BUNDLE = `adapters/backbones/${catalog.default_backbone}`;
const cls = catalog.adapters.find((a) => a.task === "classify");
const gen = catalog.adapters.find((a) => a.task === "generate");

// ---- the engine in Node (esbuild bundles the TypeScript sources; ORT is passed in, so native ORT drives it)
mkdirSync(".cache/bench-engine", { recursive: true });
await build({
  entryPoints: { engine: "scripts/lib/bench-engine-entry.ts" },
  bundle: true,
  format: "esm",
  platform: "node",
  outdir: ".cache/bench-engine",
  external: ["onnxruntime-*", "@huggingface/tokenizers"],
  logLevel: "error",
});
const engine = await import(join(process.cwd(), ".cache/bench-engine/engine.js"));
const BATCH_TOKENS = engine.SETTINGS.MAX_BATCH_TOKENS[0]; // the worker's default pass budget
const ortNode = await import("onnxruntime-node");
const { Tokenizer } = await import("@huggingface/tokenizers");
const cfg = JSON.parse(readFileSync(`${BUNDLE}/config.json`, "utf8"));
const tok = new Tokenizer(JSON.parse(readFileSync(`${BUNDLE}/tokenizer.json`, "utf8")), {});
const session = await ortNode.InferenceSession.create(new Uint8Array(readFileSync(`${BUNDLE}/model.onnx`)), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "basic",
  intraOpNumThreads: 1,
});
const adapterNode = await engine.parseAdapter(new Uint8Array(readFileSync(join("adapters", cls.file))), cfg);
const genNode = await engine.parseAdapter(new Uint8Array(readFileSync(join("adapters", gen.file))), cfg);

// a text whose prompt (template included) is at least n tokens: words taken from the README
const words = readFileSync("README.md", "utf8")
  .split(/\s+/)
  .filter((w) => /^[a-z]+$/.test(w));
function textOf(n, adapter) {
  for (let k = 1; k <= words.length; k++) {
    const text = words.slice(0, k).join(" ");
    const ids = engine.encodePrompt(tok, adapter.template, "text", text, 10_000);
    if (ids.length >= n) return { text, ids };
  }
  throw new Error("README too short for the longest input");
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
/** the figures a row reports from a list of timings (ms) */
const summary = (t) => ({ p50: pct(t, 50), p99: pct(t, 99) });
/** a catalog adapter's training record (adapters/<file>.metrics.json, written by tune) */
const metricsOf = (a) => JSON.parse(readFileSync(join("adapters", a.file.replace(/\.safetensors$/, ".metrics.json")), "utf8"));
async function timeIt(fn, runs = RUNS) {
  for (let i = 0; i < 3; i++) await fn();
  const t = [];
  for (let i = 0; i < runs; i++) {
    const a = performance.now();
    await fn();
    t.push(performance.now() - a);
  }
  return summary(t);
}

// ---- wrangler dev with a fresh local bucket: the default catalog plus 16 aliases for the mixed-adapter batch
const dev = await startDev({ state: STATE, port: PORT, vars: { MAX_TOKENS: 512, MAX_ITEMS: 64 }, seedArgs: ["--bench-aliases", "32"] }); // a00-a15: the mixed batch; a16-a31: cold loads
const { base, stop, rss } = dev;
const ready = dev.readyMs;
const auth = { authorization: `Bearer ${DEV_KEYS.find((k) => k[1] === "acme")[0]}` }; // a local dev key (seeded)
const post = async (path, body) => {
  // classify and generate change nothing on the server: safe to send again after a dropped connection
  const r = await request(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify(body),
    idempotent: true,
  });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r;
};
const memStart = rss();
const c0 = performance.now();
await (await post("/v1/classify", { adapter: cls.alias, text: textOf(16, adapterNode).text })).json();
const cold = performance.now() - c0;

// workerd compiles wasm in tiers (a quick baseline first, the optimised code later, in the background): without
// this warm-up the first measurement (16 tokens) timed the tier-up, reading slower than 64 tokens
for (let i = 0; i < WARMUP; i++) {
  const { text, ids } = textOf([16, 64, 128][i % 3], adapterNode);
  await (await post("/v1/classify", { adapter: cls.alias, text })).json();
  await engine.classifyBatch(ortNode, session, cfg, [{ ids, adapter: adapterNode }], BATCH_TOKENS);
}

const rows = [];
// progress on stderr (the report goes to stdout and .cache/bench.md)
const progress = (what) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${what}`);
progress(`classify through wrangler dev and the engine on native ORT (${RUNS} runs each)`);
const throughput = []; // { items, workerd, native }: one mixed-adapter batch's latency
// where a 64-token classify spends its time inside the worker: the Server-Timing phases of the same requests the
// 64-token row times (performance.now() advances in local workerd; on Cloudflare it does not), medians
const phaseTimes = {};
const keepPhases = (r) => {
  for (const m of (r.headers.get("server-timing") ?? "").matchAll(/(\w+);dur=([\d.]+)/g)) {
    phaseTimes[m[1]] = phaseTimes[m[1]] ?? [];
    phaseTimes[m[1]].push(Number(m[2]));
  }
  return r;
};
// 128: the longest prompt the default adapters read (they record the 128-token budget they were trained with)
for (const n of [16, 64, 128]) {
  const { text, ids } = textOf(n, adapterNode);
  const seen = n === 64 ? keepPhases : (r) => r;
  const w = await timeIt(async () => seen(await post("/v1/classify", { adapter: cls.alias, text })).json());
  const nd = await timeIt(() => engine.classifyBatch(ortNode, session, cfg, [{ ids, adapter: adapterNode }], BATCH_TOKENS));
  rows.push([`classify, ${ids.length} tokens`, w, nd]);
}
// the same request's steps in Node, where the clock advances inside synchronous code (in workerd it moves only across
// awaits): the same engine code on V8, tokenizer and readout included; ORT here is native, so only its share differs
const nodePhases = {};
{
  const { text } = textOf(64, adapterNode);
  const keep = (k, ms) => {
    nodePhases[k] ??= [];
    nodePhases[k].push(ms);
  };
  for (let i = 0; i < RUNS + 3; i++) {
    const t0 = performance.now();
    const ids = engine.encodePrompt(tok, adapterNode.template, "text", text, 128);
    const t1 = performance.now();
    const phases = {};
    await engine.classifyBatch(ortNode, session, cfg, [{ ids, adapter: adapterNode }], BATCH_TOKENS, phases);
    const t2 = performance.now();
    if (i < 3) continue;
    keep("tokenize", t1 - t0);
    keep("assemble", phases.assemble);
    keep("ort", phases.ort);
    keep("readout", t2 - t1 - phases.assemble - phases.ort);
  }
  for (const k of Object.keys(nodePhases)) nodePhases[k] = pct(nodePhases[k], 50);
}
const breakdown = { client: rows[1][1].p50 };
progress("an adapter's first use against cached");
// an adapter's first use in the isolate (alias and version from R2, the artifact read and parsed) against the same
// request once it is cached: one request each for 16 aliases the run has not touched yet
{
  const { text } = textOf(64, adapterNode);
  const cold = [],
    cached = [];
  for (let i = 16; i < 32; i++) {
    const body = { adapter: `acme/bench-a${i}`, text };
    for (const into of [cold, cached]) {
      const a = performance.now();
      const r = await post("/v1/classify", body);
      if (!r.ok) throw new Error(`classify with acme/bench-a${i}: ${r.status} ${await r.text()}`);
      await r.json();
      into.push(performance.now() - a);
    }
  }
  rows.push(["classify 64 tokens, the adapter's first use (R2 read + parse)", summary(cold), {}]);
  rows.push(["classify 64 tokens, the same adapters cached", summary(cached), {}]);
}
for (const [k, v] of Object.entries(phaseTimes)) breakdown[k] = pct(v, 50);
{
  const { text, ids } = textOf(64, adapterNode);
  const mixed = Array.from({ length: 16 }, (_, i) => ({ adapter: `acme/bench-a${String(i).padStart(2, "0")}`, text }));
  const same = mixed.map(() => ({ adapter: cls.alias, text }));
  const adaptersNode = await Promise.all(mixed.map(() => engine.parseAdapter(new Uint8Array(readFileSync(join("adapters", cls.file))), cfg)));
  // the same 16 items through the worker and through the engine on native ORT; mixed = 16 aliases, each its own prefix
  const batchRow = (name, items, nodeAdapters) => [
    name,
    () => timeIt(async () => (await post("/v1/classify", { items })).json(), Math.ceil(RUNS / 3)),
    () =>
      timeIt(
        () =>
          engine.classifyBatch(
            ortNode,
            session,
            cfg,
            nodeAdapters.map((adapter) => ({ ids, adapter })),
            BATCH_TOKENS,
          ),
        Math.ceil(RUNS / 3),
      ),
  ];
  for (const [name, worker, native] of [
    batchRow("batch 16 x 64 tokens, 16 adapters", mixed, adaptersNode),
    batchRow(
      "batch 16 x 64 tokens, 1 adapter",
      same,
      same.map(() => adapterNode),
    ),
  ])
    rows.push([name, await worker(), await native()]);
  // throughput: mixed-adapter batches of 1, 4, 16 and 32 items (the 16 aliases in turn), 64 tokens each
  for (const n of [1, 4, 16, 32]) {
    const items = Array.from({ length: n }, (_, i) => mixed[i % mixed.length]);
    const [, worker, native] = batchRow(
      "",
      items,
      items.map((_, i) => adaptersNode[i % adaptersNode.length]),
    );
    throughput.push({ items: n, workerd: await worker(), native: await native() });
  }
}
progress("generation");
// generation (seeded sampling, stop strings off): token 1 = a request for one new token (prompt included); the
// per-token figures are marginal costs between two lengths of the same seeded sample
let seed = 1;
const genBody = (n) => ({ adapter: gen.alias, input: "cat", max_new_tokens: n, temperature: 1, seed, stop: ["\u0000"] });
const wGen = async (n) => {
  const j = await (await post("/v1/generate", genBody(n))).json();
  return j.tokens;
};
const nGen = async (n) => {
  const ids = engine.encodePrompt(tok, genNode.template, "input", "cat", 128);
  let k = 0;
  // the adapter's no-repeat rule, as the API applies it by default: both sides decode by the same rule
  const noRepeatNgram = genNode.generation.no_repeat_ngram_size ?? 0;
  for await (const _ of engine.generate(ortNode, session, cfg, genNode, ids, (x) => tok.decode(x), {
    maxNewTokens: n,
    temperature: 1,
    seed,
    noRepeatNgram,
  }))
    k++;
  return k;
};
// the per-token figures need a sample that runs the whole length without ending, in the worker and on native ORT
// alike: the first seed whose samples both do (64 tokens, the default MAX_NEW_TOKENS; 32 when no seed below 120
// gets there). Native and wasm kernels round differently, so the same seed can end earlier on one of them.
let LONG = 64;
const seedFor = async (n) => {
  for (seed = 1; seed < 120; seed++) if ((await nGen(n)) === n && (await wGen(n)) === n) return true;
  return false;
};
if (!(await seedFor(LONG))) {
  LONG = 32;
  if (!(await seedFor(LONG))) throw new Error("no seeded sample reached 32 tokens in both: the per-token figures would be wrong");
}
const g = Math.ceil(RUNS / 2);
// a request for 1, 8, 16, LONG/2 and LONG tokens: the cost of a token at position 8, LONG/2 and LONG is the marginal
// cost over the segment that ends there (2-8, 17-LONG/2, LONG/2+1-LONG)
const lens = [1, 8, 16, LONG / 2, LONG];
const wT = [],
  nT = [];
for (const n of lens) wT.push(await timeIt(() => wGen(n), g));
for (const n of lens) nT.push(await timeIt(() => nGen(n), g));
rows.push(["generate, token 1 (prompt + 1 token)", wT[0], nT[0]]);
const per = (a, b, k) => ({ p50: (b.p50 - a.p50) / k, p99: NaN });
const segment = (i, j) => [
  `generate, ms/token at tokens ${lens[i] + 1}-${lens[j]}`,
  per(wT[i], wT[j], lens[j] - lens[i]),
  per(nT[i], nT[j], lens[j] - lens[i]),
];
rows.push(segment(0, 1), ...(LONG / 2 > 16 ? [segment(2, 3)] : []), segment(3, 4)); // LONG 32: no 17-16 segment
const memEnd = rss();
stop();

progress("the engine alone inside workerd, the roofline, cold start inside workerd");
// ---- the engine alone inside workerd (scripts/bench-worker: the same engine and ORT Web, no API, auth or JSON around
// it; timed inside the worker) and the roofline: the peak of a plain matrix multiply in the same runtime
const engineDev = await startDev({ state: ".cache/bench-worker-state", port: PORT + 1, config: "scripts/bench-worker/wrangler.toml", seed: false });
const call = async (path, body, headers = { "content-type": "application/json" }) => {
  // each call loads a model or times one, replacing what an earlier one loaded: sending it again changes nothing
  const r = await request(engineDev.base + path, {
    method: "POST",
    headers,
    body: typeof body === "object" && !(body instanceof Uint8Array) ? JSON.stringify(body) : body,
    idempotent: true,
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`bench worker ${path}: ${j.error}`);
  return j;
};
// cold start, split: the first session in a fresh isolate (a one-node graph) is ORT's init; then the backbone's own
// session creation (graph optimisation, constant folding, prepacking), with the model bytes already in hand
const [mmM, mmK, mmN] = [16 * 64, cfg.hidden_size, cfg.intermediate_size];
const mmFile = (dtype) => `.cache/bench-matmul-${dtype}.onnx`;
for (const dtype of ["float32", "int8"])
  execFileSync("scripts/py", ["matmul_graph", "--m", String(mmM), "--k", String(mmK), "--n", String(mmN), "--dtype", dtype, "--out", mmFile(dtype)], {
    stdio: "ignore",
  });
const { ms: ortInitMs } = await call("/matmul-model", readFileSync(mmFile("float32")), { "content-type": "application/octet-stream" });
const { ms: sessionMs } = await call("/backbone", readFileSync(`${BUNDLE}/model.onnx`), {
  "x-config": Buffer.from(JSON.stringify(cfg)).toString("base64"),
});
for (let i = 0; i < 16; i++) await call(`/adapter?name=a${i}`, readFileSync(join("adapters", cls.file)));
const prompt = catalog.adapters.find((a) => a.task === "classify" && metricsOf(a).method === "prompt");
if (prompt) await call("/adapter?name=prompt", readFileSync(join("adapters", prompt.file)));
// `runs` timings after 3 warm-up ones, from a bench-worker route; short calls are timed in groups of 10 (workerd's
// clock ticks in whole milliseconds)
const timedInWorkerd = async (path, body, runs, group) => summary((await call(path, { ...body, runs: runs + 3, group })).ms.slice(3));
const inWorkerd = (items, runs) => timedInWorkerd("/classify", { items, maxBatchTokens: BATCH_TOKENS }, runs, items.length === 1 ? 10 : 1);
await inWorkerd([{ adapter: "a0", ids: textOf(16, adapterNode).ids }], WARMUP); // wasm tier-up, as for the API
const engineRows = {};
for (const n of [16, 64, 128]) {
  const { ids } = textOf(n, adapterNode);
  engineRows[`classify, ${ids.length} tokens`] = await inWorkerd([{ adapter: "a0", ids }], RUNS);
}
const ids64 = textOf(64, adapterNode).ids;
const items16 = (mixed) => Array.from({ length: 16 }, (_, i) => ({ adapter: mixed ? `a${i}` : "a0", ids: ids64 }));
engineRows["batch 16 x 64 tokens, 16 adapters"] = await inWorkerd(items16(true), Math.ceil(RUNS / 3));
engineRows["batch 16 x 64 tokens, 1 adapter"] = await inWorkerd(items16(false), Math.ceil(RUNS / 3));
// a prompt adapter as its compiled KV prefix against no prefix, and against the same soft prompt re-encoded on every
// request (this graph takes token ids, not embeddings: that costs a forward over P more positions, measured as such)
const forwardRows = [];
if (prompt) {
  const P = (await engine.parseAdapter(new Uint8Array(readFileSync(join("adapters", prompt.file))), cfg)).virtualTokens;
  const fwd = (ids, adapter) => timedInWorkerd("/forward", { ids, adapter }, RUNS, 10);
  const longer = textOf(64 + P, adapterNode).ids.slice(0, ids64.length + P);
  forwardRows.push([`forward ${ids64.length} tokens, no adapter`, await fwd(ids64, null)]);
  forwardRows.push([`forward ${ids64.length} tokens behind ${prompt.alias}'s compiled KV prefix (P=${P})`, await fwd(ids64, "prompt")]);
  forwardRows.push([`forward ${longer.length} tokens, no adapter (the soft prompt re-encoded per request)`, await fwd(longer, null)]);
}
// roofline: a [16*64, hidden] x [hidden, intermediate] multiply (the forward's largest shape), fp32 and int8
const peak = {};
for (const dtype of ["float32", "int8"]) {
  await call("/matmul-model", readFileSync(mmFile(dtype)), { "content-type": "application/octet-stream" });
  const { ms } = await call("/matmul", { dims: [mmM, mmK], dtype: dtype === "int8" ? "uint8" : "float32", runs: 25 });
  peak[dtype] = (2 * mmM * mmK * mmN) / pct(ms.slice(5), 50) / 1e6; // GFLOP/s (int8: GOP/s)
}
engineDev.stop();

progress("PyTorch eager");
// PyTorch eager on the same backbone weights and adapter, batch 1, one thread (scripts/softedge/bench_eager.py)
const eager = JSON.parse(
  execFileSync("scripts/py", ["bench_eager", join("adapters", cls.file), "--runs", String(RUNS), "--tokens", "16,64,128"], { encoding: "utf8" }),
);

const f = (x) => (x === undefined || Number.isNaN(x) ? "n/a" : x.toFixed(1));
const onnxBytes = statSync(`${BUNDLE}/model.onnx`).size;
const storage = catalog.adapters.map((a) => {
  const m = metricsOf(a);
  const bytes = Object.fromEntries(Object.entries(m.storage ?? {}).map(([dtype, v]) => [dtype, v.bytes]));
  return { alias: a.alias, method: m.method, readout: m.readout ?? "generation", p: m.virtual_tokens, bytes };
});
const row = (name) => rows.find(([n]) => n.startsWith(name));
const [c64, mixed16, one16, early, late] = [
  row("classify, 64"),
  row("batch 16 x 64 tokens, 16"),
  row("batch 16 x 64 tokens, 1 "),
  row("generate, ms/token at tokens 2-8"),
  row(`generate, ms/token at tokens ${LONG / 2 + 1}-`),
];
// the multiply-adds of one classification forward of B x T tokens behind a P-token KV prefix, x2 (FLOPs): the
// projections and MLP of every token, attention over prefix + prompt, the head on the last position
const flopsOf = (B, T, P) => {
  const d = cfg.hidden_size,
    q = cfg.num_heads * cfg.head_dim,
    kv = cfg.num_kv_heads * cfg.head_dim;
  const perToken = d * q + 2 * d * kv + q * d + 3 * d * cfg.intermediate_size;
  const attention = 2 * B * cfg.num_heads * T * (P + T) * cfg.head_dim;
  return 2 * (cfg.num_layers * (B * T * perToken + attention) + B * d * cfg.vocab_size);
};
const forwardFlops = flopsOf(16, ids64.length, adapterNode.virtualTokens);
const achieved = forwardFlops / engineRows["batch 16 x 64 tokens, 16 adapters"].p50 / 1e6;
const peakBest = Math.max(peak.float32, peak.int8);
// The fastest these forwards could run in this runtime: every FLOP at the plain multiply's peak, nothing else (no
// attention overhead, no elementwise ops). A ratio target below this floor cannot be met by any graph ORT Web runs;
// only faster wasm kernels would move it.
const floorMs = (B, T) => flopsOf(B, T, adapterNode.virtualTokens) / peakBest / 1e6;
const [floor64, floor16x64] = [floorMs(1, ids64.length), floorMs(16, ids64.length)];
// the issue's targets, each a pass/fail line with its ratio (BENCHMARKS.md; the 2-core machine is noisy: one run)
const target = (what, ratio, limit, cmp = "<=", floor = undefined) =>
  `${(cmp === "<=" ? ratio <= limit : ratio < limit) ? "PASS" : "FAIL"}  ${what}: ${ratio.toFixed(2)}x (target ${cmp} ${limit}x)` +
  (floor === undefined ? "" : `; at the in-workerd multiply peak it would still be ${floor.toFixed(2)}x`);
const targets = [
  target("classify 64 tokens, workerd / native onnxruntime-node", c64[1].p50 / c64[2].p50, 3, "<=", floor64 / c64[2].p50),
  target("batch 16 x 64, workerd / native onnxruntime-node", mixed16[1].p50 / mixed16[2].p50, 2.5, "<=", floor16x64 / mixed16[2].p50),
  target(
    "classify 64 tokens, engine alone in workerd (no HTTP) / native onnxruntime-node",
    engineRows[c64[0]].p50 / c64[2].p50,
    3,
    "<=",
    floor64 / c64[2].p50,
  ),
  target(
    "batch 16 x 64, engine alone in workerd (no HTTP) / native onnxruntime-node",
    engineRows[mixed16[0]].p50 / mixed16[2].p50,
    2.5,
    "<=",
    floor16x64 / mixed16[2].p50,
  ),
  target(
    "classify 64 tokens, workerd / PyTorch eager (same model and prefix, batch 1)",
    c64[1].p50 / eager.ms["64"],
    1,
    "<",
    floor64 / eager.ms["64"],
  ),
  target("16 x 64 batch over 16 adapters / over one adapter (workerd)", mixed16[1].p50 / one16[1].p50, 1.1),
  ...(forwardRows.length
    ? [target("a compiled prompt adapter / no adapter (engine alone in workerd, one forward)", forwardRows[1][1].p50 / forwardRows[0][1].p50, 1.05)]
    : []),
  target(`generation ms/token at tokens ${LONG / 2 + 1}-${LONG} / at tokens 2-8 (workerd)`, late[1].p50 / early[1].p50, 1.3),
  `${achieved >= 0.5 * peakBest ? "PASS" : "FAIL"}  16 x 64 batch, engine in workerd / matrix-multiply peak in workerd (the higher of fp32 and int8): ` +
    `${((100 * achieved) / peakBest).toFixed(0)}% (target >= 50%)`,
  `${cold <= 300 ? "PASS" : "FAIL"}  first classify of a fresh isolate (backbone from R2, session; the isolate answered /healthz first): ${cold.toFixed(0)} ms (target <= 300 ms)`,
];
const lines = [
  `bench: backbone ${cfg.id} (${cfg.quantization}), adapter ${cls.alias}; ${RUNS} runs (batches: ${Math.ceil(RUNS / 3)}) after ${WARMUP} warm-up requests, ${new Date().toISOString()}`,
  "",
  "| measurement | wrangler dev p50 ms | p99 ms | engine alone in workerd p50 ms | onnxruntime-node p50 ms | p99 ms | ratio p50 (wrangler dev / node) |",
  "|---|---|---|---|---|---|---|",
  ...rows.map(
    ([n, w, nd]) =>
      `| ${n} | ${f(w.p50)} | ${f(w.p99)} | ${f(engineRows[n]?.p50)} | ${f(nd.p50)} | ${f(nd.p99)} | ${nd.p50 ? `${(w.p50 / nd.p50).toFixed(1)}x` : "n/a"} |`,
  ),
  "",
  "| engine alone in workerd | p50 ms | p99 ms |",
  "|---|---|---|",
  ...forwardRows.map(([n, t]) => `| ${n} | ${f(t.p50)} | ${f(t.p99)} |`),
  "",
  `roofline (engine alone in workerd, 16 x 64 tokens over 16 adapters): ${(forwardFlops / 1e9).toFixed(2)} GFLOP a forward in ` +
    `${f(engineRows["batch 16 x 64 tokens, 16 adapters"].p50)} ms = ${achieved.toFixed(1)} GFLOP/s; a plain [${mmM}, ${mmK}] x ` +
    `[${mmK}, ${mmN}] multiply in ORT Web inside workerd: ${peak.float32.toFixed(1)} GFLOP/s fp32, ${peak.int8.toFixed(1)} GOP/s int8 (MatMulInteger); ` +
    `at that peak, with nothing else, a 64-token classify would take ${floor64.toFixed(1)} ms and a 16 x 64 batch ${floor16x64.toFixed(1)} ms (the floor for this runtime's kernels)`,
  "",
  `PyTorch ${eager.torch} eager, batch 1, ${eager.threads} thread, same backbone weights and adapter: classify 16 / 64 / 128 tokens ` +
    `${eager.ms["16"]} / ${eager.ms["64"]} / ${eager.ms["128"]} ms (median of ${RUNS})`,
  "",
  `where a 64-token classify's time goes (medians, workerd locally; Server-Timing): client ${f(breakdown.client)} ms = ` +
    `handler [adapter lookup ${f(breakdown.adapter)}, tokenize ${f(breakdown.tokenize)}, inputs and KV prefix assembly ` +
    `${f(breakdown.assemble)}, ONNX Runtime ${f(breakdown.ort)}, readout ${f(breakdown.readout)}] + outside the handler ` +
    `(HTTP through wrangler's proxy, key check, validation, JSON) ${f(breakdown.client - ["adapter", "tokenize", "inference"].reduce((a, k) => a + (breakdown[k] ?? 0), 0))}`,
  `the same steps in Node (same engine code on V8, native ORT; medians): tokenize ${nodePhases.tokenize.toFixed(2)}, inputs and KV ` +
    `prefix assembly ${nodePhases.assemble.toFixed(2)}, ONNX Runtime (native) ${nodePhases.ort.toFixed(2)}, readout ${nodePhases.readout.toFixed(2)} ms`,
  "",
  "throughput, mixed-adapter batches of 64-token items (batch p50; items/s = items / p50):",
  "",
  "| items | workerd ms | workerd items/s | onnxruntime-node ms | onnxruntime-node items/s |",
  "|---|---|---|---|---|",
  ...throughput.map(
    (t) =>
      `| ${t.items} | ${f(t.workerd.p50)} | ${f((1000 * t.items) / t.workerd.p50)} | ${f(t.native.p50)} | ${f((1000 * t.items) / t.native.p50)} |`,
  ),
  "",
  `storage per adapter (the catalog's metrics.json, written by tune; % of the int8 backbone's model.onnx, ${(onnxBytes / 2 ** 20).toFixed(2)} MiB):`,
  "",
  "| adapter | method, readout | P | fp32 bytes | fp16 bytes (served) | int8 bytes | int8 / backbone |",
  "|---|---|---|---|---|---|---|",
  ...storage.map(
    (a) =>
      `| ${a.alias} | ${a.method}, ${a.readout} | ${a.p} | ${a.bytes.float32 ?? "n/a"} | ${a.bytes.float16 ?? "n/a"} | ${a.bytes.int8 ?? "n/a"} | ${a.bytes.int8 ? ((100 * a.bytes.int8) / onnxBytes).toFixed(2) + "%" : "n/a"} |`,
  ),
  "",
  `cold start: wrangler dev up in ${(ready / 1000).toFixed(1)} s; first classify (backbone from R2 + session; ORT's init starts with the isolate, which answered wrangler dev's /healthz wait first) ${f(cold)} ms, ` +
    `and inside workerd (the bench worker, model bytes in hand): ORT init ${f(ortInitMs)} ms, then the backbone's session creation ${f(sessionMs)} ms`,
  `workerd memory (RSS): ${memStart.toFixed(0)} MB after start, ${memEnd.toFixed(0)} MB at the end`,
  "",
  'targets (issue "Performance"):',
  ...targets,
];
console.log(lines.join("\n"));
writeFileSync(".cache/bench.md", lines.join("\n") + "\n");
// BENCHMARKS.md: this run replaces the block between the markers; the notes around it are written by people
const BEGIN = "<!-- npm run bench: begin -->",
  END = "<!-- npm run bench: end -->";
const doc = readFileSync("BENCHMARKS.md", "utf8");
if (doc.includes(BEGIN) && doc.includes(END)) {
  const updated = `${doc.slice(0, doc.indexOf(BEGIN) + BEGIN.length)}\n${lines.join("\n")}\n${doc.slice(doc.indexOf(END))}`;
  writeFileSync("BENCHMARKS.md.tmp", updated);
  renameSync("BENCHMARKS.md.tmp", "BENCHMARKS.md");
  progress("wrote the run into BENCHMARKS.md");
} else progress(`BENCHMARKS.md has no ${BEGIN} ... ${END} block: the run is in .cache/bench.md only`);
// the figures for the plots (scripts/softedge/bench_plots.py): latency vs input length, throughput vs batch size,
// generation cost by position
const results = {
  backbone: cfg.id,
  roofline: { flops: forwardFlops, achieved_gflops: achieved, peak_gflops: peak, floor_ms: { "1x64": floor64, "16x64": floor16x64 } },
  classify: [16, 64, 128].map((n) => ({
    tokens: n,
    workerd: row(`classify, ${n}`)?.[1].p50,
    native: row(`classify, ${n}`)?.[2].p50,
    engine: engineRows[row(`classify, ${n}`)?.[0]]?.p50,
    eager: eager.ms[String(n)],
  })),
  throughput: throughput.map((t) => ({ items: t.items, workerd: t.workerd.p50, native: t.native.p50 })),
  generation: rows
    .filter(([n]) => n.startsWith("generate, ms/token"))
    .map(([n, w, nd]) => ({ tokens: n.replace("generate, ms/token at tokens ", ""), workerd: w.p50, native: nd.p50 })),
};
writeFileSync(".cache/bench.json", JSON.stringify(results, null, 2) + "\n");
execFileSync("scripts/py", ["bench_plots", ".cache/bench.json", "--out", "reports"], { stdio: "inherit" });
process.exit(0);
