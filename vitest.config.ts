import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";

const root = new URL(".", import.meta.url).pathname;

export default defineConfig({
  test: {
    // the worker's per-request log lines (src/api/request-log.ts) would bury the report; tests that check them spy
    onConsoleLog: (log) => (log.startsWith('{"request_id"') ? false : undefined),
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      // offline-side parity and the engine in Node (onnxruntime-node and onnxruntime-web's wasm build)
      { extends: true, test: { name: "node", include: ["test/js/**/*.test.ts"], environment: "node" } },
      // the worker inside workerd, with miniflare's R2; FIXTURES serves repo files to tests (read-only)
      {
        extends: true,
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // a second rate limiter with a small limit, for the test that hits it (the app's own is in wrangler.toml)
              ratelimits: { TIGHT_LIMITER: { simple: { limit: 3, period: 60 } } },
              serviceBindings: {
                async FIXTURES(request: Request) {
                  const path = resolve(root, decodeURIComponent(new URL(request.url).pathname.slice(1)));
                  if (!path.startsWith(root + "test/fixtures/") && !path.startsWith(root + "adapters/"))
                    return new Response("forbidden", { status: 403 });
                  try {
                    return new Response(await readFile(path));
                  } catch {
                    return new Response("not found", { status: 404 });
                  }
                },
              },
            },
          }),
        ],
        test: { name: "workerd", include: ["test/worker/**/*.test.ts"] },
      },
    ],
  },
});
