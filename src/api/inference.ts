// POST /v1/classify and /v1/generate. An item names its adapter or falls back to the tenant's default for the task;
// either way the key's tenant must be allowed to read it.
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { RequestRecord } from "./request-log";
import { streamSSE } from "hono/streaming";
import type { AppEnv } from "../app-env";
import { DomainError } from "../errors";
import { errorBody } from "./errors";
import { bearer, errors, json, router, timing } from "./openapi";
import { ClassifyRequest, ClassifyResponse, GenerateEvents, GenerateRequest, GenerateResponse } from "./schemas";
import { limitBody, requireScope, resolverFor } from "../auth/middleware";
import { resolveAdapter, type Resolver } from "../store/resolve";
import { parseRef, type AdapterRef } from "../store/refs";
import { tokenBudget } from "../engine/adapter";
import { classifyBatch } from "../engine/classify";
import type { Phases } from "../engine/batch";
import { finishReason, generate, withoutStopStart, type GenerateStep } from "../engine/generate";
import { encodePromptChecked } from "../engine/prompt";
import type { Resolved } from "../store/adapters";

export const inference = router();

/** what the request's log line says ran: each adapter version once, and whether it came from this isolate's cache */
function ran(resolved: Resolved[]) {
  const seen = new Map<string, { ref: string; version: string; cache: "hit" | "miss" }>();
  for (const r of resolved)
    if (!seen.has(`${r.ref}@${r.version}`)) seen.set(`${r.ref}@${r.version}`, { ref: r.ref, version: r.version, cache: r.cached ? "hit" : "miss" });
  return [...seen.values()];
}

/**
 * The shared start of a generation (/v1/generate, /v1/completions): limits checked, the adapter resolved, the
 * prompt encoded, the request's log record filled; returns the steps to iterate.
 */
export async function startGeneration(
  c: Context<AppEnv>,
  adapter: AdapterRef | undefined,
  input: string,
  o: {
    maxNewTokens?: number;
    temperature?: number;
    topK?: number;
    topP?: number;
    seed?: number;
    stop?: string[];
    noRepeatNgram?: number;
    numBeams?: number;
  },
) {
  const L = c.var.limits;
  if (input.length > L.maxTextChars) throw new DomainError("text_too_long", `input longer than ${L.maxTextChars} characters`);
  if ((o.numBeams ?? 1) > 1 && o.temperature)
    throw new DomainError("invalid_request", "num_beams > 1 is beam search, which is greedy: leave temperature at 0 or out");
  const t0 = performance.now();
  // the adapter is read and checked against the backbone's config while the model itself loads
  const [bb, r] = await Promise.all([c.var.backbone(), resolverFor(c).then((res) => adapterFor(c, res, adapter, "generate"))]);
  const maxNew = o.maxNewTokens ?? Math.min(r.adapter.generation.max_new_tokens ?? 32, L.maxNewTokens);
  if (maxNew > L.maxNewTokens) throw new DomainError("max_new_tokens_over_cap", `max_new_tokens is capped at ${L.maxNewTokens}`);
  const t1 = performance.now();
  const { ids, truncated } = encodePromptChecked(bb.tokenizer, r.adapter.template, "input", input, tokenBudget(r.adapter, L.maxTokens));
  const record = Object.assign(c.var.record, {
    task: "generate" as const,
    items: 1,
    adapters: ran([r]),
    input_tokens: ids.length,
    generated_tokens: 0,
  });
  const t2 = performance.now();
  const decode = (x: number[]) => bb.tokenizer.decode(x, { skip_special_tokens: true });
  const stops = o.stop ?? r.adapter.generation.stop ?? [];
  const steps = generate(bb.ort, bb.session, bb.cfg, r.adapter, ids, decode, {
    maxNewTokens: maxNew,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed,
    stop: stops,
    noRepeatNgram: o.noRepeatNgram ?? r.adapter.generation.no_repeat_ngram_size ?? 0,
    numBeams: o.numBeams ?? (o.temperature ? 1 : (r.adapter.generation.num_beams ?? 1)), // the adapter's, for greedy requests
  });
  return { r, ids, truncated, steps, stops, maxNew, record, t0, t1, t2 };
}

