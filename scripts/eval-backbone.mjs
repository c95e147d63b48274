#!/usr/bin/env node
// Held-out quality of a backbone bundle's ONNX graph in ONNX Runtime, against PyTorch's fp32 answers.
//   npm run eval:backbone -- <bundle dir> [fixture.json] [--backend web|node] [--write]
// fixture: from `scripts/py fixtures backbone <bundle> --out F` (default: test/fixtures/parity/backbone.json).
// --write stores the result as <bundle>/eval.json (read by the model card).
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { openSession, decodeWindows, compare } from "./lib/backbone-eval.mjs";

const args = process.argv.slice(2);
const flag = (n) => {
  const i = args.indexOf(n);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const backend = flag("--backend") ?? "web";
const write = args.includes("--write");
if (write) args.splice(args.indexOf("--write"), 1);
const [bundle, fixturePath = "test/fixtures/parity/backbone.json"] = args;
if (!bundle) {
  console.error("usage: eval-backbone.mjs <bundle dir> [fixture.json] [--backend web|node] [--write]");
  process.exit(2);
}
let cfg, fixture;
try {
  cfg = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
  fixture = JSON.parse(readFileSync(fixturePath, "utf8"));
} catch (e) {
  console.error(`error: ${e.message.split("\n")[0]}`);
  process.exit(2);
}
if (fixture.vocab_size && fixture.vocab_size !== cfg.vocab_size) {
  console.error("error: fixture was written for another vocabulary");
  process.exit(2);
}
const t0 = performance.now();
const s = await openSession(join(bundle, "model.onnx"), backend);
const res = await decodeWindows(s, cfg, fixture);
const r = {
  backbone: cfg.id,
  quantization: cfg.quantization,
  backend,
  fixture: fixturePath,
  windows: fixture.windows,
  seq: fixture.seq,
  ...compare(fixture, res),
  ppl_ratio: 0,
  seconds: 0,
};
r.ppl_ratio = r.ppl / r.fp32_ppl;
r.seconds = +((performance.now() - t0) / 1000).toFixed(1);
console.log(JSON.stringify(r, null, 2));
if (write) {
  const out = join(bundle, "eval.json");
  writeFileSync(out + ".tmp", JSON.stringify(r, null, 2) + "\n");
  renameSync(out + ".tmp", out);
}
