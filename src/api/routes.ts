// The public API: inference, adapters, tenant settings, health, and the OpenAPI document built from the schemas.
import { wasmMemoryBytes } from "../engine/ort-workerd";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { router } from "./openapi";
import { inference } from "./inference";
import { adapters } from "./adapters";
import { tenant } from "./tenant";
import { openai } from "./openai";

/** mounts the routes; everything under /v1 passes `auth` first (health and the OpenAPI document are open) */
export function api(auth: MiddlewareHandler<AppEnv>) {
  const r = router();
  r.use("/v1/*", auth);
  r.route("/", inference);
  r.route("/", adapters);
  r.route("/", tenant);
  r.route("/", openai);
  // what this isolate holds against Workers' 128 MB: ORT's wasm memory (its peak so far: it never shrinks) and
  // the parsed adapters cached; no tenant data
  r.get("/healthz", (c) => c.json({ ok: true, isolate: {
    wasm_memory_bytes: wasmMemoryBytes(), adapter_cache_bytes: c.var.adapters.cache.bytes, adapters_cached: c.var.adapters.cache.keys().length,
  } }));
  r.openAPIRegistry.registerComponent("securitySchemes", "apiKey", { type: "http", scheme: "bearer", description: "se_<id>_<secret> (scripts/keys.mjs)" });
  r.doc("/openapi.json", { openapi: "3.0.0", info: { title: "softedge", version: "0.2.0",
    description: "Classification and short generation with per-request prompt/prefix adapters on one shared int8 backbone, per tenant." } });
  return r;
}
