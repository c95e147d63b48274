// The calling tenant's own settings: who it is and what it may read (read scope); its default adapter per task
// and which tenants may read its adapters, and its usage (admin scope). Stored in KV (binding TENANTS):
//   tenant/<t> -> {"defaults": {"classify"?: ref, "generate"?: ref}}
//   grant/<reader>/<owner> and granted/<owner>/<reader>: owner lets reader use its adapters (both, so either side can list)
import { createRoute } from "@hono/zod-openapi";
import { DomainError } from "../errors";
import { bearer, errors, json, router } from "./openapi";
import { Defaults, DefaultsUpdate, Grants, ReaderPath, TenantInfo, UsageQuery, UsageResponse } from "./schemas";
import { usageReport } from "../usage";
import { limitBody, requireScope, resolverFor } from "../auth/middleware";
import { resolveAdapter, type Resolver } from "../store/resolve";
import { refString, type AdapterRef } from "../store/refs";
import { kvNames, type TenantSettings } from "../auth/tenants";

export const tenant = router();
const admin = [requireScope("admin"), limitBody("json")];

tenant.openapi(
  createRoute({
    tags: ["tenant"],
    method: "get",
    path: "/v1/tenant",
    security: bearer,
    middleware: [requireScope("read")] as const,
    responses: { 200: { description: "the key's tenant, scope, defaults and readable namespaces", ...json(TenantInfo) }, ...errors },
  }),
  async (c) => {
    const p = c.var.principal,
      dir = c.var.directory;
    const settings = await dir.settings(c.var.kv, p.tenant);
    return c.json(
      {
        tenant: p.tenant,
        scope: p.scope,
        key_id: p.keyId,
        defaults: settings.defaults as Record<string, string>,
        readable: await dir.readable(c.var.kv, p.tenant, c.var.publicTenants),
      },
      200,
    );
  },
);

tenant.openapi(
  createRoute({
    tags: ["tenant"],
    method: "put",
    path: "/v1/tenant/defaults",
    security: bearer,
    middleware: admin,
    request: { body: { ...json(DefaultsUpdate), required: true } },
    responses: { 200: { description: "the tenant's defaults after the change", ...json(Defaults) }, ...errors },
  }),
  async (c) => {
    const t = c.var.principal.tenant,
      kv = c.env.TENANTS;
    const settings: TenantSettings = structuredClone(await c.var.directory.settings(c.var.kv, t));
    let resolver: Resolver | undefined;
    for (const [task, ref] of Object.entries(c.req.valid("json")) as ["classify" | "generate", AdapterRef | null | undefined][]) {
      if (ref === undefined) continue;
      if (ref === null) {
        delete settings.defaults[task];
        continue;
      }
      resolver ??= await resolverFor(c); // once for both tasks
      await resolveAdapter(resolver, ref, task); // a default must be an adapter this tenant can use, for that task
      settings.defaults[task] = refString(ref);
    }
    await kv.put(`tenant/${t}`, JSON.stringify(settings));
    c.var.directory.forget(`tenant/${t}`);
    return c.json(settings.defaults, 200);
  },
);

const readers = async (kv: KVNamespace, owner: string) => (await kvNames(kv, `granted/${owner}/`)).sort();

tenant.openapi(
  createRoute({
    tags: ["tenant"],
    method: "get",
    path: "/v1/tenant/grants",
    security: bearer,
    middleware: [requireScope("admin")] as const,
    responses: { 200: { description: "tenants allowed to read this tenant's adapters", ...json(Grants) }, ...errors },
  }),
  async (c) => c.json({ tenant: c.var.principal.tenant, readers: await readers(c.env.TENANTS, c.var.principal.tenant) }, 200),
);

for (const method of ["put", "delete"] as const)
  tenant.openapi(
    createRoute({
      tags: ["tenant"],
      method,
      path: "/v1/tenant/grants/{reader}",
      security: bearer,
      middleware: admin,
      request: { params: ReaderPath },
      description: method === "put" ? "let another tenant read (use and list) this tenant's adapters" : "withdraw that",
      responses: { 200: { description: "tenants allowed to read this tenant's adapters", ...json(Grants) }, ...errors },
    }),
    async (c) => {
      const owner = c.var.principal.tenant,
        { reader } = c.req.valid("param"),
        kv = c.env.TENANTS;
      if (reader === owner) throw new DomainError("invalid_request", "a tenant always reads its own adapters");
      if (method === "put") {
        const at = JSON.stringify({ created: new Date().toISOString() });
        await Promise.all([kv.put(`grant/${reader}/${owner}`, at), kv.put(`granted/${owner}/${reader}`, at)]);
      } else await Promise.all([kv.delete(`grant/${reader}/${owner}`), kv.delete(`granted/${owner}/${reader}`)]);
      c.var.directory.forget(`grant/${reader}/${owner}`);
      return c.json({ tenant: owner, readers: await readers(kv, owner) }, 200);
    },
  );

tenant.openapi(
  createRoute({
    tags: ["tenant"],
    method: "get",
    path: "/v1/tenant/usage",
    security: bearer,
    middleware: [requireScope("admin")] as const,
    request: { query: UsageQuery },
    responses: {
      200: { description: "this tenant's inference usage per task (requests, items, input and generated tokens)", ...json(UsageResponse) },
      ...errors,
    },
  }),
  async (c) => c.json(await usageReport(c.env, c.var.principal.tenant, c.req.valid("query").days), 200),
);