type Sse = Parameters<Parameters<typeof streamSSE>[1]>[0];

/**
 * A generation as server-sent events, in the frames the route chooses: each text delta, then the end; a failure
 * after the 200 has gone out becomes an error frame in the API's error shape, never a silent close. The request's
 * log line waits for the stream's end (request-log.ts). Text that may be the start of a stop string is held back
 * until the next step settles it (a stop cuts the text where the string starts), so what was sent is never
 * taken back: the deltas always join to the final text.
 */
export function streamSteps(
  c: Context<AppEnv>,
  steps: AsyncIterable<GenerateStep>,
  record: RequestRecord & { generated_tokens: number },
  frames: {
    delta(s: Sse, text: string): Promise<void>;
    done(s: Sse, text: string, last: GenerateStep | undefined): Promise<void>;
    error(s: Sse, body: ReturnType<typeof errorBody>): Promise<void>;
  },
  stops: string[],
) {
  let ended!: () => void;
  record.done = new Promise<void>((r) => (ended = r));
  return streamSSE(c, async (s) => {
    try {
      let sent = "",
        last: GenerateStep | undefined;
      for await (const st of steps) {
        record.generated_tokens++;
        last = st;
        const visible = st.stopped ? st.text : withoutStopStart(st.text, stops);
        const delta = visible.slice(sent.length);
        sent = visible;
        if (delta) await frames.delta(s, delta);
      }
      const text = last?.text ?? "";
      if (text.length > sent.length) await frames.delta(s, text.slice(sent.length)); // what was held back
      await frames.done(s, text, last);
    } catch (e) {
      const code = e instanceof DomainError ? e.code : "internal";
      if (code === "internal") console.error("generation stream failed", e);
      record.stream_error = code;
      await frames.error(s, errorBody(code, e instanceof DomainError ? e.message : "internal error"));
    } finally {
      ended();
    }
  });
}

/** A whole generation, counted into the request's record; returns the last step (its text is the whole text). */
export async function collectSteps(steps: AsyncIterable<GenerateStep>, record: { generated_tokens: number }): Promise<GenerateStep | undefined> {
  let last: GenerateStep | undefined;
  for await (const st of steps) {
    last = st;
    record.generated_tokens++;
  }
  return last;
}

/** the adapter a request runs: the one it names, or the tenant's default for the task; loaded and task-checked */
async function adapterFor(c: Context<AppEnv>, resolver: Resolver, given: AdapterRef | undefined, task: "classify" | "generate"): Promise<Resolved> {
  const stored = given ? undefined : (await c.var.directory.settings(c.var.kv, c.var.principal.tenant)).defaults[task];
  if (!given && !stored)
    throw new DomainError("no_default_adapter", `name an adapter, or set this tenant's default ${task} adapter (PUT /v1/tenant/defaults)`);
  return resolveAdapter(resolver, given ?? parseRef(stored!), task);
}

