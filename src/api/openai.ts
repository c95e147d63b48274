// OpenAI-compatible completions, so existing clients can call softedge: POST /v1/completions (`model` is the adapter
// reference, tenant/name[@version]) and GET /v1/models (the generation adapters this key may use). Same engine and
// limits as /v1/generate; streaming sends unnamed `data:` frames and ends with `data: [DONE]`.
import { createRoute, z } from "@hono/zod-openapi";
import { finishReason } from "../engine/generate";
import { limitBody, requireScope } from "../auth/middleware";
import { collectSteps, startGeneration, streamSteps } from "./inference";
import { listReadable } from "./adapters";
import { AdapterRef, Seed } from "./schemas";
import { refString } from "../store/refs";
import { bearer, errors, json, router, timing } from "./openapi";

export const openai = router();

const Stop = z.union([z.string().min(1).max(64), z.array(z.string().min(1).max(64)).max(4)]);
const CompletionRequest = z
  .object({
    model: AdapterRef.openapi({ example: "demo/define-prefix", description: "the adapter: tenant/name or tenant/name@version" }),
    prompt: z.union([z.string().min(1), z.array(z.string().min(1)).length(1)]).openapi({ example: "volcano" }),
    max_tokens: z.number().int().min(1).optional().openapi({ description: "default 16, capped at MAX_NEW_TOKENS" }),
    temperature: z
      .number()
      .min(0)
      .max(2)
      .optional()
      .openapi({ description: "default 1, as OpenAI's; 0 is greedy (with the adapter's beams, when it has them)" }),
    top_p: z.number().gt(0).max(1).optional(),
    stop: Stop.nullable().optional(),
    seed: Seed.optional(),
    stream: z.boolean().optional(),
    n: z.literal(1).optional().openapi({ description: "one completion per request" }),
    user: z.string().max(256).optional(),
  })
  .openapi("CompletionRequest", { example: { model: "demo/define-prefix", prompt: "volcano", max_tokens: 16, temperature: 0 } });
const Choice = z.object({ text: z.string(), index: z.number().int(), logprobs: z.null(), finish_reason: z.enum(["stop", "length"]).nullable() });
const Completion = z
  .object({
    id: z.string(),
    object: z.literal("text_completion"),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(Choice),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }).optional(),
  })
  .openapi("Completion");
const CompletionEvents = z.string().openapi("CompletionEvents", {
  description:
    "text/event-stream, as OpenAI streams: unnamed `data:` " +
    "frames, each a Completion whose choices[0].text is the new text (finish_reason null until the last, which also has usage), " +
    "then `data: [DONE]`; a failure after the stream started sends a `data:` frame with an Error body instead",
});
const Model = z.object({ id: z.string(), object: z.literal("model"), created: z.number().int(), owned_by: z.string() });

openai.openapi(
  createRoute({
    tags: ["OpenAI-compatible"],
    method: "post",
    path: "/v1/completions",
    security: bearer,
    middleware: [requireScope("read"), limitBody("json")] as const,
    request: { body: { ...json(CompletionRequest), required: true } },
    responses: {
      200: {
        description: "OpenAI-style completion (JSON, or data: frames ending with [DONE] when stream is true)",
        content: { ...json(Completion).content, "text/event-stream": { schema: CompletionEvents } },
      },
      ...errors,
    },
  }),
  async (c) => {
    const b = c.req.valid("json");
    const stop = b.stop == null ? undefined : typeof b.stop === "string" ? [b.stop] : b.stop;
    const { ids, steps, stops, maxNew, record, t0, t1, t2 } = await startGeneration(c, b.model, Array.isArray(b.prompt) ? b.prompt[0] : b.prompt, {
      maxNewTokens: b.max_tokens ?? Math.min(16, c.var.limits.maxNewTokens),
      temperature: b.temperature ?? 1,
      topP: b.top_p,
      seed: b.seed,
      stop,
    });
    const head = {
      id: `cmpl-${c.var.requestId}`,
      object: "text_completion" as const,
      created: Math.floor(Date.now() / 1000),
      model: refString(b.model),
    };
    const usage = (n: number) => ({ prompt_tokens: ids.length, completion_tokens: n, total_tokens: ids.length + n });
    if (b.stream) {
      timing(c, { adapter: t1 - t0, tokenize: t2 - t1 });
      const frame = (text: string, finish: "stop" | "length" | null, extra = {}) =>
        JSON.stringify({ ...head, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }], ...extra });
      return streamSteps(
        c,
        steps,
        record,
        {
          delta: (s, text) => s.writeSSE({ data: frame(text, null) }),
          done: async (s, _text, last) => {
            await s.writeSSE({ data: frame("", finishReason(record.generated_tokens, last, maxNew), { usage: usage(record.generated_tokens) }) });
            await s.writeSSE({ data: "[DONE]" });
          },
          error: (s, body) => s.writeSSE({ data: JSON.stringify(body) }),
        },
        stops,
      ) as never;
    }
    const last = await collectSteps(steps, record);
    timing(c, { adapter: t1 - t0, tokenize: t2 - t1, inference: performance.now() - t2 });
    const n = record.generated_tokens;
    return c.json(
      { ...head, choices: [{ text: last?.text ?? "", index: 0, logprobs: null, finish_reason: finishReason(n, last, maxNew) }], usage: usage(n) },
      200,
    );
  },
);

openai.openapi(
  createRoute({
    tags: ["OpenAI-compatible"],
    method: "get",
    path: "/v1/models",
    security: bearer,
    middleware: [requireScope("read")] as const,
    responses: {
      200: {
        description: "the generation adapters this key may use, as OpenAI models",
        ...json(z.object({ object: z.literal("list"), data: z.array(Model) })),
      },
      ...errors,
    },
  }),
  async (c) => {
    const docs = (await listReadable(c)).filter((d) => d.task === "generate");
    return c.json(
      {
        object: "list" as const,
        data: docs.map((d) => ({
          id: d.alias,
          object: "model" as const,
          created: Math.floor(Date.parse(d.updated) / 1000) || 0,
          owned_by: d.alias.split("/")[0],
        })),
      },
      200,
    );
  },
);
