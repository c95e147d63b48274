// `npm run deploy`: the dry run works with no network and no credentials (build, gzip size against the plan
// limits, catalog check, the plan), and a real deploy without credentials stops before changing anything.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const ROOT = new URL("../../", import.meta.url).pathname;
const deploy = (args: string[], env: Record<string, string | undefined> = {}) => {
  const e = { ...process.env, ...env };
  delete e.CLOUDFLARE_API_TOKEN;
  delete e.CLOUDFLARE_ACCOUNT_ID;
  return spawnSync("node", ["scripts/deploy.mjs", ...args], { cwd: ROOT, encoding: "utf8", env: e });
};

describe("deploy", () => {
  it("--dry-run builds the bundle, sizes it against the plans, checks the catalog and prints the plan", () => {
    const r = deploy(["--dry-run"]);
    expect(r.status, r.stderr).toBe(0);
    const gz = /([\d.]+) MiB gzipped -> needs the (Workers Free|Workers Paid) plan/.exec(r.stdout);
    expect(gz).not.toBeNull();
    expect(gz![2]).toBe(Number(gz![1]) <= 3 ? "Workers Free" : "Workers Paid");
    const catalog = JSON.parse(readFileSync(ROOT + "adapters/catalog.json", "utf8"));
    expect(r.stdout).toContain(`catalog: backbone ${catalog.default_backbone}, ${catalog.adapters.length} adapters`);
    for (const a of catalog.adapters) expect(r.stdout).toContain(`       ${a.alias} (`); // published through the API after deploy
    expect(r.stdout).toContain("--dry-run: nothing was changed");
    expect(existsSync(ROOT + "wrangler.deploy.toml")).toBe(false);
  }, 120_000);

  it("refuses to start without credentials, with one line naming what is missing", () => {
    const r = deploy([]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID not set.*nothing was changed/);
    expect(existsSync(ROOT + "wrangler.deploy.toml")).toBe(false);
  });
});
