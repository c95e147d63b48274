// Request and response shapes; they validate requests and generate the OpenAPI document.
import { z } from "@hono/zod-openapi";
import { NAME, REF_RULE, tryParseRef } from "../store/refs";

/** an adapter reference, parsed here once: handlers receive {tenant, name, version?} (src/store/refs.ts) */
export const AdapterRef = z
  .string()
  .min(3)
  .max(160)
  .openapi({ example: "demo/spam-prefix", description: "tenant/name or tenant/name@version; omitted: the tenant's default adapter for the task" })
  .transform((s, ctx) => {
    const ref = tryParseRef(s);
    if (!ref) ctx.addIssue({ code: "custom", message: REF_RULE, params: { code: "invalid_adapter_ref" } });
    return ref ?? z.NEVER;
  });
const Text = z.string().min(1).openapi({ example: "WIN a FREE cruise!!! Reply now" });

export const ClassifyItem = z.object({ adapter: AdapterRef.optional(), text: Text }).strict();
export const ClassifyRequest = z
  .object({ adapter: AdapterRef.optional(), text: Text.optional(), items: z.array(ClassifyItem).min(1).optional() })
  .strict()
  .refine((b) => (b.items ? b.adapter === undefined && b.text === undefined : b.text !== undefined), {
    message: "give text (and adapter), or items: [{adapter, text}, ...]",
  })
  .openapi("ClassifyRequest", { example: { adapter: "demo/spam-prefix", text: "WIN a FREE cruise!!! Reply now" } });

export const ClassifyResult = z
  .object({
    label: z.string(),
    probabilities: z.record(z.string(), z.number()),
    scores: z
      .array(z.object({ label: z.string(), score: z.number() }))
      .openapi({ description: "the same probabilities as [{label, score}], highest first (Hugging Face pipelines' shape)" }),
    adapter: z.string(),
    version: z.string(),
    truncated: z.boolean().openapi({ description: "the text was cut to the token limit (its start is kept)" }),
  })
  .openapi("ClassifyResult");
export const ClassifyResponse = z.union([ClassifyResult, z.object({ results: z.array(ClassifyResult) })]).openapi("ClassifyResponse");

/** a sampling seed: the same seed, adapter and input give the same text */
export const Seed = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);
export const GenerateRequest = z
  .object({
    adapter: AdapterRef.optional(),
    input: Text,
    max_new_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(5).optional(),
    top_k: z.number().int().min(0).max(100000).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    seed: Seed.optional(),
    stop: z.array(z.string().min(1).max(64)).max(8).optional(),
    no_repeat_ngram_size: z
      .number()
      .int()
      .min(0)
      .max(8)
      .optional()
      .openapi({ description: "never repeat an n-gram of the generated text (0: off); default: the adapter's setting" }),
    num_beams: z
      .number()
      .int()
      .min(1)
      .max(8)
      .optional()
      .openapi({
        description:
          "beam search with this many beams (1: one sequence); greedy only, so not with a temperature above 0; default: the adapter's " +
          "setting when the request is greedy. A stream sends the tokens every remaining beam agrees on, as soon as they are settled",
      }),
    stream: z.boolean().optional(),
  })
  .strict()
  .openapi("GenerateRequest", { example: { adapter: "demo/define-prefix", input: "volcano", max_new_tokens: 24 } });
export const GenerateResponse = z
  .object({
    text: z.string(),
    tokens: z.number().int(),
    finish_reason: z.enum(["stop", "length"]).openapi({ description: "stop: </s> or a stop string; length: max_new_tokens" }),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
    adapter: z.string(),
    version: z.string(),
    truncated: z.boolean(),
  })
  .openapi("GenerateResponse");

/** the server-sent events of /v1/generate with stream: true (documented; the frames are written by inference.ts) */
export const GenerateEvents = z.string().openapi("GenerateEvents", {
  description:
    "text/event-stream: `event: token` frames with " +
    'data {"text": "..."} (the new text), then one `event: done` with a GenerateResponse; a failure after the stream started ' +
    "sends `event: error` with an Error body instead of done",
  example: 'event: token\ndata: {"text":" a"}\n\nevent: done\ndata: {"text":"a mountain ...","tokens":12,...}\n\n',
});
export const ErrorResponse = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).openapi("Error");
export const Readout = z
  .union([
    z.object({ type: z.literal("verbalizer") }),
    z.object({ type: z.literal("head"), pooling: z.enum(["mean", "last"]), bag_tokens: z.number().int() }),
  ])
  .nullable()
  .openapi("Readout", {
    description: "how labels are read: label words (verbalizer) or a head over pooled hidden states (null: a generation adapter)",
  });
