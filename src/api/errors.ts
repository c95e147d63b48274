// Every error leaves the API as {"error": {"code", "message"}} with a 4xx/5xx status; never a stack trace.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConfigError } from "../config";
import { DomainError, type ErrorCode } from "../errors";

/** The one place a domain error becomes an HTTP status (a missing code fails the type check). */
export const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  http_error: 400,
  invalid_adapter_ref: 400,
  invalid_json: 400,
  invalid_request: 400,
  max_new_tokens_over_cap: 400,
  wrong_task: 400,
  no_default_adapter: 400,
  invalid_key: 401,
  missing_key: 401,
  forbidden: 403,
  insufficient_scope: 403,
  adapter_not_found: 404,
  not_found: 404,
  version_not_found: 404,
  alias_conflict: 409,
  backbone_mismatch: 409,
  no_previous_version: 409,
  adapter_too_large: 413,
  payload_too_large: 413,
  text_too_long: 413,
  too_many_items: 413,
  unsupported_media_type: 415,
  adapter_invalid: 422,
  template_too_long: 422,
  rate_limited: 429,
  config_invalid: 500,
  internal: 500,
  adapter_corrupt: 502,
  backbone_unavailable: 503,
  storage_unavailable: 503,
  auth_unavailable: 503,
  usage_unavailable: 503,
};

export const errorBody = (code: ErrorCode, message: string) => ({ error: { code, message } });

export function onError(err: Error, c: Context) {
  if (err instanceof DomainError) return c.json(errorBody(err.code, err.message), STATUS[err.code], err.headers);
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code =
      ({ 400: "invalid_json", 413: "payload_too_large", 415: "unsupported_media_type" } as Record<number, ErrorCode>)[status] ?? "http_error";
    return c.json(errorBody(code, err.message || "bad request"), status);
  }
  if (err instanceof ConfigError) {
    console.error(err.message);
    return c.json(errorBody("config_invalid", err.message), 500);
  }
  console.error("unhandled", err);
  return c.json(errorBody("internal", "internal error"), 500);
}
