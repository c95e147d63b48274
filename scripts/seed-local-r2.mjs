#!/usr/bin/env node
// Seeds the local R2 bucket that `wrangler dev` serves (miniflare's state under .wrangler/state) with the default
// catalog: catalog.json, the default backbone bundle, and the default adapters as demo/<name> (the public
// namespace). Idempotent: versions are content-addressed, and an alias is written only when absent or stale
// (pointing at an adapter for another backbone), so a later publish for the current backbone is never undone.
// Also writes the local development keys (DEV_KEYS in lib/keys.mjs) into the local KV: well known, so the README's curl
// lines work, and never anywhere but this local state (make real ones with scripts/keys.mjs).
//   node scripts/seed-local-r2.mjs [--persist-to .wrangler/state]
import { DEV_KEYS, keyRecord } from "./lib/keys.mjs";
import { catalogPlan, shouldWriteAlias } from "./lib/catalog-plan.mjs";
import { openLocalStore, ownBytes, storeCode } from "./lib/local-store.mjs";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const i = args.indexOf("--persist-to");
const persist = i >= 0 ? args[i + 1] : ".wrangler/state";
const j = args.indexOf("--bench-aliases"); // the benchmark's mixed batches: acme/bench-a00.. point at the first classifier
const benchAliases = j >= 0 ? Number(args[j + 1]) : 0;
let plan;
try {
  plan = catalogPlan(".");
} catch (e) {
  console.error(`error: ${e.message}`);
  process.exit(2);
}
const backboneCfg = JSON.parse(readFileSync(join("adapters", "backbones", plan.backbone, "config.json"), "utf8"));

const { bucket, kv, io, dispose } = await openLocalStore(persist);
const store = await storeCode(); // aliases move through the worker's own publish code (validation, compare-and-swap)
// the worker's default prompt limits and the bundle's tokenizer, as a publish through the API checks them
const serving = {
  limits: { maxTokens: store.SETTINGS.MAX_TOKENS[0], maxNewTokens: store.SETTINGS.MAX_NEW_TOKENS[0] },
  tokenizer: async () => new store.Tokenizer(JSON.parse(readFileSync(join("adapters", "backbones", plan.backbone, "tokenizer.json"), "utf8")), {}),
};
let wrote = 0;
/** written only when the stored bytes differ (R2's etag of a single-part put is the MD5 of its content) */
async function put(key, bytes) {
  const head = await bucket.head(key);
  if (head && head.etag === createHash("md5").update(bytes).digest("hex")) return;
  await bucket.put(key, ownBytes(bytes));
  wrote++;
}
/** publish the catalog's version under the alias, unless the alias already points at an adapter for this backbone */
async function putAlias(alias, bytes) {
  const [tenant, name] = alias.split("/");
  const cur = await bucket.get(store.aliasKey(tenant, name));
  if (!shouldWriteAlias(cur && (await cur.json()), plan.backbone)) return;
  await store.publish(io, tenant, name, ownBytes(bytes), backboneCfg, serving);
  wrote++;
}
for (const o of plan.objects) await put(o.key, o.bytes);
for (const a of plan.adapters) await putAlias(a.alias, a.bytes);
const first = plan.adapters.find((a) => a.task === "classify");
for (let k = 0; k < benchAliases && first; k++) await putAlias(`acme/bench-a${String(k).padStart(2, "0")}`, first.bytes);
for (const [key, tenant, scope] of DEV_KEYS) {
  const id = key.split("_")[1];
  if (await kv.get(`key/${id}`)) continue;
  await kv.put(`key/${id}`, JSON.stringify(await keyRecord(key, { tenant, scope, label: "local development (seed)" })));
  wrote++;
}
await dispose();
console.log(
  `seeded local R2 and KV (${persist}): backbone ${plan.backbone}, ${plan.adapters.length} adapters, ${DEV_KEYS.length} dev keys, ${wrote} objects written`,
);
console.log(`local dev keys: ${DEV_KEYS.map(([k, t, s]) => `${t}/${s} ${k}`).join(", ")}`);
