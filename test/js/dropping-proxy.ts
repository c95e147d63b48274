// A TCP proxy in front of a server that makes kept-alive connections go stale on purpose: it serves one request per
// connection and, when a second request arrives on it, closes the socket before any response byte (what a client
// sees when the server's keep-alive timeout passed unnoticed). dropNext(n) also closes the next n connections on
// their first request (a reset before any response, for clients that send only one request).
import { connect, createServer, type Socket } from "node:net";

export async function droppingProxy(target: string) {
  const { hostname, port } = new URL(target);
  const counts = { connections: 0, requests: 0, dropped: 0 }; // requests: each one that reached the proxy
  let dropFirst = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    counts.connections++;
    sockets.add(client);
    const dropAtOnce = dropFirst > 0;
    if (dropAtOnce) dropFirst--;
    const upstream = connect(Number(port), hostname);
    let answered = false,
      started = false;
    const drop = () => {
      if (client.destroyed) return;
      counts.dropped++;
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (d) => {
      if (!started || answered) counts.requests++; // a request's first bytes (no pipelining: one at a time)
      started = true;
      if (dropAtOnce || answered) drop();
      else upstream.write(d);
    });
    upstream.on("data", (d) => {
      answered = true;
      client.write(d);
    });
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      a.on("error", () => {});
      a.on("close", () => b.destroy());
    }
    client.on("close", () => sockets.delete(client));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the proxy has no port");
  return {
    base: `http://127.0.0.1:${address.port}`,
    counts,
    dropNext: (n: number) => {
      dropFirst = n;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
