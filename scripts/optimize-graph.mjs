// ONNX Runtime's graph optimisations, run once offline instead of in every cold isolate
// (scripts/softedge/export/preoptimize.py drives this; `scripts/py bundle` calls it).
//
//   node scripts/optimize-graph.mjs optimize RAW.onnx OUT.onnx
//       the graph as onnxruntime-node leaves it at level "extended" (constant folding, common subexpressions,
//       the fusions the edge's wasm build makes at load: SimplifiedLayerNormalization, FusedMatMul, QuickGelu);
//       "all" would add layouts specific to this machine's CPU
//   node scripts/optimize-graph.mjs verify RAW.onnx PRE.onnx KV_HEADS HEAD_DIM VOCAB
//       both graphs in onnxruntime-web (the edge's wasm build, one thread): RAW at "all" (how the edge loaded a
//       graph before), PRE at "basic" (how it loads a pre-optimised one), on four padded batches (behind a past,
//       without one, a decode step, one long row); every output must be bit-identical. Prints one JSON line; exit 1
//       when they differ, 2 when either graph fails to load or run.
import { readFileSync } from "node:fs";

const [cmd, raw, out, ...rest] = process.argv.slice(2);
const fail = (msg) => {
  console.error(`error: ${msg}`);
  process.exit(2);
};
if (!["optimize", "verify"].includes(cmd) || !raw || !out) fail("usage: optimize RAW OUT | verify RAW PRE KV_HEADS HEAD_DIM VOCAB");

async function optimize() {
  const ort = await import("onnxruntime-node");
  await ort.InferenceSession.create(raw, { graphOptimizationLevel: "extended", optimizedModelFilePath: out, intraOpNumThreads: 1 });
  console.log(JSON.stringify({ ort: ort.env.versions.node ?? ort.env.versions.common }));
}

async function verify() {
  const [kvHeads, headDim, vocab] = rest.map(Number);
  if (![kvHeads, headDim, vocab].every((n) => Number.isInteger(n) && n > 0)) fail("verify needs KV_HEADS HEAD_DIM VOCAB (positive integers)");
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const open = (path, level) =>
    ort.InferenceSession.create(new Uint8Array(readFileSync(path)), { executionProviders: ["wasm"], graphOptimizationLevel: level });
  const [a, b] = [await open(raw, "all"), await open(out, "basic")];
  // the edge's shapes: [rows, new tokens, past slots, left padding of row 0] for a batch behind KV prefixes (padding in
  // the past), a prompt pass without past (padding among the new tokens), a decode step, one long row
  const shapes = [
    [3, 17, 5, 2],
    [2, 9, 0, 3],
    [3, 1, 12, 4],
    [1, 64, 0, 0],
  ];
  let worst = 0;
  for (const [B, T, S, pad] of shapes) {
    const mask = new BigInt64Array(B * (S + T)).fill(1n);
    for (let i = 0; i < pad; i++) mask[i] = 0n;
    // positions as the model derives them: attended slots before each one (padding does not count), from 0
    const pos = new BigInt64Array(B * T);
    for (let r = 0; r < B; r++) {
      let seen = 0;
      for (let j = 0; j < S + T; j++) {
        seen += Number(mask[r * (S + T) + j]);
        if (j >= S) pos[r * T + j - S] = BigInt(Math.max(0, seen - 1));
      }
    }
    const feeds = {
      input_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 37 + 5) % vocab)),
        [B, T],
      ),
      attention_mask: new ort.Tensor("int64", mask, [B, S + T]),
      position_ids: new ort.Tensor("int64", pos, [B, T]),
    };
    for (const name of a.inputNames.filter((n) => n.startsWith("past_key_values.")))
      feeds[name] = new ort.Tensor(
        "float32",
        Float32Array.from({ length: B * kvHeads * S * headDim }, (_, i) => Math.sin(i)),
        [B, kvHeads, S, headDim],
      );
    const [x, y] = [await a.run(feeds), await b.run(feeds)];
    for (const name of a.outputNames) {
      if (!y[name] || x[name].dims.join() !== y[name].dims.join()) fail(`output ${name}: shapes differ`);
      for (let i = 0; i < x[name].data.length; i++) {
        const [p, q] = [x[name].data[i], y[name].data[i]];
        const d = Object.is(p, q) ? 0 : Math.abs(p - q); // NaN on both sides counts as equal, on one side as a difference
        worst = Math.max(worst, Number.isNaN(d) ? Number.POSITIVE_INFINITY : d);
      }
    }
  }
  // JSON has no Infinity: a NaN or infinite difference is reported as the string "inf"
  console.log(JSON.stringify({ outputs: a.outputNames.length, shapes: shapes.length, max_abs_diff: Number.isFinite(worst) ? worst : "inf" }));
  process.exit(worst === 0 ? 0 : 1);
}

// any failure of ONNX Runtime itself (a graph it cannot load or run) is a one-line reason and exit 2
(cmd === "optimize" ? optimize() : verify()).catch((e) => fail(String(e?.message ?? e).split("\n")[0]));
