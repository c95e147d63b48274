#!/usr/bin/env node
// Seeds the local R2 bucket that `wrangler dev` serves (miniflare's state under .wrangler/state) with the default
// catalog: catalog.json, the default backbone bundle, and the default adapters as demo/<name> (the public
// namespace). Idempotent: versions are content-addressed, and an alias is written only when absent or stale
// (pointing at an adapter for another backbone), so a later publish for the current backbone is never undone.
// Also writes the local development keys (DEV_KEYS in lib/keys.mjs) into the local KV: well known, so the README's curl
// lines work, and never anywhere but this local state (make real ones with scripts/keys.mjs).
//   node scripts/seed-local-r2.mjs [--persist-to .wrangler/state]
import { Miniflare } from "miniflare";
import { DEV_KEYS, keyRecord } from "./lib/keys.mjs";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const i = args.indexOf("--persist-to");
const persist = i >= 0 ? args[i + 1] : ".wrangler/state";
const j = args.indexOf("--bench-aliases"); // the benchmark's mixed batches: acme/bench-a00.. point at the first classifier
const benchAliases = j >= 0 ? Number(args[j + 1]) : 0;
const toml = readFileSync("wrangler.toml", "utf8");
const bucketName = /bucket_name\s*=\s*"([^"]+)"/.exec(toml)[1];
const kvId = /\[\[kv_namespaces\]\][^[]*?id\s*=\s*"([^"]+)"/.exec(toml)[1];

const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8"));

const mf = new Miniflare({ modules: true, script: "export default {}", r2Buckets: [bucketName], r2Persist: join(persist, "v3", "r2"),
  kvNamespaces: { TENANTS: kvId }, kvPersist: join(persist, "v3", "kv") });
const bucket = await mf.getR2Bucket(bucketName);
const kv = await mf.getKVNamespace("TENANTS");
let wrote = 0;
const toArrayBuffer = (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); // miniflare cannot take a pooled Buffer view
/** written only when the stored bytes differ (R2's etag of a single-part put is the MD5 of its content) */
async function put(key, bytes) {
  const head = await bucket.head(key);
  if (head && head.etag === createHash("md5").update(bytes).digest("hex")) return;
  await bucket.put(key, toArrayBuffer(bytes));
  wrote++;
}
const id = catalog.default_backbone;
/** the artifact as an immutable version, then the alias, unless the alias already points at an adapter for this
 *  backbone (someone may have moved it; one for another backbone could not be served, so it is replaced) */
async function publish(alias, entry) {
  const buf = readFileSync(join("adapters", entry.file));
  const version = createHash("sha256").update(buf).digest("hex").slice(0, 16);
  const base = `adapters/${alias}`;
  await put(`${base}/versions/${version}.safetensors`, buf);
  const cur = await bucket.get(`${base}/alias.json`);
  if (cur && (await cur.json()).backbone === id) return;
  await bucket.put(`${base}/alias.json`, JSON.stringify({ alias, version, key: `${base}/versions/${version}.safetensors`,
    backbone: id, kind: entry.kind, task: entry.task, updated: new Date(0).toISOString(), history: [] }));
  wrote++;
}
for (const f of ["config.json", "tokenizer.json", "model.onnx"]) await put(`backbones/${id}/${f}`, readFileSync(`adapters/backbones/${id}/${f}`));
await put("catalog.json", Buffer.from(JSON.stringify({ default_backbone: id })));
for (const a of catalog.adapters ?? []) await publish(a.alias, a);
const first = (catalog.adapters ?? []).find((a) => a.task === "classify");
for (let k = 0; k < benchAliases && first; k++) await publish(`acme/bench-a${String(k).padStart(2, "0")}`, first);
for (const [key, tenant, scope] of DEV_KEYS) {
  const id = key.split("_")[1];
  if (await kv.get(`key/${id}`)) continue;
  await kv.put(`key/${id}`, JSON.stringify(await keyRecord(key, { tenant, scope, label: "local development (seed)" })));
  wrote++;
}
await mf.dispose();
console.log(`seeded local R2 and KV (${persist}): backbone ${id}, ${(catalog.adapters ?? []).length} adapters, ${DEV_KEYS.length} dev keys, ${wrote} objects written`);
console.log(`local dev keys: ${DEV_KEYS.map(([k, t, s]) => `${t}/${s} ${k}`).join(", ")}`);
