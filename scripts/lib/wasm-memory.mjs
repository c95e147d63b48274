#!/usr/bin/env node
// ONNX Runtime Web's wasm memory for one graph, in a process of its own (wasm memory never shrinks, so each graph
// needs a fresh instance): after the session is created and after one short run. The same wasm build and the same
// allocations as in workerd (the worker's /healthz reports the same figure there). Prints JSON.
//   node scripts/lib/wasm-memory.mjs model.onnx
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

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
const session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
const loadBytes = memory.buffer.byteLength;
const cfg = JSON.parse(readFileSync(join(dirname(process.argv[2]), "config.json"), "utf8"));
const feeds = { input_ids: new ort.Tensor("int64", new BigInt64Array(16).fill(5n), [1, 16]),
  attention_mask: new ort.Tensor("int64", new BigInt64Array(16).fill(1n), [1, 16]),
  position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i)), [1, 16]) };
for (let l = 0; l < cfg.num_layers; l++)
  for (const kv of ["key", "value"]) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [1, cfg.num_kv_heads, 0, cfg.head_dim]);
await session.run(feeds);
console.log(JSON.stringify({ load_bytes: loadBytes, after_run_bytes: memory.buffer.byteLength }));
