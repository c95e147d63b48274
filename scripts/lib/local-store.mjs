// The local R2 bucket and KV namespace that `wrangler dev` serves (miniflare state under --persist-to), and the
// worker's storage code to write them with (src/store via scripts/lib/store-entry.ts, bundled by esbuild), for the
// Node tools that write adapters without a running worker: scripts/seed-local-r2.mjs and scripts/publish-local.mjs.
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const toml = () => readFileSync("wrangler.toml", "utf8");
export const bucketName = () => /bucket_name\s*=\s*"([^"]+)"/.exec(toml())[1];
const kvId = () => /\[\[kv_namespaces\]\][^[]*?id\s*=\s*"([^"]+)"/.exec(toml())[1];

/** miniflare's R2 bucket and KV for a wrangler --persist-to folder; `io` is the worker's Storage shape */
export async function openLocalStore(persist) {
  const mf = new Miniflare({
    modules: true,
    script: "export default {}",
    r2Buckets: [bucketName()],
    r2Persist: join(persist, "v3", "r2"),
    kvNamespaces: { TENANTS: kvId() },
    kvPersist: join(persist, "v3", "kv"),
  });
  const bucket = await mf.getR2Bucket(bucketName());
  const kv = await mf.getKVNamespace("TENANTS");
  const io = { bucket, retry: { attempts: 1, timeoutMs: 60_000, backoffMs: 0 } };
  return { bucket, kv, io, dispose: () => mf.dispose() };
}

/** src/store's publish / rollback / versions, compiled for Node */
export async function storeCode() {
  const out = resolve(".cache/store-code/store.mjs");
  await build({ entryPoints: ["scripts/lib/store-entry.ts"], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "error" });
  return import(pathToFileURL(out).href + `?t=${Date.now()}`);
}

/** miniflare's R2 cannot take a pooled Buffer view: a fresh ArrayBuffer-backed copy */
export const ownBytes = (b) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
