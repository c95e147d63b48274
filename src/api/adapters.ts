// Adapter catalogue and publishing: list, describe, versions (read scope, readable tenants only); upload a version
// and move the alias, roll the alias back (publish scope, own tenant only).
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../app-env";
import { DomainError } from "../errors";
import { bearer, errors, json, router } from "./openapi";
import { AdapterInfo, AdapterPath, AdapterSummary, PublishResponse, RollbackRequest, RollbackResponse, VersionsResponse } from "./schemas";
import { assertOwn, assertReadable, limitBody, requireScope } from "../auth/middleware";
import { aliasKey, type AliasDoc } from "../store/adapters";
import { getJson, listPages } from "../store/r2";
import { publish, rollback, versions } from "../store/publish";

export const adapters = router();
const read = [requireScope("read")];

adapters.openapi(
  createRoute({
    tags: ["adapters"],
    method: "get",
    path: "/v1/adapters",
    security: bearer,
    middleware: read,
    responses: {
      200: {
        description: "adapters this key may use: its tenant's, the public namespaces', granted ones",
        ...json(z.object({ adapters: z.array(AdapterSummary) })),
      },
      ...errors,
    },
  }),
  async (c) => c.json({ adapters: await listReadable(c) }, 200),
);

/** every adapter alias this key may read: its tenant's, the public namespaces', granted ones */
export async function listReadable(c: Context<AppEnv>): Promise<z.infer<typeof AdapterSummary>[]> {
  const io = c.var.storage;
  const out: z.infer<typeof AdapterSummary>[] = [];
  for (const owner of await c.var.directory.readable(c.var.kv, c.var.principal.tenant, c.var.publicTenants)) {
    // one level at a time: adapters/<owner>/<name>/ prefixes, not every version object below them
    for await (const page of listPages(io, { prefix: `adapters/${owner}/`, delimiter: "/" })) {
      const docs = await Promise.all(page.delimitedPrefixes.map(async (p) => (await getJson<AliasDoc>(io, `${p}alias.json`))?.value));
      for (const doc of docs)
        if (doc) out.push({ alias: doc.alias, version: doc.version, task: doc.task, kind: doc.kind, backbone: doc.backbone, updated: doc.updated });
    }
  }
  return out;
}

adapters.openapi(
  createRoute({
    tags: ["adapters"],
    method: "get",
    path: "/v1/adapters/{tenant}/{name}",
    security: bearer,
    middleware: read,
    request: { params: AdapterPath },
    responses: { 200: { description: "an adapter's metadata and metrics", ...json(AdapterInfo) }, ...errors },
  }),
  async (c) => {
    const { tenant, name } = c.req.valid("param");
    await assertReadable(c, tenant);
    const doc = (await getJson<AliasDoc>(c.var.storage, aliasKey(tenant, name)))?.value;
    if (!doc) throw new DomainError("adapter_not_found", `no adapter ${tenant}/${name}`);
    const r = await c.var.adapters.resolve(c.var.storage, { tenant, name, version: doc.version }, await c.var.backboneConfig());
    const a = r.adapter;
    return c.json(
      {
        alias: `${tenant}/${name}`,
        version: r.version,
        history: doc.history,
        updated: doc.updated,
        kind: a.kind,
        task: a.task,
        backbone: a.backbone,
        virtual_tokens: a.virtualTokens,
        dtype: a.dtype,
        bytes: a.bytes,
        template: a.template,
        labels: a.labels.map((l) => ({ name: l.name, words: l.words })),
        generation: a.generation,
        training: a.training,
        readout:
          a.task !== "classify"
            ? null
            : a.head
              ? { type: "head" as const, pooling: a.head.pooling, bag_tokens: a.head.bagIds.length }
              : { type: "verbalizer" as const },
      },
      200,
    );
  },
);

adapters.openapi(
  createRoute({
    tags: ["adapters"],
    method: "get",
    path: "/v1/adapters/{tenant}/{name}/versions",
    security: bearer,
    middleware: read,
    request: { params: AdapterPath },
    responses: { 200: { description: "the alias, its history and every stored version", ...json(VersionsResponse) }, ...errors },
  }),
  async (c) => {
    const { tenant, name } = c.req.valid("param");
    await assertReadable(c, tenant);
    return c.json(await versions(c.var.storage, tenant, name), 200);
  },
);

adapters.openapi(
  createRoute({
    tags: ["adapters"],
    method: "put",
    path: "/v1/adapters/{tenant}/{name}",
    security: bearer,
    middleware: [requireScope("publish"), limitBody("adapter")] as const,
    description:
      "Upload an adapter artifact (the .safetensors bytes as the body, at most MAX_ADAPTER_BYTES). It is validated (its " +
      "shapes, checksum and the adapter bounds: virtual tokens, parsed size, labels, token ids, template tokens against " +
      "MAX_TOKENS, positions), stored as an immutable version, then the alias moves to it. Re-uploading the current " +
      "version changes nothing.",
    request: {
      params: AdapterPath,
      body: { content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } }, required: true },
    },
    responses: {
      201: { description: "published; the alias moved", ...json(PublishResponse) },
      200: { description: "already the current version", ...json(PublishResponse) },
      ...errors,
    },
  }),
  async (c) => {
    const { tenant, name } = c.req.valid("param");
    assertOwn(c, tenant);
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    const r = await publish(c.var.storage, tenant, name, bytes, await c.var.backboneConfig(), {
      limits: c.var.limits,
      tokenizer: c.var.backboneTokenizer,
    });
    c.var.adapters.forgetAlias(tenant, name);
    return c.json(r, r.moved ? 201 : 200);
  },
);

adapters.openapi(
  createRoute({
    tags: ["adapters"],
    method: "post",
    path: "/v1/adapters/{tenant}/{name}/rollback",
    security: bearer,
    middleware: [requireScope("publish"), limitBody("json")] as const,
    request: { params: AdapterPath, body: { ...json(RollbackRequest), required: false } },
    responses: { 200: { description: "the alias now points at the version", ...json(RollbackResponse) }, ...errors },
  }),
  async (c) => {
    const { tenant, name } = c.req.valid("param");
    assertOwn(c, tenant);
    const body = (c.req.header("content-type") ?? "").includes("json") ? c.req.valid("json") : {};
    const r = await rollback(c.var.storage, tenant, name, body.version, await c.var.backboneConfig());
    c.var.adapters.forgetAlias(tenant, name);
    return c.json(r, 200);
  },
);
