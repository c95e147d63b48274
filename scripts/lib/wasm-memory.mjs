#!/usr/bin/env node
// ONNX Runtime Web's wasm memory for one graph, in a process of its own (wasm memory never shrinks, so each graph
// needs a fresh instance): after loading it, and after the largest pass the worker runs (--slots rows x slots,
// 128-token rows behind a 32-token prefix). The same wasm build and the same allocations as in workerd (the
// worker's /healthz reports the same figure there; src/engine/ort-workerd.ts finds the Memory the same way).
//   node scripts/lib/wasm-memory.mjs model.onnx [--slots 1024]          prints JSON
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { levelOf, syntheticFeeds } from "./backbone-eval.mjs";

let memory = null;
const instantiate = WebAssembly.instantiate.bind(WebAssembly);
WebAssembly.instantiate = async (src, imports) => {
  const r = await instantiate(src, imports);
  const all = [...Object.values((r.instance ?? r).exports), ...Object.values(imports ?? {}).flatMap((m) => Object.values(m ?? {}))];
  memory = all.find((v) => v instanceof WebAssembly.Memory) ?? memory;
  return r;
};
const ort = await import("onnxruntime-web");
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
const model = readFileSync(process.argv[2]);
const cfg = JSON.parse(readFileSync(join(dirname(process.argv[2]), "config.json"), "utf8"));
const session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ["wasm"], graphOptimizationLevel: levelOf(cfg) });
const loadBytes = memory.buffer.byteLength;

const i = process.argv.indexOf("--slots");
const slots = i > 0 ? Number(process.argv[i + 1]) : 1024;
const [P, T] = [32, 128],
  B = Math.max(1, Math.floor(slots / (P + T)));
const feeds = syntheticFeeds(ort, cfg, B, T, P);
await session.run(feeds);
console.log(JSON.stringify({ load_bytes: loadBytes, peak_bytes: memory.buffer.byteLength, pass: [B, P + T] }));
