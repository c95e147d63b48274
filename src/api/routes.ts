// The public API: classify, generate, adapter listing, health, and the OpenAPI document built from the schemas.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { ApiError, errorBody } from "./errors";
import { AdapterInfo, AdapterSummary, ClassifyRequest, ClassifyResponse, ErrorResponse, GenerateRequest, GenerateResponse } from "./schemas";
import type { AppEnv } from "../app-env";
import { classifyBatch } from "../engine/classify";
import { generate } from "../engine/generate";
import { encodePromptChecked } from "../engine/prompt";
import { parseRef } from "../store/adapters";

const json = <T extends z.ZodTypeAny>(schema: T) => ({ content: { "application/json": { schema } } });
const errors = { 400: { description: "invalid request", ...json(ErrorResponse) }, 404: { description: "unknown adapter", ...json(ErrorResponse) },
  409: { description: "adapter for another backbone", ...json(ErrorResponse) }, 413: { description: "too large", ...json(ErrorResponse) } };

export const api = new OpenAPIHono<AppEnv>({
  defaultHook: (result, c) => {
    if (!result.success) {
      const issue = result.error.issues[0];
      const where = issue?.path?.length ? `${issue.path.join(".")}: ` : "";
      return c.json(errorBody("invalid_request", `${where}${issue?.message ?? "invalid request"}`), 400);
    }
  },
});

/** Server-Timing entries: adapter load, tokenize, inference (ms) */
function timing(c: { header: (k: string, v: string) => void }, t: Record<string, number>) {
  c.header("Server-Timing", Object.entries(t).map(([k, v]) => `${k};dur=${v.toFixed(1)}`).join(", "));
}

api.openapi(
  createRoute({ method: "post", path: "/v1/classify", request: { body: { ...json(ClassifyRequest), required: true } },
    responses: { 200: { description: "labels and probabilities", ...json(ClassifyResponse) }, ...errors } }),
  async (c) => {
    const body = c.req.valid("json");
    const L = c.get("limits");
    const items = body.items ?? [{ adapter: body.adapter!, text: body.text! }];
    if (items.length > L.maxItems) throw new ApiError(413, "too_many_items", `at most ${L.maxItems} items per request`);
    for (const it of items)
      if (it.text.length > L.maxTextChars) throw new ApiError(413, "text_too_long", `text longer than ${L.maxTextChars} characters`);
    const t0 = performance.now();
    const bb = await c.get("backbone")();
    const resolved = await Promise.all(items.map((it) => c.get("adapters").resolve(it.adapter, bb.cfg)));
    for (const r of resolved) if (r.adapter.task !== "classify") throw new ApiError(400, "wrong_task", `${r.ref} is a ${r.adapter.task} adapter`);
    const t1 = performance.now();
    const prompts = items.map((it, i) => encodePromptChecked(bb.tokenizer, resolved[i].adapter.template, "text", it.text, L.maxTokens));
    const t2 = performance.now();
    const out = await classifyBatch(bb.ort, bb.session, bb.cfg, prompts.map((p, i) => ({ ids: p.ids, adapter: resolved[i].adapter })));
    timing(c, { adapter: t1 - t0, tokenize: t2 - t1, inference: performance.now() - t2 });
    const results = out.map((r, i) => ({ ...r, adapter: resolved[i].ref, version: resolved[i].version, truncated: prompts[i].truncated }));
    return c.json(body.items ? { results } : results[0], 200);
  },
);

