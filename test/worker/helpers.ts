// Shared set-up for the worker tests: repo files through the FIXTURES binding, the default backbone and adapters
// seeded into miniflare's R2, API keys made by the key CLI's own module and stored in miniflare's KV.
import { env } from "cloudflare:test";
import app from "../../src/index";
import { createKey } from "../../scripts/lib/keys.mjs";

declare module "cloudflare:test" {
  interface ProvidedEnv {
    FIXTURES: Fetcher;
    BUCKET: R2Bucket;
    TENANTS: KVNamespace;
    TIGHT_LIMITER: RateLimit;
  }
}

export interface Catalog {
  default_backbone: string;
  adapters: { alias: string; file: string; task: string; kind: string }[];
}

export const fx = async (p: string) => {
  const r = await env.FIXTURES.fetch(`http://fixtures/${p}`);
  if (!r.ok) throw new Error(`fixture ${p}: ${r.status}`);
  return r;
};
export const bytes = async (p: string) => new Uint8Array(await (await fx(p)).arrayBuffer());
export const hex = async (b: ArrayBuffer | Uint8Array) =>
  Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", b)), (x) => x.toString(16).padStart(2, "0")).join("");

/** writes a version and its alias straight into R2, as the offline publisher does (no validation) */
export async function plant(alias: string, buf: Uint8Array, extra: Record<string, unknown> = {}) {
  const version = (await hex(buf)).slice(0, 16);
  const base = `adapters/${alias}`;
  await env.BUCKET.put(`${base}/versions/${version}.safetensors`, buf);
  await env.BUCKET.put(
    `${base}/alias.json`,
    JSON.stringify({
      alias,
      version,
      key: `${base}/versions/${version}.safetensors`,
      backbone: "",
      kind: "",
      task: "",
      history: [],
      updated: "",
      ...extra,
    }),
  );
  return version;
}

/** the default backbone and catalog in R2 (the public "demo" namespace), as `npm start` seeds them */
export async function seedDefaults(): Promise<Catalog> {
  const catalog: Catalog = await (await fx("adapters/catalog.json")).json();
  const id = catalog.default_backbone;
  for (const f of ["config.json", "tokenizer.json", "model.onnx"])
    await env.BUCKET.put(`backbones/${id}/${f}`, await bytes(`adapters/backbones/${id}/${f}`));
  await env.BUCKET.put("catalog.json", JSON.stringify({ default_backbone: id }));
  for (const a of catalog.adapters) await plant(a.alias, await bytes(`adapters/${a.file}`), { task: a.task, kind: a.kind, backbone: id });
  return catalog;
}

export async function newKey(tenant: string, scope: "read" | "publish" | "admin") {
  const k = await createKey({ tenant, scope, label: "test" });
  await env.TENANTS.put(k.kvKey, JSON.stringify(k.record));
  return k.key as string;
}

type Init = { key?: string; headers?: Record<string, string>; body?: BodyInit | null };
export function call(method: string, path: string, init: Init = {}, e: object = env) {
  const headers: Record<string, string> = { ...(init.key ? { authorization: `Bearer ${init.key}` } : {}), ...init.headers };
  return app.request(path, { method, headers, body: init.body ?? undefined }, e);
}
export const postJson = (path: string, key: string | undefined, body: unknown, e: object = env) =>
  call("POST", path, { key, headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) }, e);
export const putAdapter = (alias: string, key: string | undefined, buf: Uint8Array, e: object = env) =>
  call("PUT", `/v1/adapters/${alias}`, { key, headers: { "content-type": "application/octet-stream" }, body: buf }, e);

/** an artifact's safetensors header (parsed) and its data section */
export function split(buf: Uint8Array): { header: any; data: Uint8Array } {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))), data: buf.subarray(8 + n) };
}
export function join(header: unknown, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
/** the same artifact with its header edited (tensor bytes, and so the checksum, unchanged) */
export const withHeader = (buf: Uint8Array, edit: (h: any) => void) => {
  const { header, data } = split(buf);
  edit(header);
  return join(header, data);
};
