// The one HTTP client of the project's Node scripts (publishing, deploy, benchmarks, load test, dev-server health
// poll): undici's request API on a keep-alive pool, with undici's RetryAgent for requests that failed before any
// response arrived. A pooled connection the server closed while idle (its keep-alive timeout passed, or our event
// loop was busy past it), a reset, or a refused connect while the server restarts is retried on a fresh connection,
// at most MAX_RETRIES times with exponential backoff, and only for an idempotent request. A response with any status
// is returned as it came: retrying 5xx is the caller's decision, not the transport's.
// undici's request API rather than its fetch: fetch hands the body to the dispatcher as a one-shot stream, so
// RetryHandler cannot replay it; here the body is a string or bytes, which it sends again as they are.
import { Agent, RetryAgent, request as undiciRequest } from "undici";

export const MAX_RETRIES = 3; // 4 attempts in all
// errors that mean no response byte arrived: the peer closed or reset the socket, or refused or timed out the connect
const RETRIED_ERRORS = ["UND_ERR_SOCKET", "ECONNRESET", "EPIPE", "ECONNREFUSED", "UND_ERR_CONNECT_TIMEOUT"];
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

const pool = new Agent();
const retrying = new RetryAgent(pool, {
  maxRetries: MAX_RETRIES,
  minTimeout: 100, // 100, 200, 400 ms
  maxTimeout: 2000,
  timeoutFactor: 2,
  methods: [...IDEMPOTENT, "POST"], // which requests may be retried is decided per request, below
  errorCodes: RETRIED_ERRORS,
  statusCodes: [], // every response goes back to the caller
});

/**
 * One request, answered like fetch's Response (status, ok, headers, text(), json()); the body is read whole, as
 * the APIs answer small JSON. `idempotent` defaults to the method's meaning (GET, HEAD, OPTIONS, PUT, DELETE); pass
 * true for a POST that changes nothing or that repeats harmlessly.
 * @param {string} url
 * @param {{ method?: string, headers?: Record<string, string>, body?: string | Uint8Array, idempotent?: boolean }} [init]
 */
export async function request(url, { method = "GET", headers = {}, body, idempotent = IDEMPOTENT.has(method) } = {}) {
  if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array))
    throw new TypeError("request body must be a string or bytes, so that a retry can send it again");
  const r = await undiciRequest(url, { method, headers, body, dispatcher: idempotent ? retrying : pool });
  const bytes = Buffer.from(await r.body.arrayBuffer());
  return {
    status: r.statusCode,
    ok: r.statusCode >= 200 && r.statusCode < 300,
    headers: new Headers(Object.entries(r.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v])),
    text: async () => bytes.toString("utf8"),
    json: async () => JSON.parse(bytes.toString("utf8")),
  };
}
