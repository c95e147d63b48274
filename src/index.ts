// The softedge edge worker: one shared backbone, a per-request adapter from R2, API keys and tenants in KV.
import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv, Bindings } from "./app-env";
import { api } from "./api/routes";
import { ApiError, errorBody, onError } from "./api/errors";
import { authenticate } from "./auth/middleware";
import { Directory } from "./auth/tenants";
import { AdapterCache, AdapterStore } from "./store/adapters";
import { getBackbone } from "./store/backbone";
import { getJson, type Storage } from "./store/r2";

// per isolate: caches outlive requests
let store: AdapterStore | null = null;
let directory: Directory | null = null;
let backboneId: Promise<string> | null = null;

const num = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);

async function defaultBackbone(env: Bindings, io: Storage): Promise<string> {
  if (env.BACKBONE_ID) return env.BACKBONE_ID;
  const o = await getJson<{ default_backbone: string }>(io, "catalog.json");
  if (!o) throw new ApiError(503, "backbone_unavailable", "no catalog.json in the bucket (run npm start to seed it)");
  return o.value.default_backbone;
}

export const app = new OpenAPIHono<AppEnv>();
// per-request context: the isolate's stores, the storage and its retry policy, the limits, a lazy backbone handle
app.use("*", async (c, next) => {
  const env = c.env;
  store ??= new AdapterStore(new AdapterCache(num(env.ADAPTER_CACHE_BYTES, 32 << 20)), num(env.ALIAS_TTL_MS, 10_000));
  directory ??= new Directory(num(env.AUTH_CACHE_MS, 10_000));
  const waitUntil = (p: Promise<unknown>) => {
    try { c.executionCtx.waitUntil(p); } catch { /* no execution context (app.request in tests): the promise runs on */ }
  };
  const io: Storage = { bucket: env.BUCKET, retry: { attempts: num(env.R2_ATTEMPTS, 3), timeoutMs: num(env.R2_TIMEOUT_MS, 2000), backoffMs: 50 }, waitUntil };
  c.set("adapters", store);
  c.set("directory", directory);
  c.set("kv", { kv: env.TENANTS, waitUntil });
  c.set("storage", io);
  c.set("publicTenants", (env.PUBLIC_TENANTS ?? "demo").split(",").map((s) => s.trim()).filter(Boolean));
  c.set("limits", { maxItems: num(env.MAX_ITEMS, 32), maxTextChars: num(env.MAX_TEXT_CHARS, 8000), maxTokens: num(env.MAX_TOKENS, 128),
    maxNewTokens: num(env.MAX_NEW_TOKENS, 64), maxBodyBytes: num(env.MAX_BODY_BYTES, 1 << 20), maxAdapterBytes: num(env.MAX_ADAPTER_BYTES, 1 << 20) });
  c.set("backbone", async () => {
    backboneId ??= defaultBackbone(env, io).catch((e) => { backboneId = null; throw e; });
    return getBackbone(io, await backboneId);
  });
  await next();
});
app.route("/", api(authenticate));
app.onError(onError);
app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));

export default app;
