// Shared pieces of the route modules: a router whose validation failures are JSON errors, body/response helpers.
import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { AppEnv } from "../app-env";
import { errorBody } from "./errors";
import type { ErrorCode } from "../errors";
import { ErrorResponse } from "./schemas";

export const json = <T extends z.ZodTypeAny>(schema: T) => ({ content: { "application/json": { schema } } });
const err = (description: string) => ({ description, ...json(ErrorResponse) });
export const errors = {
  400: err("invalid request"),
  401: err("missing or invalid API key"),
  403: err("the key's scope or tenant does not allow this"),
  404: err("unknown adapter, or one this key may not read"),
  409: err("adapter for another backbone, or a conflicting change"),
  413: err("too large"),
  422: err("not a valid adapter artifact"),
  429: err("rate limited"),
  502: err("the stored adapter is damaged"),
  503: err("object storage, the key store or the backbone is unavailable"),
};
export const bearer = [{ apiKey: [] }];

export const router = () =>
  new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const where = issue?.path?.length ? `${issue.path.join(".")}: ` : "";
        // a schema may name its own error code (the adapter reference's invalid_adapter_ref)
        const code = (issue as { params?: { code?: ErrorCode } } | undefined)?.params?.code ?? "invalid_request";
        return c.json(errorBody(code, `${where}${issue?.message ?? "invalid request"}`), 400);
      }
    },
  });

/** Server-Timing entries: adapter load, tokenize, inference (ms) */
/**
 * Server-Timing for an inference response. On Cloudflare, performance.now() advances only across I/O (a Spectre
 * mitigation), so only the adapter step, which waits on R2 and KV, measures there; the CPU-only steps (tokenize,
 * inference) read about 0 in production and are labelled as local-development figures.
 */
export function timing(c: { header: (k: string, v: string) => void }, t: Record<string, number>) {
  const io = new Set(["adapter"]);
  c.header(
    "Server-Timing",
    Object.entries(t)
      .map(
        ([k, v]) =>
          `${k};dur=${v.toFixed(1)}${io.has(k) ? ';desc="storage and key lookups"' : ';desc="CPU time: local development only (0 on Cloudflare)"'}`,
      )
      .join(", "),
  );
}
