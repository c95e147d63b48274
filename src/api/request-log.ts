// One structured JSON log line per request, an x-request-id header on every response (errors included), and the
// request's usage counted for its tenant (src/usage.ts).
// The line names the request, the tenant, what ran and what it cost; never a key, a secret or any input text.
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { recordUsage } from "../usage";

/** What the handlers add to the request's log line (src/api/inference.ts). */
export interface RequestRecord {
  task?: "classify" | "generate";
  adapters?: { ref: string; version: string; cache: "hit" | "miss" }[];
  items?: number;
  input_tokens?: number;
  generated_tokens?: number;
  /** the error code a stream sent after its 200 */
  stream_error?: string;
  /** a streamed response: the line waits for the stream's end */
  done?: Promise<void>;
}

export const requestLog: MiddlewareHandler<AppEnv> = async (c, next) => {
  const id = crypto.randomUUID();
  const record: RequestRecord = {};
  c.set("requestId", id);
  c.set("record", record);
  await next();
  c.header("x-request-id", id);
  let errorCode: string | null = null;
  if (c.res.status >= 400 && c.res.headers.get("content-type")?.includes("application/json")) {
    try {
      errorCode = ((await c.res.clone().json()) as { error?: { code?: string } }).error?.code ?? null;
    } catch {
      /* not our error shape */
    }
  }
  const status = c.res.status;
  const write = () => {
    const { done: _, stream_error, ...fields } = record; // read when written: a stream counts its tokens until it ends
    console.log(
      JSON.stringify({
        request_id: id,
        method: c.req.method,
        path: new URL(c.req.url).pathname,
        status,
        tenant: c.get("principal")?.tenant ?? null,
        ...fields,
        error_code: errorCode ?? stream_error ?? null,
      }),
    );
  };
  const count = () => {
    // usage: successful inference only
    const tenant = c.get("principal")?.tenant;
    if (status !== 200 || !tenant || !record.task || record.stream_error) return;
    recordUsage(c.env, {
      tenant,
      task: record.task,
      adapter: record.adapters?.[0]?.ref ?? "",
      items: record.items ?? 0,
      inputTokens: record.input_tokens ?? 0,
      generatedTokens: record.generated_tokens ?? 0,
    });
  };
  const countAndWrite = () => {
    count();
    write();
  };
  if (!record.done) return countAndWrite();
  const logged = record.done.then(countAndWrite, write);
  try {
    c.executionCtx.waitUntil(logged);
  } catch {
    /* no execution context (app.request in tests): it runs on */
  }
};
