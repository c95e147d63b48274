#!/usr/bin/env node
// Where a forward's time goes inside ONNX Runtime Web (wasm, 1 thread: what the worker runs): ORT's own profiler,
// summed per operator type over 20 runs of one input shape (after 20 warm-ups), from a fresh session in Node.
//   npm run profile:graph -- [bundle dir] [--tokens 64] [--batch 1] [--past 0]
// Profiling adds its own overhead to every node (about 1.8x on the default graph): read the shares, not the totals.
import * as ort from "onnxruntime-web";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { levelOf, syntheticFeeds } from "./lib/backbone-eval.mjs";

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: { tokens: { type: "string", default: "64" }, batch: { type: "string", default: "1" }, past: { type: "string", default: "0" } },
});
const [T, B, P] = [o.tokens, o.batch, o.past].map(Number);
if (![T, B].every((n) => Number.isInteger(n) && n > 0) || !(Number.isInteger(P) && P >= 0)) {
  console.error("error: --tokens and --batch must be positive integers, --past a non-negative one");
  process.exit(2);
}
const dir = positionals[0] ?? `adapters/backbones/${JSON.parse(readFileSync("adapters/catalog.json", "utf8")).default_backbone}`;
const cfg = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(`${dir}/model.onnx`)), {
  executionProviders: ["wasm"],
  graphOptimizationLevel: levelOf(cfg), // as the worker loads it
  enableProfiling: Boolean(process.env.SOFTEDGE_PROFILE_CHILD),
});
const feeds = syntheticFeeds(ort, cfg, B, T, P);
const RUNS = 20;
for (let i = 0; i < RUNS; i++) await session.run(feeds); // warm-up (wasm tiers up), profiled too: dropped below
const t0 = performance.now();
for (let i = 0; i < RUNS; i++) await session.run(feeds);
const msPerRun = (performance.now() - t0) / RUNS;
// ORT Web prints its profile (Chrome trace events, one per line) through the console it captured at load, when
// profiling ends: a child process does the runs and the parent reads its output
if (process.env.SOFTEDGE_PROFILE_CHILD) {
  console.error(`ms a run (profiled): ${msPerRun.toFixed(2)}`);
  session.endProfiling();
  process.exit(0);
}
const child = spawnSync(process.execPath, process.argv.slice(1), {
  env: { ...process.env, SOFTEDGE_PROFILE_CHILD: "1" },
  encoding: "utf8",
  maxBuffer: 1 << 30,
});
if (child.status !== 0) {
  console.error(`error: the profiled run failed: ${child.stderr.trim().split("\n").at(-1)}`);
  process.exit(1);
}
const nodes = child.stdout
  .split("\n")
  .filter((l) => l.includes('"cat" : "Node"') && l.includes("_kernel_time"))
  .map((l) => JSON.parse(l.trim().replace(/,$/, "")));
const events = nodes.slice(nodes.length / 2); // the second half: the timed runs
const runs = RUNS;
const byOp = new Map();
for (const e of events) {
  const k = e.args.op_name;
  const v = byOp.get(k) ?? { us: 0, nodes: 0 };
  v.us += e.dur;
  v.nodes++;
  byOp.set(k, v);
}
const total = [...byOp.values()].reduce((s, v) => s + v.us, 0);
console.log(
  `${dir}: ${cfg.quantization}, batch ${B} x ${T} tokens after ${P} past: ${events.length / runs} nodes a run, ${msPerRun.toFixed(2)} ms a run unprofiled, ${child.stderr.trim()}`,
);
console.log("| operator | nodes | ms a run (profiled) | share |\n|---|---|---|---|");
for (const [k, v] of [...byOp].sort((a, b) => b[1].us - a[1].us))
  console.log(`| ${k} | ${v.nodes / runs} | ${(v.us / runs / 1000).toFixed(3)} | ${((100 * v.us) / total).toFixed(1)}% |`);
