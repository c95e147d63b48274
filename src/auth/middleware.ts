// Request guards, composed per route: who is calling (API key -> tenant and scope), may they (scope, tenant
// rate limit), and may they read a given tenant's adapters. Failures never say whose key or adapter it was.
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppEnv } from "../app-env";
import { DomainError } from "../errors";
import { allows, keyId, verify, type Scope } from "./keys";
import type { Resolver } from "../store/resolve";

const challenge = { "www-authenticate": 'Bearer realm="softedge"' };

/** Authorization: Bearer se_<id>_<secret> -> c.var.principal; then the tenant's rate limit when one is bound */
export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization");
  if (!header) throw new DomainError("missing_key", "send an API key: 'Authorization: Bearer se_...'", challenge);
  const key = /^Bearer +(\S+)$/i.exec(header)?.[1] ?? "";
  const id = keyId(key);
  const record = id ? await c.var.directory.keyRecord(c.var.kv, id) : null;
  if (!(await verify(key, record)) || !record || !id) throw new DomainError("invalid_key", "the API key is not valid", challenge);
  c.set("principal", { tenant: record.tenant, scope: record.scope, keyId: id });
  if (c.env.RATE_LIMITER && !(await c.env.RATE_LIMITER.limit({ key: record.tenant })).success)
    throw new DomainError("rate_limited", "too many requests for this tenant; slow down", { "retry-after": "10" });
  await next();
};

export const requireScope =
  (need: Scope): MiddlewareHandler<AppEnv> =>
  async (c, next) => {
    const have = c.var.principal.scope;
    if (!allows(have, need)) throw new DomainError("insufficient_scope", `this key has scope '${have}'; this call needs '${need}'`);
    await next();
  };

/** the request body's size cap: JSON calls MAX_BODY_BYTES, adapter uploads MAX_ADAPTER_BYTES */
export const limitBody =
  (kind: "json" | "adapter"): MiddlewareHandler<AppEnv> =>
  (c, next) => {
    const max = kind === "json" ? c.var.limits.maxBodyBytes : c.var.limits.maxAdapterBytes;
    return bodyLimit({
      maxSize: max,
      onError: () => {
        throw new DomainError(kind === "json" ? "payload_too_large" : "adapter_too_large", `the request body is larger than ${max} bytes`);
      },
    })(c, next);
  };

/** Another tenant's adapters are invisible unless public or granted: the same 404 whether or not they exist. */
export async function assertReadable(c: Context<AppEnv>, owner: string): Promise<void> {
  if (!(await readableBy(c)(owner))) throw new DomainError("adapter_not_found", "no such adapter is visible to this key");
}

/** the caller's read rule: its own tenant, the public namespaces, tenants that granted it */
export const readableBy = (c: Context<AppEnv>) => (owner: string) =>
  c.var.directory.canRead(c.var.kv, c.var.principal.tenant, owner, c.var.publicTenants);

/** The request's adapter resolver (src/store/resolve.ts): the backbone's config fetched once for all its items. */
export async function resolverFor(c: Context<AppEnv>): Promise<Resolver> {
  return { storage: c.var.storage, adapters: c.var.adapters, backbone: await c.var.backboneConfig(), canRead: readableBy(c) };
}

/** Writes go to the key's own tenant only. */
export function assertOwn(c: Context<AppEnv>, tenant: string): void {
  if (tenant !== c.var.principal.tenant) throw new DomainError("forbidden", "a key may only change its own tenant's adapters");
}
