// `npm run score:served`: a committed default adapter published into a fresh `wrangler dev` and scored through
// POST /v1/classify. Four texts whose answers from the served spam-prefix are known (two plain spam, two list mails
// it reads as ham), one of them labelled against its answer: accuracy 0.75, and both figures follow from the answers
// the command records. Bad input ends with one line before any server starts. One wrangler dev start in all.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "softedge-score-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ADAPTER = "adapters/default/spam-prefix.safetensors";
/** the command's exit status and output, without blocking the event loop */
const score = (...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile("node", ["scripts/score-served.mjs", ...args], { cwd: ROOT, encoding: "utf8" }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
    ),
  );
const jsonl = (name: string, rows: unknown[]) => {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n");
  return p;
};

// [text, what the served demo/spam-prefix answers, the label given]
const ROWS: [string, string, string][] = [
  ["WIN a FREE cruise!!! Click here to claim your prize now", "spam", "spam"],
  ["URGENT: your account has won $1,000,000. Reply with your bank details to claim", "spam", "spam"],
  ["URL: http://www.newsisfree.com/click/\nDate: Not supplied\n\nThe article discusses the new release of the Linux kernel.", "ham", "ham"],
  ["Subject: [SAdev] bug 1234 fixed in CVS\n\nThe scoring rule for the spam test now handles the header correctly.", "ham", "spam"],
];

describe("score-served", () => {
  it("scores an adapter through wrangler dev's /v1/classify and stops the server", async () => {
    const evalFile = jsonl(
      "eval.jsonl",
      ROWS.map(([text, , label]) => ({ text, label })),
    );
    const out = join(dir, "scores.json");
    const r = await score("--adapter", ADAPTER, "--eval", evalFile, "--name", "spam-under-test", "--batch", "3", "--out", out);
    expect(r.stderr).not.toContain("error:");
    expect(r.status).toBe(0);
    const [res] = JSON.parse(readFileSync(out, "utf8")).results;
    expect(res.predicted).toEqual(ROWS.map(([, answer]) => answer));
    // the figures, recomputed here from the recorded answers
    const gold = ROWS.map(([, , label]) => label);
    const f1 = (l: string) => {
      const tp = gold.filter((g, i) => g === l && res.predicted[i] === l).length;
      const fp = gold.filter((g, i) => g !== l && res.predicted[i] === l).length;
      const fn = gold.filter((g, i) => g === l && res.predicted[i] !== l).length;
      return (2 * tp) / (2 * tp + fp + fn);
    };
    expect(res.accuracy).toBe(gold.filter((g, i) => g === res.predicted[i]).length / gold.length);
    expect(res.accuracy).toBe(0.75);
    expect(res.macro_f1).toBeCloseTo((f1("spam") + f1("ham")) / 2, 12);
    expect(res.macro_f1).toBeCloseTo((4 / 5 + 2 / 3) / 2, 12);
    const sha = createHash("sha256")
      .update(readFileSync(join(ROOT, ADAPTER)))
      .digest("hex");
    expect(res).toMatchObject({ adapter: ADAPTER, sha256: sha, eval: evalFile, examples: 4, alias: expect.stringMatching(/\/spam-under-test$/) });
    expect(res.version).toBe(sha.slice(0, 16));
    expect(res.wall_s).toBeGreaterThan(0);
    expect(r.stdout.trim()).toMatch(
      new RegExp(`^${ADAPTER} on ${evalFile}: accuracy 0\\.7500, macro-F1 0\\.7333 \\(4 examples, 0 cut to the token budget, [\\d.]+ s\\)$`),
    );
    // the server it started is gone once the command has returned
    const base = /wrangler dev on (http:\/\/127\.0\.0\.1:\d+)/.exec(r.stderr)![1];
    let up = true;
    for (let k = 0; k < 50 && up; k++) {
      up = await fetch(`${base}/healthz`).then(
        () => true,
        () => false,
      );
      if (up) await new Promise((w) => setTimeout(w, 100));
    }
    expect(up).toBe(false);
  });

  it("refuses a missing file, bad JSONL, a label the adapter lacks, a generation adapter and a damaged one, in one line", async () => {
    const good = jsonl("good.jsonl", [{ text: "hello", label: "ham" }]);
    const junk = join(dir, "junk.safetensors");
    writeFileSync(junk, "this is not an adapter artifact");
    const cases: [string[], string][] = [
      [["--adapter", "runs/none/adapter.safetensors", "--eval", good], "error: runs/none/adapter.safetensors: no such file"],
      [["--adapter", ADAPTER, "--eval", join(dir, "none.jsonl")], `error: ${join(dir, "none.jsonl")}: no such file`],
      [["--adapter", ADAPTER, "--eval", jsonl("bad.jsonl", [{ text: "a", label: "ham" }, "{not json"])], "not valid JSON"],
      [["--adapter", ADAPTER, "--eval", jsonl("nolabel.jsonl", [{ text: "a" }])], `error: ${join(dir, "nolabel.jsonl")}:1: missing "label"`],
      [
        [
          "--adapter",
          ADAPTER,
          "--eval",
          jsonl("eggs.jsonl", [
            { text: "a", label: "ham" },
            { text: "b", label: "eggs" },
          ]),
        ],
        `error: ${join(dir, "eggs.jsonl")}:2: label "eggs" is not one of ${ADAPTER}'s labels (ham, spam)`,
      ],
      [["--adapter", "adapters/default/define-prefix.safetensors", "--eval", good], "only classification adapters are scored"],
      [["--adapter", junk, "--eval", good], `error: ${junk}: not a valid adapter artifact: `], // the worker's refusal, at publish
      [["--adapter", ADAPTER, "--eval", good, "--adapter", ADAPTER], "error: give --adapter FILE --eval FILE pairs (got 2 --adapter, 1 --eval)"],
      [["--adapter", ADAPTER, "--eval", good, "--batch", "33"], "error: --batch must be a whole number from 1 to 32 (the worker's MAX_ITEMS)"],
    ];
    for (const [args, message] of cases) {
      const r = await score(...args);
      expect([r.status, r.stdout]).toEqual([2, ""]);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^error: /);
      expect(lines[0]).toContain(message);
    }
    expect((await score("--adapter", ADAPTER, "--eval", join(dir, "bad.jsonl"))).stderr).toMatch(/^error: .*bad\.jsonl:2: not valid JSON \(/);
  });
});
