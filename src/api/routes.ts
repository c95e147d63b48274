// The public API: inference, adapters, tenant settings, health, and the OpenAPI document built from the schemas.
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { router } from "./openapi";
import { inference } from "./inference";
import { adapters } from "./adapters";
import { tenant } from "./tenant";

/** mounts the routes; everything under /v1 passes `auth` first (health and the OpenAPI document are open) */
export function api(auth: MiddlewareHandler<AppEnv>) {
  const r = router();
  r.use("/v1/*", auth);
  r.route("/", inference);
  r.route("/", adapters);
  r.route("/", tenant);
  r.get("/healthz", (c) => c.json({ ok: true }));
  r.openAPIRegistry.registerComponent("securitySchemes", "apiKey", { type: "http", scheme: "bearer", description: "se_<id>_<secret> (scripts/keys.mjs)" });
  r.doc("/openapi.json", { openapi: "3.0.0", info: { title: "softedge", version: "0.2.0",
    description: "Classification and short generation with per-request prompt/prefix adapters on one shared int8 backbone, per tenant." } });
  return r;
}
