// The public API: inference, adapters, tenant settings, health, and the OpenAPI document built from the schemas.
import { wasmMemoryBytes } from "../engine/ort-workerd";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { createRoute, z } from "@hono/zod-openapi";
import { json, router } from "./openapi";
import pkg from "../../package.json";
import { inference } from "./inference";
import { adapters } from "./adapters";
import { tenant } from "./tenant";
import { openai } from "./openai";

const Health = z
  .object({
    ok: z.literal(true),
    isolate: z.object({ wasm_memory_bytes: z.number().int(), adapter_cache_bytes: z.number().int(), adapters_cached: z.number().int() }),
  })
  .openapi("Health");

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
  r.openapi(
    createRoute({
      tags: ["service"],
      method: "get",
      path: "/healthz",
      responses: { 200: { description: "the worker is up; what this isolate holds in memory", ...json(Health) } },
    }),
    (c) =>
      c.json(
        {
          ok: true as const,
          isolate: {
            wasm_memory_bytes: wasmMemoryBytes(),
            adapter_cache_bytes: c.var.adapters.cache.bytes,
            adapters_cached: c.var.adapters.cache.keys().length,
          },
        },
        200,
      ),
  );
  r.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "se_<id>_<secret> (scripts/keys.mjs)",
  });
  r.doc("/openapi.json", {
    openapi: "3.0.0",
    info: {
      title: "softedge",
      version: pkg.version,
      description: "Classification and short generation with per-request prompt/prefix adapters on one shared int8 backbone, per tenant.",
    },
  });
  return r;
}
