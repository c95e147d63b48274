// `npm run deploy`: the dry run works with no network and no credentials (build, gzip size against the plan
// limits, catalog check, the plan), a real deploy without credentials stops before changing anything, and the first
// admin key's file (private, written atomically, never replacing another).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretFileExists, writeSecretFile } from "../../scripts/lib/secret-file.mjs";

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
    // the first admin key goes to a private file, never to stdout; the dry run writes none
    expect(r.stdout).toContain(
      'a first admin key for tenant "main" when the namespace has no keys, written to softedge-admin-key-main.txt (mode 0600)',
    );
    expect(r.stdout).not.toMatch(/se_[0-9a-f]{12}_/);
    expect(existsSync(ROOT + "softedge-admin-key-main.txt")).toBe(false);
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

describe("the admin key file", () => {
  it("is written whole, readable only by its owner, and never replaces an existing file", () => {
    const dir = mkdtempSync(join(tmpdir(), "softedge-key-"));
    try {
      const path = join(dir, "admin-key.txt");
      writeSecretFile(path, "se_0123456789ab_first\n");
      expect(readFileSync(path, "utf8")).toBe("se_0123456789ab_first\n");
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(() => writeSecretFile(path, "se_0123456789ab_second\n")).toThrow(SecretFileExists);
      expect(readFileSync(path, "utf8")).toBe("se_0123456789ab_first\n");
      expect(readdirSync(dir)).toEqual(["admin-key.txt"]); // no temporary file left behind
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
