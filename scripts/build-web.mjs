// Builds the worker's static assets (wrangler.toml [assets]: dist/web): the playground (GET /) and the API docs
// (GET /docs) from web/, with Swagger UI copied from its npm package, so that nothing is fetched from the internet.
// Run by scripts/setup.sh (so `npm start`, `npm test` and `npm run deploy` always serve the current pages);
// writes to a temporary folder and renames it into place.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

const out = "dist/web",
  tmp = `${out}.tmp`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(join(tmp, "vendor", "swagger-ui"), { recursive: true });
// _headers: the pages' security headers (Content-Security-Policy and others), which Workers static assets apply
for (const f of readdirSync("web")) if (/\.(html|css|svg)$|^_headers$/.test(f)) copyFileSync(join("web", f), join(tmp, f));
await build({
  entryPoints: ["web/playground.ts", "web/docs.ts"],
  outdir: tmp,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  logLevel: "warning",
});
const ui = "node_modules/swagger-ui-dist";
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"]) copyFileSync(join(ui, f), join(tmp, "vendor", "swagger-ui", f));
rmSync(out, { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
renameSync(tmp, out);