inference.openapi(
  createRoute({
    tags: ["inference"],
    method: "post",
    path: "/v1/classify",
    security: bearer,
    middleware: [requireScope("read"), limitBody("json")] as const,
    request: { body: { ...json(ClassifyRequest), required: true } },
    responses: { 200: { description: "labels and probabilities", ...json(ClassifyResponse) }, ...errors },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const L = c.var.limits;
    const items = body.items ?? [{ adapter: body.adapter, text: body.text! }];
    if (items.length > L.maxItems) throw new DomainError("too_many_items", `at most ${L.maxItems} items per request`);
    for (const it of items)
      if (it.text.length > L.maxTextChars) throw new DomainError("text_too_long", `text longer than ${L.maxTextChars} characters`);
    const t0 = performance.now();
    // the adapters are read and checked against the backbone's config while the model itself loads
    const [bb, resolved] = await Promise.all([
      c.var.backbone(),
      resolverFor(c).then((resolver) => Promise.all(items.map((it) => adapterFor(c, resolver, it.adapter, "classify")))),
    ]);
    const t1 = performance.now();
    const prompts = items.map((it, i) =>
      encodePromptChecked(bb.tokenizer, resolved[i].adapter.template, "text", it.text, tokenBudget(resolved[i].adapter, L.maxTokens)),
    );
    Object.assign(c.var.record, {
      task: "classify",
      items: items.length,
      adapters: ran(resolved),
      input_tokens: prompts.reduce((a, p) => a + p.ids.length, 0),
    });
    const t2 = performance.now();
    const phases: Phases = {};
    const out = await classifyBatch(
      bb.ort,
      bb.session,
      bb.cfg,
      prompts.map((p, i) => ({ ids: p.ids, adapter: resolved[i].adapter })),
      L.maxBatchTokens,
      phases,
    );
    const inference = performance.now() - t2;
    // inference = assemble (the batch's inputs and KV prefixes) + ort (ONNX Runtime) + readout (heads, verbalizers)
    const [assemble, ortMs] = [phases.assemble ?? 0, phases.ort ?? 0];
    timing(c, { adapter: t1 - t0, tokenize: t2 - t1, inference, assemble, ort: ortMs, readout: inference - assemble - ortMs });
    // scores: the [{label, score}] list, highest first, that Hugging Face pipelines and Workers AI return
    const results = out.map((r, i) => ({
      ...r,
      scores: Object.entries(r.probabilities)
        .map(([label, score]) => ({ label, score }))
        .sort((a, b) => b.score - a.score),
      adapter: resolved[i].ref,
      version: resolved[i].version,
      truncated: prompts[i].truncated,
    }));
    return c.json(body.items ? { results } : results[0], 200);
  },
);

inference.openapi(
  createRoute({
    tags: ["inference"],
    method: "post",
    path: "/v1/generate",
    security: bearer,
    middleware: [requireScope("read"), limitBody("json")] as const,
    request: { body: { ...json(GenerateRequest), required: true } },
    responses: {
      200: {
        description: "generated text (JSON, or server-sent events with stream: true)",
        content: { ...json(GenerateResponse).content, "text/event-stream": { schema: GenerateEvents } },
      },
      ...errors,
    },
  }),
  async (c) => {
    const b = c.req.valid("json");
    const { r, ids, truncated, steps, stops, maxNew, record, t0, t1, t2 } = await startGeneration(c, b.adapter, b.input, {
      maxNewTokens: b.max_new_tokens,
      temperature: b.temperature,
      topK: b.top_k,
      topP: b.top_p,
      seed: b.seed,
      stop: b.stop,
      noRepeatNgram: b.no_repeat_ngram_size,
      numBeams: b.num_beams,
    });
    const meta = { adapter: r.ref, version: r.version, truncated };
    // tokens (kept for existing clients) = usage.completion_tokens
    const counts = (n: number, last: GenerateStep | undefined) => ({
      tokens: n,
      finish_reason: finishReason(n, last, maxNew),
      usage: { prompt_tokens: ids.length, completion_tokens: n },
    });
    if (b.stream) {
      timing(c, { adapter: t1 - t0, tokenize: t2 - t1 });
      return streamSteps(
        c,
        steps,
        record,
        {
          delta: (s, text) => s.writeSSE({ event: "token", data: JSON.stringify({ text }) }),
          done: (s, text, last) =>
            s.writeSSE({ event: "done", data: JSON.stringify({ text: text.trim(), ...counts(record.generated_tokens, last), ...meta }) }),
          error: (s, body) => s.writeSSE({ event: "error", data: JSON.stringify(body) }),
        },
        stops,
      ) as never;
    }
    const last = await collectSteps(steps, record);
    timing(c, { adapter: t1 - t0, tokenize: t2 - t1, inference: performance.now() - t2 });
    return c.json({ text: (last?.text ?? "").trim(), ...counts(record.generated_tokens, last), ...meta }, 200);
  },
);
