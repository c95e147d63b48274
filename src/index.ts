// The softedge edge worker: one shared backbone, a per-request adapter from R2, API keys and tenants in KV.
import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./app-env";
import { api } from "./api/routes";
import { DomainError } from "./errors";
import { errorBody, onError } from "./api/errors";
import { authenticate } from "./auth/middleware";
import { Directory } from "./auth/tenants";
import { AdapterCache, AdapterStore } from "./store/adapters";
import { getBackbone, getBackboneConfig, getBackboneTokenizer } from "./store/backbone";
import { getJson, type Storage } from "./store/r2";
import { configOf } from "./config";
import { requestLog } from "./api/request-log";
import { initOrt } from "./engine/ort-workerd";

// per isolate: caches outlive requests
let store: AdapterStore | null = null;
let directory: Directory | null = null;
let backboneId: Promise<string> | null = null;

async function defaultBackbone(backbone: string | undefined, io: Storage): Promise<string> {
  if (backbone) return backbone;
  const o = await getJson<{ default_backbone: string }>(io, "catalog.json");
  if (!o) throw new DomainError("backbone_unavailable", "no catalog.json in the bucket (run npm start to seed it)");
  return o.value.default_backbone;
}

export const app = new OpenAPIHono<AppEnv>();
app.use("*", requestLog);
// per-request context: the isolate's stores, the storage and its retry policy, the limits, a lazy backbone handle
app.use("*", async (c, next) => {
  const env = c.env;
  const cfg = configOf(env);
  store ??= new AdapterStore(new AdapterCache(cfg.adapterCacheBytes), cfg.aliasTtlMs);
  directory ??= new Directory(cfg.authCacheMs, cfg.authStaleMs);
  const waitUntil = (p: Promise<unknown>) => {
    try {
      c.executionCtx.waitUntil(p);
    } catch {
      /* no execution context (app.request in tests): the promise runs on */
    }
  };
  const io: Storage = { bucket: env.BUCKET, retry: { attempts: cfg.r2Attempts, timeoutMs: cfg.r2TimeoutMs, backoffMs: 50 }, waitUntil };
  c.set("adapters", store);
  c.set("directory", directory);
  c.set("kv", { kv: env.TENANTS, waitUntil });
  c.set("storage", io);
  c.set("publicTenants", cfg.publicTenants);
  c.set("limits", cfg.limits);
  const id = () =>
    (backboneId ??= defaultBackbone(cfg.backboneId, io).catch((e) => {
      backboneId = null;
      throw e;
    }));
  c.set("backbone", async () => getBackbone(io, await id()));
  c.set("backboneConfig", async () => getBackboneConfig(io, await id()));
  c.set("backboneTokenizer", async () => getBackboneTokenizer(io, await id()));
  await next();
});
app.route("/", api(authenticate));
app.onError(onError);
app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));

// ONNX Runtime's wasm init (~140 ms locally) starts with the isolate instead of inside the first inference request:
// Cloudflare starts an isolate while the TLS handshake of its first request is still under way, so the init is done
// or under way when that request needs it. A failure is kept by initOrt and reported by the first request that
// loads the backbone.
initOrt().catch(() => {});

export default app;
