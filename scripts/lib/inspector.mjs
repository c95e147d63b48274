// A DevTools-protocol client for a `wrangler dev` started with `--inspector-port PORT`: the isolate's heap figures
// (Runtime.getHeapUsage), for bench:memory and the load test.
import WebSocket from "ws";
import { request } from "./http.mjs";

export async function connectInspector(port) {
  const targets = await (await request(`http://127.0.0.1:${port}/json`)).json();
  // wrangler's inspector proxy accepts DevTools connections only with an Origin header
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { origin: `http://127.0.0.1:${port}` } });
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  let id = 0;
  const pending = new Map();
  ws.on("message", (m) => {
    const d = JSON.parse(m);
    pending.get(d.id)?.(d);
    pending.delete(d.id);
  });
  /** one DevTools call; rejects on an error answer or after timeoutMs */
  const cdp = (method, params = {}, timeoutMs = 30_000) =>
    new Promise((ok, fail) => {
      const my = ++id;
      const t = setTimeout(() => fail(new Error(`inspector: no answer to ${method}`)), timeoutMs);
      pending.set(my, (d) => {
        clearTimeout(t);
        d.error ? fail(new Error(d.error.message)) : ok(d.result);
      });
      ws.send(JSON.stringify({ id: my, method, params }));
    });
  return { cdp, close: () => ws.close() };
}
