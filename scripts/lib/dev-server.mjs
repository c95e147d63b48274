// `wrangler dev` on loopback with a fresh local state seeded with the default catalog and dev keys, for the
// benchmark and the load test: start, wait for /healthz, measure workerd's memory, stop.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { request } from "./http.mjs";

/** a loopback port no one listens on now (the system picks it), for a server started next */
export const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

// config: another wrangler config (the benchmark's own worker); seed: false for a worker without the bucket and keys
export async function startDev({ state, port, vars = {}, seedArgs = [], devArgs = [], beforeStart = () => {}, config, seed = true }) {
  rmSync(state, { recursive: true, force: true }); // a fresh bucket each run
  if (seed) execFileSync("node", ["scripts/seed-local-r2.mjs", "--persist-to", state, ...seedArgs], { stdio: "inherit" });
  beforeStart(); // e.g. more keys into the local KV, while no runtime holds it
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
  const t0 = performance.now();
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const configArgs = config ? ["-c", config] : [];
  const wd = spawn(
    "npx",
    ["wrangler", "dev", ...configArgs, "--persist-to", state, "--port", String(port), "--ip", "127.0.0.1", ...varArgs, ...devArgs],
    {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  let log = "";
  wd.stdout.on("data", (d) => {
    log += d;
  });
  wd.stderr.on("data", (d) => {
    log += d;
  });
  const stop = () => {
    try {
      process.kill(-wd.pid, "SIGTERM");
    } catch {}
  };
  process.on("exit", stop);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await request(`${base}/healthz`)).ok) break; // a refused connect is retried inside request(), with backoff
    } catch {}
    if (Date.now() > deadline) {
      stop();
      throw new Error(`wrangler dev did not come up:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  /** resident memory of the workerd process(es) wrangler started, MB (the largest) */
  const rss = () => {
    const pids = execFileSync("pgrep", ["-f", "workerd serve"]).toString().trim().split("\n");
    return Math.max(...pids.map((p) => Number(readFileSync(`/proc/${p}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024));
  };
  return { base, stop, rss, readyMs: performance.now() - t0, log: () => log };
}
