// The errors every layer of the worker throws: a stable code that the API returns and a message for people. No HTTP
// here: store, auth and engine know nothing of statuses; src/api/errors.ts maps each code to one status, in one table.
export const ERROR_CODES = [
  "http_error",
  "invalid_adapter_ref",
  "invalid_json",
  "invalid_request",
  "max_new_tokens_over_cap",
  "wrong_task",
  "no_default_adapter",
  "invalid_key",
  "missing_key",
  "forbidden",
  "insufficient_scope",
  "adapter_not_found",
  "not_found",
  "version_not_found",
  "alias_conflict",
  "backbone_mismatch",
  "no_previous_version",
  "adapter_too_large",
  "payload_too_large",
  "text_too_long",
  "too_many_items",
  "unsupported_media_type",
  "adapter_invalid",
  "template_too_long",
  "rate_limited",
  "config_invalid",
  "internal",
  "adapter_corrupt",
  "backbone_unavailable",
  "storage_unavailable",
  "auth_unavailable",
  "usage_unavailable",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class DomainError extends Error {
  constructor(
    public code: ErrorCode,
    message: string,
    public headers: Record<string, string> = {},
  ) {
    super(message);
  }
}
