#!/usr/bin/env node
// ONNX Runtime Web's wasm memory after loading one graph, in a process of its own (wasm memory never shrinks, so
// each graph needs a fresh instance). The same wasm build and the same allocations as in workerd (the worker's
// /healthz reports the same figure there; src/engine/ort-workerd.ts finds the Memory the same way). Prints JSON.
//   node scripts/lib/wasm-memory.mjs model.onnx
import { readFileSync } from "node:fs";

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
await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
console.log(JSON.stringify({ load_bytes: memory.buffer.byteLength }));
