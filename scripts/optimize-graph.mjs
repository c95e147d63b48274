// ONNX Runtime's graph optimisations, run once offline instead of in every cold isolate
// (scripts/softedge/export/preoptimize.py drives this; `scripts/py bundle` calls it).
//
//   node scripts/optimize-graph.mjs optimize RAW.onnx OUT.onnx
//       the graph as onnxruntime-node leaves it at level "extended" (constant folding, common subexpressions,
//       the fusions the edge's wasm build makes at load: SimplifiedLayerNormalization, FusedMatMul, QuickGelu);
//       "all" would add layouts specific to this machine's CPU
//   node scripts/optimize-graph.mjs verify RAW.onnx PRE.onnx KV_HEADS HEAD_DIM VOCAB
//       both graphs in onnxruntime-web (the edge's wasm build, one thread): RAW at "all" (how the edge loaded a
//       graph before), PRE at "basic" (how it loads a pre-optimised one), on a padded batch behind a past; every
//       output must be bit-identical. Prints one JSON line; exit 1 when they differ.
import { readFileSync } from "node:fs";

const [cmd, raw, out, ...rest] = process.argv.slice(2);
const fail = (msg) => {
  console.error(`error: ${msg}`);
  process.exit(2);
};
if (!["optimize", "verify"].includes(cmd) || !raw || !out) fail("usage: optimize RAW OUT | verify RAW PRE KV_HEADS HEAD_DIM VOCAB");

if (cmd === "optimize") {
  const ort = await import("onnxruntime-node");
  await ort.InferenceSession.create(raw, { graphOptimizationLevel: "extended", optimizedModelFilePath: out, intraOpNumThreads: 1 });
  console.log(JSON.stringify({ ort: ort.env.versions.node ?? ort.env.versions.common }));
} else {
  const [kvHeads, headDim, vocab] = rest.map(Number);
  if (![kvHeads, headDim, vocab].every((n) => Number.isInteger(n) && n > 0)) fail("verify needs KV_HEADS HEAD_DIM VOCAB (positive integers)");
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const open = (path, level) =>
    ort.InferenceSession.create(new Uint8Array(readFileSync(path)), { executionProviders: ["wasm"], graphOptimizationLevel: level });
  const [a, b] = [await open(raw, "all"), await open(out, "basic")];
  // 3 rows x 17 new tokens behind 5 past slots, the first row left-padded: the edge's batch shape
  const [B, T, S] = [3, 17, 5];
  const mask = new BigInt64Array(B * (S + T)).fill(1n);
  mask[0] = mask[1] = 0n;
  const feeds = {
    input_ids: new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 37 + 5) % vocab)),
      [B, T],
    ),
    attention_mask: new ort.Tensor("int64", mask, [B, S + T]),
    position_ids: new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt(S + (i % T))),
      [B, T],
    ),
  };
  for (const name of a.inputNames.filter((n) => n.startsWith("past_key_values.")))
    feeds[name] = new ort.Tensor(
      "float32",
      Float32Array.from({ length: B * kvHeads * S * headDim }, (_, i) => Math.sin(i)),
      [B, kvHeads, S, headDim],
    );
  const [x, y] = [await a.run(feeds), await b.run(feeds)];
  let worst = 0;
  for (const name of a.outputNames) {
    if (x[name].data.length !== y[name]?.data.length) fail(`output ${name}: shapes differ`);
    for (let i = 0; i < x[name].data.length; i++) {
      const [p, q] = [x[name].data[i], y[name].data[i]];
      const d = Object.is(p, q) ? 0 : Math.abs(p - q); // NaN on both sides counts as equal, on one side as a difference
      worst = Math.max(worst, Number.isNaN(d) ? Number.POSITIVE_INFINITY : d);
    }
  }
  console.log(JSON.stringify({ outputs: a.outputNames.length, max_abs_diff: worst }));
  process.exit(worst === 0 ? 0 : 1);
}