api.openapi(
  createRoute({ method: "post", path: "/v1/generate", request: { body: { ...json(GenerateRequest), required: true } },
    responses: { 200: { description: "generated text (JSON, or server-sent events with stream: true)", ...json(GenerateResponse) }, ...errors } }),
  async (c) => {
    const b = c.req.valid("json");
    const L = c.get("limits");
    if (b.input.length > L.maxTextChars) throw new ApiError(413, "text_too_long", `input longer than ${L.maxTextChars} characters`);
    const t0 = performance.now();
    const bb = await c.get("backbone")();
    const r = await c.get("adapters").resolve(b.adapter, bb.cfg);
    if (r.adapter.task !== "generate") throw new ApiError(400, "wrong_task", `${r.ref} is a ${r.adapter.task} adapter`);
    const maxNew = b.max_new_tokens ?? Math.min(r.adapter.generation.max_new_tokens ?? 32, L.maxNewTokens);
    if (maxNew > L.maxNewTokens) throw new ApiError(400, "max_new_tokens_over_cap", `max_new_tokens is capped at ${L.maxNewTokens}`);
    const t1 = performance.now();
    const { ids, truncated } = encodePromptChecked(bb.tokenizer, r.adapter.template, "input", b.input, L.maxTokens);
    const t2 = performance.now();
    const decode = (x: number[]) => bb.tokenizer.decode(x, { skip_special_tokens: true });
    const opts = { maxNewTokens: maxNew, temperature: b.temperature, topK: b.top_k, topP: b.top_p, seed: b.seed,
      stop: b.stop ?? r.adapter.generation.stop ?? [] };
    const steps = generate(bb.ort, bb.session, bb.cfg, r.adapter, ids, decode, opts);
    const meta = { adapter: r.ref, version: r.version, truncated };
    if (b.stream) {
      timing(c, { adapter: t1 - t0, tokenize: t2 - t1 });
      return streamSSE(c, async (s) => {
        let sent = "", n = 0;
        for await (const st of steps) {
          n++;
          const delta = st.text.slice(sent.length);
          sent = st.text;
          if (delta) await s.writeSSE({ event: "token", data: JSON.stringify({ text: delta }) });
        }
        await s.writeSSE({ event: "done", data: JSON.stringify({ text: sent.trim(), tokens: n, ...meta }) });
      }) as never;
    }
    let text = "", n = 0;
    for await (const st of steps) { text = st.text; n++; }
    timing(c, { adapter: t1 - t0, tokenize: t2 - t1, inference: performance.now() - t2 });
    return c.json({ text: text.trim(), tokens: n, ...meta }, 200);
  },
);

api.openapi(
  createRoute({ method: "get", path: "/v1/adapters", responses: { 200: { description: "published adapters", ...json(z.object({ adapters: z.array(AdapterSummary) })) } } }),
  async (c) => {
    const bucket = c.env.BUCKET;
    const out: z.infer<typeof AdapterSummary>[] = [];
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: "adapters/", cursor, limit: 1000 });
      for (const o of page.objects.filter((x) => x.key.endsWith("/alias.json"))) {
        const doc = await (await bucket.get(o.key))?.json<z.infer<typeof AdapterSummary>>();
        if (doc) out.push({ alias: doc.alias, version: doc.version, task: doc.task, kind: doc.kind, backbone: doc.backbone, updated: doc.updated });
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return c.json({ adapters: out }, 200);
  },
);

api.openapi(
  createRoute({ method: "get", path: "/v1/adapters/{tenant}/{name}", request: { params: z.object({ tenant: z.string(), name: z.string() }) },
    responses: { 200: { description: "an adapter's metadata and metrics", ...json(AdapterInfo) }, ...errors } }),
  async (c) => {
    const { tenant, name } = c.req.valid("param");
    parseRef(`${tenant}/${name}`);
    const doc = await (await c.env.BUCKET.get(`adapters/${tenant}/${name}/alias.json`))?.json<Record<string, unknown>>();
    if (!doc) throw new ApiError(404, "adapter_not_found", `no adapter ${tenant}/${name}`);
    const bb = await c.get("backbone")();
    const r = await c.get("adapters").resolve(`${tenant}/${name}@${doc.version}`, bb.cfg);
    const a = r.adapter;
    return c.json({ alias: `${tenant}/${name}`, version: r.version, history: doc.history, updated: doc.updated, kind: a.kind, task: a.task,
      backbone: a.backbone, virtual_tokens: a.virtualTokens, dtype: a.dtype, bytes: a.bytes, template: a.template,
      labels: a.labels.map((l) => ({ name: l.name, words: l.words })), generation: a.generation, training: a.training }, 200);
  },
);

api.get("/healthz", (c) => c.json({ ok: true }));
api.doc("/openapi.json", { openapi: "3.0.0", info: { title: "softedge", version: "0.1.0",
  description: "Classification and short generation with per-request prompt/prefix adapters on one shared int8 backbone." } });