export const Training = z
  .object({
    method: z.string().optional().openapi({ description: "prompt, prefix (or an imported PEFT adapter's origin)" }),
    data_sha256: z.string().optional().openapi({ description: "hash of the training file" }),
    train_examples: z.number().int().optional(),
    steps: z.number().int().optional(),
    max_tokens: z.number().int().optional().openapi({ description: "the token budget it was trained with; the edge reads at most this many" }),
    eval: z
      .record(z.string(), z.number())
      .optional()
      .openapi({
        description: "held-out metrics of the training run: accuracy and macro_f1 (classify), rouge_l and exact_match (generate)",
        example: { accuracy: 0.979 },
      }),
  })
  .catchall(z.unknown())
  .openapi("Training", { description: "what the training run recorded" });
export const AdapterInfo = z
  .object({
    alias: z.string(),
    version: z.string(),
    history: z.array(z.string()),
    updated: z.string(),
    kind: z.enum(["prompt", "prefix"]),
    task: z.enum(["classify", "generate"]),
    backbone: z.string(),
    virtual_tokens: z.number().int(),
    dtype: z.string(),
    bytes: z.number().int(),
    template: z.string(),
    labels: z.array(z.object({ name: z.string(), words: z.array(z.string()) })),
    generation: z.object({
      max_new_tokens: z.number().int().optional(),
      stop: z.array(z.string()).optional(),
      no_repeat_ngram_size: z.number().int().optional(),
      num_beams: z.number().int().optional(),
    }),
    training: Training,
    readout: Readout,
  })
  .openapi("AdapterInfo");
export const AdapterSummary = z
  .object({ alias: z.string(), version: z.string(), task: z.string(), kind: z.string(), backbone: z.string(), updated: z.string() })
  .openapi("AdapterSummary");

const Name = z.string().regex(NAME, "lowercase letters, digits, '-' or '_', at most 63");
const Version = z.string().regex(/^[a-f0-9]{16}$/, "16 hex digits");
export const AdapterPath = z.object({
  tenant: Name.openapi({ param: { name: "tenant", in: "path" }, example: "acme" }),
  name: Name.openapi({ param: { name: "name", in: "path" }, example: "spam" }),
});
export const ReaderPath = z.object({ reader: Name.openapi({ param: { name: "reader", in: "path" }, example: "globex" }) });
export const PublishResponse = z
  .object({
    alias: z.string(),
    version: z.string(),
    previous: z.string().nullable(),
    moved: z.boolean(),
    bytes: z.number().int(),
    kind: z.string(),
    task: z.string(),
  })
  .openapi("PublishResponse");
export const RollbackRequest = z
  .object({ version: Version.optional().openapi({ description: "default: the version before the current one" }) })
  .strict()
  .openapi("RollbackRequest");
export const RollbackResponse = z
  .object({ alias: z.string(), version: z.string(), previous: z.string().nullable(), moved: z.boolean() })
  .openapi("RollbackResponse");
export const VersionsResponse = z
  .object({
    alias: z.string(),
    current: z.string(),
    history: z.array(z.string()),
    updated: z.string(),
    versions: z.array(z.object({ version: z.string(), bytes: z.number().int(), uploaded: z.string(), current: z.boolean() })),
  })
  .openapi("Versions");
export const DefaultsUpdate = z
  .object({ classify: AdapterRef.nullable().optional(), generate: AdapterRef.nullable().optional() })
  .strict()
  .openapi("DefaultsUpdate", { description: "the adapter used when a request names none; null removes it" });
export const Defaults = z
  .object({ classify: z.string().optional(), generate: z.string().optional() })
  .openapi("Defaults", { description: "the tenant's default adapter per task" });
export const TenantInfo = z
  .object({
    tenant: z.string(),
    scope: z.string(),
    key_id: z.string(),
    defaults: z.record(z.string(), z.string()),
    readable: z.array(z.string()).openapi({ description: "namespaces this tenant may read: its own, the public ones, granted ones" }),
  })
  .openapi("TenantInfo");
export const Grants = z.object({ tenant: z.string(), readers: z.array(z.string()) }).openapi("Grants");
export const UsageQuery = z.object({
  days: z.coerce
    .number()
    .int()
    .min(1)
    .max(90)
    .default(30)
    .openapi({ param: { name: "days", in: "query" }, description: "Analytics Engine window (days); the isolate tally counts since start" }),
});
export const UsageResponse = z
  .object({
    tenant: z.string(),
    source: z.enum(["analytics-engine", "isolate"]),
    since: z.string(),
    usage: z.array(z.object({ task: z.string(), requests: z.number(), items: z.number(), input_tokens: z.number(), generated_tokens: z.number() })),
  })
  .openapi("Usage");
