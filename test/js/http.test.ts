// scripts/lib/http.mjs, the Node scripts' HTTP client, against a Node HTTP server behind a proxy that drops
// connections before answering: which requests it sends again (idempotent ones, with their body intact), which it
// never does (an unmarked POST), and that any response, 5xx included, reaches the caller as it came.
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_RETRIES, request } from "../../scripts/lib/http.mjs";
import { droppingProxy } from "./dropping-proxy";

let server: Server, proxy: Awaited<ReturnType<typeof droppingProxy>>;
const received: { method: string; bytes: number; sha: string }[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    const h = createHash("sha256");
    let bytes = 0;
    req.on("data", (d) => {
      h.update(d);
      bytes += d.length;
    });
    req.on("end", () => {
      received.push({ method: req.method ?? "", bytes, sha: h.digest("hex") });
      res.statusCode = req.url === "/busy" ? 503 : 200;
      res.end(JSON.stringify({ method: req.method, bytes }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  proxy = await droppingProxy(`http://127.0.0.1:${address.port}`);
});
afterAll(() => {
  proxy?.close();
  server?.close();
});

describe("the shared HTTP client", () => {
  it("sends a PUT again after its connection dropped, with the same body bytes", async () => {
    const body = new Uint8Array(300_000).map((_, i) => i * 7);
    received.length = 0;
    const sent = proxy.counts.requests;
    proxy.dropNext(2);
    const r = await request(`${proxy.base}/put`, { method: "PUT", body });
    expect([r.status, await r.json()]).toEqual([200, { method: "PUT", bytes: body.length }]);
    expect(proxy.counts.requests - sent).toBe(3);
    expect(received).toEqual([{ method: "PUT", bytes: body.length, sha: createHash("sha256").update(body).digest("hex") }]);
  });

  it("gives up after its bounded retries with the transport's error", async () => {
    const sent = proxy.counts.requests;
    proxy.dropNext(MAX_RETRIES + 1);
    await expect(request(`${proxy.base}/get`)).rejects.toMatchObject({ code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/) });
    expect(proxy.counts.requests - sent).toBe(MAX_RETRIES + 1);
  });

  it("sends an unmarked POST once; a POST marked idempotent is retried", async () => {
    let sent = proxy.counts.requests;
    proxy.dropNext(1);
    await expect(request(`${proxy.base}/post`, { method: "POST", body: "{}" })).rejects.toMatchObject({
      code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/),
    });
    expect(proxy.counts.requests - sent).toBe(1);
    sent = proxy.counts.requests;
    proxy.dropNext(1);
    expect((await request(`${proxy.base}/post`, { method: "POST", body: "{}", idempotent: true })).status).toBe(200);
    expect(proxy.counts.requests - sent).toBe(2);
  });

  it("returns a 503 as it came, without retrying it", async () => {
    received.length = 0;
    const r = await request(`${proxy.base}/busy`);
    expect([r.status, r.ok, await r.json()]).toEqual([503, false, { method: "GET", bytes: 0 }]);
    expect(received.length).toBe(1);
  });

  it("refuses a body it could not send twice", async () => {
    await expect(request(`${proxy.base}/put`, { method: "PUT", body: Readable.from(["x"]) as any })).rejects.toThrow(/string or bytes/);
  });
});
