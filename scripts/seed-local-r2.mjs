#!/usr/bin/env node
// Seeds the local R2 bucket that `wrangler dev` serves (miniflare's state under .wrangler/state) with the default
// catalog: catalog.json, the default backbone bundle, and the default adapters as demo/<name>. Idempotent:
// versions are content-addressed, and an alias is written only when absent or stale (pointing at an adapter for
// another backbone), so a later publish for the current backbone is never undone.
//   node scripts/seed-local-r2.mjs [--persist-to .wrangler/state]
import { Miniflare } from "miniflare";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const i = args.indexOf("--persist-to");
const persist = i >= 0 ? args[i + 1] : ".wrangler/state";
const j = args.indexOf("--bench-aliases"); // the benchmark's mixed batches: bench/a00.. point at the first classifier
const benchAliases = j >= 0 ? Number(args[j + 1]) : 0;
const bucketName = /bucket_name\s*=\s*"([^"]+)"/.exec(readFileSync("wrangler.toml", "utf8"))[1];
const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8"));

const mf = new Miniflare({ modules: true, script: "export default {}", r2Buckets: [bucketName], r2Persist: join(persist, "v3", "r2") });
const bucket = await mf.getR2Bucket(bucketName);
let wrote = 0;
async function put(key, bytes, onlyIfAbsent = false) {
  const head = await bucket.head(key);
  if (head && onlyIfAbsent && key.endsWith("/alias.json")) {
    // keep an alias someone moved, unless it points at an adapter for another backbone (it could not be served)
    const cur = await (await bucket.get(key)).json();
    if (cur.backbone === catalog.default_backbone) return;
  } else if (head && (onlyIfAbsent || head.size === bytes.byteLength)) return;
  // a plain ArrayBuffer: miniflare cannot pass a pooled Node Buffer's view across to workerd
  await bucket.put(key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  wrote++;
}
const id = catalog.default_backbone;
for (const f of ["config.json", "tokenizer.json", "model.onnx"]) await put(`backbones/${id}/${f}`, readFileSync(`adapters/backbones/${id}/${f}`));
await put("catalog.json", Buffer.from(JSON.stringify({ default_backbone: id })));
for (const a of catalog.adapters ?? []) {
  const buf = readFileSync(join("adapters", a.file));
  const version = createHash("sha256").update(buf).digest("hex").slice(0, 16);
  const [tenant, name] = a.alias.split("/");
  const base = `adapters/${tenant}/${name}`;
  await put(`${base}/versions/${version}.safetensors`, buf);
  const alias = { alias: a.alias, version, key: `${base}/versions/${version}.safetensors`, backbone: id, kind: a.kind, task: a.task,
    updated: new Date(0).toISOString(), history: [] };
  await put(`${base}/alias.json`, Buffer.from(JSON.stringify(alias)), true);
}
const first = (catalog.adapters ?? []).find((a) => a.task === "classify");
for (let k = 0; k < benchAliases && first; k++) {
  const buf = readFileSync(join("adapters", first.file));
  const version = createHash("sha256").update(buf).digest("hex").slice(0, 16);
  const base = `adapters/bench/a${String(k).padStart(2, "0")}`;
  await put(`${base}/versions/${version}.safetensors`, buf);
  await put(`${base}/alias.json`, Buffer.from(JSON.stringify({ alias: base.slice(9), version, key: `${base}/versions/${version}.safetensors`,
    backbone: id, kind: first.kind, task: first.task, updated: new Date(0).toISOString(), history: [] })), true);
}
await mf.dispose();
console.log(`seeded local R2 (${persist}): backbone ${id}, ${(catalog.adapters ?? []).length} adapters, ${wrote} objects written`);
