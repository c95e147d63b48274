// Every error leaves the API as {"error": {"code", "message"}} with a 4xx/5xx status; never a stack trace.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConfigError } from "../config";

export class ApiError extends Error {
  constructor(public status: ContentfulStatusCode, public code: string, message: string, public headers: Record<string, string> = {}) {
    super(message);
  }
}

export const errorBody = (code: string, message: string) => ({ error: { code, message } });

export function onError(err: Error, c: Context) {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message), err.status, err.headers);
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code = ({ 400: "invalid_json", 413: "payload_too_large", 415: "unsupported_media_type" } as Record<number, string>)[status] ?? "http_error";
    return c.json(errorBody(code, err.message || "bad request"), status);
  }
  if (err instanceof ConfigError) {
    console.error(err.message);
    return c.json(errorBody("config_invalid", err.message), 500);
  }
  console.error("unhandled", err);
  return c.json(errorBody("internal", "internal error"), 500);
}
