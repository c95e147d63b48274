// Request and response shapes; they validate requests and generate the OpenAPI document.
import { z } from "@hono/zod-openapi";

const AdapterRef = z.string().min(3).max(160).openapi({ example: "demo/spam-prefix", description: "tenant/name or tenant/name@version" });
const Text = z.string().min(1).openapi({ example: "WIN a FREE cruise!!! Reply now" });

export const ClassifyItem = z.object({ adapter: AdapterRef, text: Text }).strict();
export const ClassifyRequest = z
  .object({ adapter: AdapterRef.optional(), text: Text.optional(), items: z.array(ClassifyItem).min(1).optional() })
  .strict()
  .refine((b) => (b.items ? b.adapter === undefined && b.text === undefined : b.adapter !== undefined && b.text !== undefined), {
    message: "give either adapter and text, or items: [{adapter, text}, ...]",
  })
  .openapi("ClassifyRequest");

export const ClassifyResult = z
  .object({
    label: z.string(),
    probabilities: z.record(z.string(), z.number()),
    adapter: z.string(),
    version: z.string(),
    truncated: z.boolean().openapi({ description: "the text was cut to the token limit (its start is kept)" }),
  })
  .openapi("ClassifyResult");
export const ClassifyResponse = z.union([ClassifyResult, z.object({ results: z.array(ClassifyResult) })]).openapi("ClassifyResponse");

export const GenerateRequest = z
  .object({
    adapter: AdapterRef,
    input: Text,
    max_new_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(5).optional(),
    top_k: z.number().int().min(0).max(100000).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    stop: z.array(z.string().min(1).max(64)).max(8).optional(),
    stream: z.boolean().optional(),
  })
  .strict()
  .openapi("GenerateRequest");
export const GenerateResponse = z
  .object({ text: z.string(), tokens: z.number().int(), adapter: z.string(), version: z.string(), truncated: z.boolean() })
  .openapi("GenerateResponse");

export const ErrorResponse = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).openapi("Error");
export const AdapterInfo = z.object({}).passthrough().openapi("AdapterInfo");
export const AdapterSummary = z
  .object({ alias: z.string(), version: z.string(), task: z.string(), kind: z.string(), backbone: z.string(), updated: z.string() })
  .openapi("AdapterSummary");
