// R2 access with bounded retries: each attempt has a deadline; thrown errors and timeouts are retried with
// exponential backoff, then the request fails with 503 storage_unavailable. A missing object is an answer, not
// a fault (null, no retry).
import { DomainError } from "../errors";

export interface RetryPolicy {
  attempts: number; // R2_ATTEMPTS, 3
  timeoutMs: number; // R2_TIMEOUT_MS per attempt, 2000
  backoffMs: number; // first pause between attempts, doubled each time
}
/** the bucket a request works on, how hard to try, and the request's waitUntil (reads other requests may share
 *  must outlive the request that started them: workerd cancels a request's pending I/O when it ends) */
export interface Storage {
  bucket: R2Bucket;
  retry: RetryPolicy;
  waitUntil?: (p: Promise<unknown>) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function reliably<T>(io: Storage, what: string, op: () => Promise<T>): Promise<T> {
  const { attempts, timeoutMs, backoffMs } = io.retry;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    if (i) await sleep(backoffMs * 2 ** (i - 1));
    try {
      return await deadline(op(), timeoutMs);
    } catch (e) {
      if (e instanceof DomainError) throw e;
      last = e;
    }
  }
  console.warn(`R2 ${what}: ${attempts} attempts failed: ${last instanceof Error ? last.message : String(last)}`);
  throw new DomainError("storage_unavailable", `object storage did not answer after ${attempts} attempts; retry later`, { "retry-after": "1" });
}

/** an object's bytes, or null when it does not exist */
export const getBytes = (io: Storage, key: string) =>
  reliably(io, `get ${key}`, async () => {
    const o = await io.bucket.get(key);
    return o ? new Uint8Array(await o.arrayBuffer()) : null;
  });

/** an object's JSON and etag, or null when it does not exist */
export const getJson = <T>(io: Storage, key: string) =>
  reliably(io, `get ${key}`, async () => {
    const o = await io.bucket.get(key);
    return o ? { value: await o.json<T>(), etag: o.etag } : null;
  });

/** a listing's pages (each read with retries), following R2's cursor */
export async function* listPages(io: Storage, options: R2ListOptions & { prefix: string }): AsyncGenerator<R2Objects> {
  let cursor: string | undefined;
  do {
    const page = await reliably(io, `list ${options.prefix}`, () => io.bucket.list({ limit: 1000, ...options, cursor }));
    yield page;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
}
