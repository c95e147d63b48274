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
import { catalogPlan, shouldWriteAlias } from "./lib/catalog-plan.mjs";
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

let plan;
try { plan = catalogPlan("."); } catch (e) { console.error(`error: ${e.message}`); process.exit(2); }

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
async function putAlias({ key, doc }) {
  const cur = await bucket.get(key);
  if (!shouldWriteAlias(cur && (await cur.json()), plan.backbone)) return;
  await bucket.put(key, JSON.stringify(doc));
  wrote++;
}
// versions before aliases: an alias never points at an object not yet written
for (const o of plan.objects) await put(o.key, o.bytes);
for (const a of plan.aliases) await putAlias(a);
const first = plan.aliases.find((a) => a.doc.task === "classify");
for (let k = 0; k < benchAliases && first; k++) {
  const alias = `acme/bench-a${String(k).padStart(2, "0")}`;
  const o = plan.objects.find((x) => x.key === first.doc.key);
  const key = `adapters/${alias}/versions/${first.doc.version}.safetensors`;
  await put(key, o.bytes);
  await putAlias({ key: `adapters/${alias}/alias.json`, doc: { ...first.doc, alias, key } });
}
for (const [key, tenant, scope] of DEV_KEYS) {
  const id = key.split("_")[1];
  if (await kv.get(`key/${id}`)) continue;
  await kv.put(`key/${id}`, JSON.stringify(await keyRecord(key, { tenant, scope, label: "local development (seed)" })));
  wrote++;
}
await mf.dispose();
console.log(`seeded local R2 and KV (${persist}): backbone ${plan.backbone}, ${plan.aliases.length} adapters, ${DEV_KEYS.length} dev keys, ${wrote} objects written`);
console.log(`local dev keys: ${DEV_KEYS.map(([k, t, s]) => `${t}/${s} ${k}`).join(", ")}`);
