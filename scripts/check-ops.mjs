#!/usr/bin/env node
// Which of ONNX Runtime's contrib operators for Llama-style decoders the worker's wasm build runs: each one-node
// graph from `scripts/py contrib_graphs` (the default backbone's sizes) is loaded and run in onnxruntime-web (wasm,
// 1 thread, the build workerd runs) and in onnxruntime-node, with the median of 30 runs where it works.
//   npm run check:ops
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import * as ortWeb from "onnxruntime-web";
import * as ortNode from "onnxruntime-node";

const dir = ".cache/contrib-ops";
execFileSync("scripts/py", ["contrib_graphs", "--out", dir], { stdio: "ignore" });
const index = JSON.parse(readFileSync(`${dir}/index.json`, "utf8"));
ortWeb.env.wasm.numThreads = 1;

function feedsFor(ort, inputs) {
  const feeds = {};
  for (const { name, type, dims } of inputs) {
    const n = dims.reduce((a, b) => a * b, 1);
    if (name === "seqlens_k")
      feeds[name] = new ort.Tensor(
        "int32",
        Int32Array.from({ length: n }, () => 8 + 16 - 1),
        dims,
      );
    else if (name === "total_sequence_length") feeds[name] = new ort.Tensor("int32", Int32Array.of(8 + 16), dims);
    else if (name === "position_ids")
      feeds[name] = new ort.Tensor(
        "int64",
        BigInt64Array.from({ length: n }, (_, i) => BigInt(i % dims.at(-1))),
        dims,
      );
    else if (type === "uint8")
      feeds[name] = new ort.Tensor(
        "uint8",
        Uint8Array.from({ length: n }, (_, i) => (i * 31) % 256),
        dims,
      );
    else
      feeds[name] = new ort.Tensor(
        "float32",
        Float32Array.from({ length: n }, (_, i) => Math.sin(i) / 2),
        dims,
      );
  }
  return feeds;
}

const failed = (stage, e) => ({
  ok: false,
  why: `${stage}: ${String(e.message ?? e)
    .split("\n")[0]
    .slice(0, 140)}`,
});

async function attempt(ort, bytes, inputs, options) {
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    return failed("load", e);
  }
  const feeds = feedsFor(ort, inputs);
  try {
    for (let i = 0; i < 5; i++) await session.run(feeds);
    const t = [];
    for (let i = 0; i < 30; i++) {
      const a = performance.now();
      await session.run(feeds);
      t.push(performance.now() - a);
    }
    t.sort((a, b) => a - b);
    return { ok: true, ms: t[15] };
  } catch (e) {
    return failed("run", e);
  }
}

const lines = [
  `contrib operators in onnxruntime-web ${ortWeb.env.versions?.web ?? ""} (wasm, 1 thread) and onnxruntime-node, one node at the default backbone's sizes (batch 1, 16 tokens)`,
  "",
  "| operator | wasm | wasm ms | native | native ms |",
  "|---|---|---|---|---|",
];
for (const [name, g] of Object.entries(index)) {
  const bytes = new Uint8Array(readFileSync(`${dir}/${g.file}`));
  const web = await attempt(ortWeb, bytes, g.inputs, { executionProviders: ["wasm"] });
  const node = await attempt(ortNode, bytes, g.inputs, { executionProviders: ["cpu"], intraOpNumThreads: 1 });
  const cell = (r) => (r.ok ? ["runs", r.ms.toFixed(3)] : [r.why.replaceAll("|", "/"), ""]);
  lines.push(`| ${name} | ${cell(web).join(" | ")} | ${cell(node).join(" | ")} |`);
}
console.log(lines.join("\n"));
writeFileSync(".cache/check-ops.md", lines.join("\n") + "\n");
