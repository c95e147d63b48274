#!/usr/bin/env node
// One entry point for softedge's offline and operations commands: `npx softedge <command> [args]`.
// Each command is the repo's own script (Python modules run by scripts/py with Debian's interpreter, Node scripts
// directly); `npx softedge <command> --help` prints that command's options.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const py = (module, what) => ({ run: ["bash", join(root, "scripts/py"), module], what });
const node = (script, what) => ({ run: ["node", join(root, "scripts", script)], what });
const COMMANDS = {
  datasets: py("datasets", "build the task data sets (spam, WordNet topics and definitions) into .cache/data"),
  corpus: py("corpus", "build the pretraining corpus into .cache/corpus (--version v2: the broader one, .cache/corpus-v2)"),
  throughput: py("throughput", "pretraining tokens/s for each threads / sequence length / batch setting"),
  pretrain: py("pretrain", "pretrain a backbone, or continue one (--init-from BUNDLE)"),
  bundle: py("bundle", "export weights as a backbone bundle (ONNX, int8, tokenizer, config)"),
  probe: py("probe", "a backbone's probe suite: held-out perplexity and linear probes"),
  tune: py("tune", "train an adapter (prompt or prefix tuning, head or verbalizer) or a baseline"),
  compare: py("compare", "prompt vs prefix vs full fine-tuning vs naive Bayes, as a report"),
  pack: py("pack", "inspect an adapter artifact, or re-pack it at another storage dtype (--dtype int8)"),
  "import-peft": py("peft_import", "import a Hugging Face PEFT adapter folder"),
  "export-peft": py("peft_export", "export an adapter as a PEFT folder, or the backbone as a Hugging Face Llama checkpoint"),
  retarget: py("retarget", "move adapters to a re-exported bundle of the same weights (measured when the math differs)"),
  publish: py("publish", "publish, list or roll back an adapter (through the API or straight into R2)"),
  keys: node("keys.mjs", "create, list or revoke API keys"),
  seed: node("seed-local-r2.mjs", "seed the local R2 and KV with the default catalog and dev keys"),
  deploy: node("deploy.mjs", "deploy to Cloudflare (--dry-run: build, size and plan only)"),
  bench: node("bench.mjs", "the edge benchmark (writes BENCHMARKS.md)"),
  "bench-memory": node("bench-memory.mjs", "the isolate's memory under the worst requests"),
  score: node("score-served.mjs", "accuracy and macro-F1 of classification adapters as served (wrangler dev, POST /v1/classify)"),
};

function usage() {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    "usage: npx softedge <command> [args]   (npx softedge <command> --help for its options)",
    "",
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.what}`),
  ].join("\n");
}

const [cmd, ...args] = process.argv.slice(2);
if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
  console.log(usage());
  process.exit(0);
}
const c = COMMANDS[cmd];
if (!c) {
  console.error(`error: unknown command ${JSON.stringify(cmd)}; one of: ${Object.keys(COMMANDS).join(", ")}`);
  process.exit(2);
}
if (c.run[0] === "node" && (args.includes("--help") || args.includes("-h"))) {
  // the Node scripts document themselves in their opening comment
  const head = readFileSync(c.run[1], "utf8")
    .split("\n")
    .filter((l) => !l.startsWith("#!"));
  console.log(
    head
      .slice(
        0,
        head.findIndex((l) => !l.startsWith("//")),
      )
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n"),
  );
  process.exit(0);
}
const r = spawnSync(c.run[0], [...c.run.slice(1), ...args], { stdio: "inherit", cwd: root });
process.exit(r.status ?? 1);
