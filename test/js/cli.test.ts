// `npx softedge <command>`: the one entry point lists its commands, passes arguments through to each script (a
// Python module's --help is argparse's, a Node script's is its opening comment), and refuses an unknown command.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";

const ROOT = new URL("../../", import.meta.url).pathname;
const softedge = (...args: string[]) => spawnSync("npx", ["--no-install", "softedge", ...args], { cwd: ROOT, encoding: "utf8" });

describe("npx softedge", () => {
  it("lists its commands", () => {
    const r = softedge();
    expect(r.status).toBe(0);
    for (const c of ["datasets", "pretrain", "tune", "compare", "pack", "import-peft", "export-peft", "publish", "keys", "seed", "deploy", "score"])
      expect(r.stdout).toMatch(new RegExp(`^  ${c} +\\S`, "m"));
  });

  it("passes --help through to each command", () => {
    const tune = softedge("tune", "--help");
    expect(tune.status).toBe(0);
    expect(tune.stdout).toContain("--readout {head,verbalizer}");
    const deploy = softedge("deploy", "--help");
    expect(deploy.status).toBe(0);
    expect(deploy.stdout).toContain("npm run deploy -- --dry-run");
  });

  it("refuses an unknown command, and passes a command's own one-line errors through", () => {
    const r = softedge("nope");
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^error: unknown command "nope"; one of: datasets, /)]);
    const t = softedge("tune", "--task", "classify", "--train", "/nonexistent.jsonl", "--out", "/tmp/x");
    expect(t.status).toBe(2);
    expect(t.stderr.trim()).toBe("error: /nonexistent.jsonl: no such file");
  });
});

describe("the name rule", () => {
  it("is the same in the key CLI (plain JS) as in the worker's src/store/refs.ts", async () => {
    const { NAME: workerName } = await import("../../src/store/refs");
    const { NAME: keysName } = await import("../../scripts/lib/keys.mjs");
    expect(keysName.source).toBe(workerName.source);
  });
});
