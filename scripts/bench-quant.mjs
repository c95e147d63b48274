#!/usr/bin/env node
// Chooses the int8 scheme by measurement: builds the same backbone as fp32 and each int8 scheme
// (scripts/softedge/export/quantize.py), then times them in onnxruntime-web (wasm, 1 thread: what the worker runs) and
// onnxruntime-node, scores each on held-out windows against PyTorch fp32, and reads the wasm memory each one
// takes to load and at its peak under the worker's largest pass (each in a fresh process: wasm memory never shrinks).
//   npm run bench:quant -- [weights (run dir or .safetensors)] [--tokenizer DIR] [--runs 30]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openSession, decodeWindows, compare, syntheticFeeds } from "./lib/backbone-eval.mjs";

const args = process.argv.slice(2);
const flag = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args.splice(i, 2)[1] : d;
};
const tokenizer = flag("--tokenizer", ".cache/tokenizer");
const runs = Number(flag("--runs", "30"));
const weights = args[0] ?? `adapters/backbones/${JSON.parse(readFileSync("adapters/catalog.json", "utf8")).default_backbone}/weights.safetensors`;
const out = ".cache/bench-quant";
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const py = (...a) => {
  const r = spawnSync("scripts/py", a, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) {
    console.error(`error: scripts/py ${a.join(" ")} failed`);
    process.exit(2);
  }
  return r.stdout;
};
const bundles = {};
// the isolate's wasm budget (BENCHMARKS.md, memory), under a pass of MAX_BATCH_TOKENS slots (src/config.ts default)
const WASM_BUDGET_MB = 80,
  PASS_SLOTS = 1024;
for (const q of ["none", ...py("bundle", "--list-quant").trim().split("\n")]) {
  const dir = join(out, q);
  py("bundle", "--weights", weights, "--tokenizer", tokenizer, "--out", dir, "--quant", q, "--name", "bench");
  bundles[q] = join(
    dir,
    readdirSync(dir).find((d) => !d.startsWith(".")),
  );
}
py("fixtures", "backbone", bundles["weight-only"], "--out", join(out, "fixture.json"), "--windows", "32", "--seq", "64");
const fixture = JSON.parse(readFileSync(join(out, "fixture.json"), "utf8"));

async function median(fn) {
  for (let i = 0; i < 3; i++) await fn();
  const t = [];
  for (let i = 0; i < runs; i++) {
    const a = performance.now();
    await fn();
    t.push(performance.now() - a);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

const rows = [];
for (const [q, dir] of Object.entries(bundles)) {
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  for (const backend of ["web", "node"]) {
    const s = await openSession(join(dir, "model.onnx"), backend);
    const mem =
      backend === "web"
        ? JSON.parse(
            execFileSync("node", ["scripts/lib/wasm-memory.mjs", join(dir, "model.onnx"), "--slots", String(PASS_SLOTS)], { encoding: "utf8" }),
          )
        : null;
    const acc = compare(fixture, await decodeWindows(s, cfg, fixture));
    const run = (B, T, S) => {
      const f = syntheticFeeds(s.ort, cfg, B, T, S);
      return () => s.session.run(f);
    };
    rows.push({
      graph: q,
      backend,
      mb: +(statSync(join(dir, "model.onnx")).size / 1e6).toFixed(2),
      "wasm MB at load": mem ? +(mem.load_bytes / 2 ** 20).toFixed(1) : "",
      "wasm MB peak": mem ? +(mem.peak_bytes / 2 ** 20).toFixed(1) : "",
      "1x64 ms": +(await median(run(1, 64, 0))).toFixed(2),
      "16x64 ms": +(await median(run(16, 64, 0))).toFixed(2),
      "decode@64 ms": +(await median(run(1, 1, 64))).toFixed(2),
      ppl: +acc.ppl.toFixed(3),
      "ppl/fp32": +(acc.ppl / acc.fp32_ppl).toFixed(4),
      top1: +acc.top1_agreement.toFixed(4),
    });
  }
}
console.log(`bench-quant: ${weights}, ${fixture.windows}x${fixture.seq} held-out tokens, median of ${runs} runs`);
const cols = Object.keys(rows[0]);
const table = [`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${cols.map((c) => r[c]).join(" | ")} |`)];
console.log(table.join("\n"));
// the rule: among int8 graphs meeting the accuracy targets (top-1 >= 98%, perplexity within +3% of fp32) whose
// wasm peak stays within WASM_BUDGET_MB, the fastest in the worker's runtime (onnxruntime-web) on the edge's two
// workloads together: a 16-item batch plus a 32-token generation (32 decode steps)
const work = (r) => r["16x64 ms"] + 32 * r["decode@64 ms"];
const ok = rows.filter(
  (r) => r.backend === "web" && r.graph !== "none" && r.top1 >= 0.98 && r["ppl/fp32"] <= 1.03 && r["wasm MB peak"] <= WASM_BUDGET_MB,
);
const choice = ok.sort((a, b) => work(a) - work(b))[0]?.graph ?? null;
console.log(choice ? `choice: ${choice}` : "choice: none of the int8 graphs meets the accuracy targets within the wasm budget");
const result = {
  weights,
  wasm_budget_mb: WASM_BUDGET_MB,
  pass_slots: PASS_SLOTS,
  fixture: { windows: fixture.windows, seq: fixture.seq },
  runs,
  rows,
  table: table.join("\n"),
  choice,
};
writeFileSync(join(out, "results.json"), JSON.stringify(result, null, 2) + "\n");
// no silent fallback to the fp32 graph (four times the bytes, past the bundle and memory budgets): packaging stops
if (!choice) {
  console.error("error: no int8 scheme qualifies for these weights (the table above says which rule each one fails)");
  process.exit(1);
}
