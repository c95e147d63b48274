// The edge engine (src/engine) in ONNX Runtime Web against the golden answers the Python side wrote for the
// default backbone and adapters (scripts/py fixtures golden): template + tokenizer ids, label probabilities,
// greedy generation; and a batch mixing every adapter answers exactly as single requests.
import { parityTolerance } from "../parity-tolerance";
import { describe, expect, it, beforeAll } from "vitest";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-web";
import { parseAdapter, AdapterError, type Adapter } from "../../src/engine/adapter";
import { sessionLevel, type BackboneConfig } from "../../src/engine/backbone-config";
import { classifyBatch } from "../../src/engine/classify";
import { planPasses, runBatch } from "../../src/engine/batch";
import { bannedTokens, generate, pickToken, pickTokenSorted, prng, topTokens, withoutStopStart } from "../../src/engine/generate";
import { encodePrompt } from "../../src/engine/prompt";
import { loadTokenizer } from "../../src/engine/tokenizer";

const ROOT = new URL("../../", import.meta.url).pathname;
const catalog = JSON.parse(readFileSync(ROOT + "adapters/catalog.json", "utf8"));
const BUNDLE = process.env.BUNDLE ?? `${ROOT}adapters/backbones/${catalog.default_backbone}/`;
const ADAPTERS = process.env.ADAPTER_DIR ?? `${ROOT}adapters/default/`;
const golden = JSON.parse(readFileSync(process.env.GOLDEN ?? ROOT + "test/fixtures/golden.json", "utf8"));
const cfg: BackboneConfig = JSON.parse(readFileSync(BUNDLE + "/config.json", "utf8"));
const tok = loadTokenizer(JSON.parse(readFileSync(BUNDLE + "/tokenizer.json", "utf8"))); // as the worker makes it
// the golden answers come from PyTorch doing the int8 graph's own math (test/parity-tolerance.ts: why dynamic
// graphs get a wider bound)
const TOL = parityTolerance(cfg.quantization).probabilities;

interface GCase {
  text?: string;
  input?: string;
  prompt_ids: number[];
  probabilities?: Record<string, number>;
  label?: string;
  greedy_ids?: number[];
  plain_greedy_ids?: number[];
  no_repeat_ngram_size?: number;
  num_beams?: number;
  beam_ids?: number[];
  beam_ids_4_tokens?: number[];
  beam_ids_stop_space?: number[];
}

describe("edge engine vs Python golden outputs", () => {
  let session: ort.InferenceSession;
  const adapters: Record<string, Adapter> = {};
  beforeAll(async () => {
    ort.env.wasm.numThreads = 1;
    session = await ort.InferenceSession.create(new Uint8Array(readFileSync(BUNDLE + "/model.onnx")), {
      executionProviders: ["wasm"],
      graphOptimizationLevel: sessionLevel(cfg), // as the worker loads it
    });
    for (const a of golden.adapters) adapters[a.adapter] = await parseAdapter(new Uint8Array(readFileSync(ADAPTERS + "/" + a.adapter)), cfg);
  }, 60_000);

  it("loads the default bundle at the level its graph was pre-optimised for; a graph as exported at 'all'", () => {
    expect(cfg.ort_optimization?.at_load).toBe("basic"); // the default bundle is pre-optimised (scripts/py bundle)
    expect(sessionLevel(cfg)).toBe("basic");
    expect(sessionLevel({ id: "x" })).toBe("all");
    expect(() => sessionLevel({ id: "x", ort_optimization: { offline: "extended", at_load: "fast" as "basic", by: "" } })).toThrow(/at_load "fast"/);
  });

  it("fills templates and tokenizes as Python does", () => {
    for (const a of golden.adapters)
      for (const c of a.cases as GCase[]) {
        const field = a.task === "classify" ? "text" : "input";
        expect(encodePrompt(tok, adapters[a.adapter].template, field, (c.text ?? c.input)!, golden.max_tokens)).toEqual(c.prompt_ids);
      }
  });

  it("classifies each item as PyTorch does, singly and in one batch mixing adapters", async () => {
    const items: { ids: number[]; adapter: Adapter; want: GCase }[] = [];
    for (const a of golden.adapters.filter((x: { task: string }) => x.task === "classify"))
      for (const c of a.cases as GCase[]) items.push({ ids: c.prompt_ids, adapter: adapters[a.adapter], want: c });
    expect(items.length).toBeGreaterThan(0);
    const singles = [];
    for (const it of items) singles.push((await classifyBatch(ort, session, cfg, [it], 1024))[0]);
    const mixed = await classifyBatch(ort, session, cfg, items, 1 << 16);
    // a budget that fits only a few rows per pass: several passes, the same answers
    const width = Math.max(...items.map((it) => it.adapter.virtualTokens + it.ids.length));
    expect(
      planPasses(
        items.map((it) => it.adapter.virtualTokens + it.ids.length),
        2 * width,
      ).length,
    ).toBeGreaterThan(2);
    const passes = await classifyBatch(ort, session, cfg, items, 2 * width);
    items.forEach((it, i) => {
      expect(singles[i].label).toBe(it.want.label);
      for (const [l, p] of Object.entries(it.want.probabilities!)) {
        expect(Math.abs(singles[i].probabilities[l] - p)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(mixed[i].probabilities[l] - singles[i].probabilities[l])).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(passes[i].probabilities[l] - singles[i].probabilities[l])).toBeLessThanOrEqual(1e-4);
      }
    });
  });

  it("copies out of ORT only the outputs a pass reads, with the same values", async () => {
    const a = golden.adapters.find((x: { task: string }) => x.task === "classify");
    const item = { ids: a.cases[0].prompt_ids, kv: adapters[a.adapter].kv, virtualTokens: adapters[a.adapter].virtualTokens };
    const all = await runBatch(ort, session, cfg, [item]);
    const hiddenOnly = await runBatch(ort, session, cfg, [item], undefined, { logits: false, presents: false, hidden: true });
    expect(hiddenOnly.logits.length).toBe(0);
    expect(hiddenOnly.presents).toEqual([]);
    expect(Array.from(hiddenOnly.hidden!)).toEqual(Array.from(all.hidden!));
    const logitsOnly = await runBatch(ort, session, cfg, [item], undefined, { logits: true, presents: false, hidden: false });
    expect(logitsOnly.hidden).toBeNull();
    expect(Array.from(logitsOnly.logits)).toEqual(Array.from(all.logits));
    expect(all.presents.length).toBe(2 * cfg.num_layers);
  });

  it("plans passes under the slot budget, longest rows first, every row once", () => {
    const slots = [10, 128, 40, 128, 7, 200, 64];
    const passes = planPasses(slots, 256);
    expect(passes.flat().sort((a, b) => a - b)).toEqual(slots.map((_, i) => i));
    for (const p of passes) expect(p.length === 1 || p.length * Math.max(...p.map((i) => slots[i])) <= 256).toBe(true);
    expect(passes[0]).toEqual([5]); // 200 slots: a pass of its own
    expect(planPasses([300], 256)).toEqual([[0]]); // longer than the budget still runs
  });

  it("never samples a banned token (logit -Infinity), whatever the draw", () => {
    const rng = prng(5);
    const logits = Float32Array.from({ length: cfg.vocab_size }, (_, i) => (i % 2 ? Number.NEGATIVE_INFINITY : rng() * 4));
    for (const o of [{ temperature: 1 }, { temperature: 8 }, { temperature: 1, topP: 0.9999 }, { temperature: 1, topK: 8000 }])
      for (const draw of [0, rng(), rng(), 1 - 1e-12, 1 - 2 ** -53]) {
        expect(pickToken(logits, { maxNewTokens: 1, ...o }, () => draw) % 2, JSON.stringify({ o, draw })).toBe(0);
        expect(pickTokenSorted(logits, { maxNewTokens: 1, ...o }, () => draw) % 2, JSON.stringify({ o, draw })).toBe(0);
      }
  });

  it("samples what the full sort of the vocabulary samples, for the same draw", () => {
    const rng = prng(11);
    const normal = () => Math.sqrt(-2 * Math.log(rng() || 1e-12)) * Math.cos(2 * Math.PI * rng());
    const options: { temperature: number; topK?: number; topP?: number }[] = [
      { temperature: 1 },
      { temperature: 0.7, topK: 40 },
      { temperature: 1, topP: 0.9 },
      { temperature: 1.3, topK: 50, topP: 0.95 },
      { temperature: 0.05 },
      { temperature: 8 }, // nearly flat: most of the vocabulary within the walk
      { temperature: 1, topK: 8000 },
    ];
    options.push({ temperature: 1, topP: 0.9999 });
    // one token far ahead of the rest, whose tokens each weigh under 1e-7 of it but together 7e-4 of the mass: the
    // nucleus of 0.9999 and the highest draws reach into them
    const peaked = Float32Array.from({ length: cfg.vocab_size }, (_, i) => (i === 7 ? 0 : -16.2));
    let cases = 0;
    for (let n = 0; n < 13; n++) {
      const logits = n === 12 ? peaked : Float32Array.from({ length: cfg.vocab_size }, () => 3 * normal());
      for (const o of options)
        for (const draw of [rng(), rng(), rng(), 0, 1 - 1e-12]) {
          // 1 - 1e-12: a draw into the tokens far below the most likely one (the full walk's last steps)
          expect(
            pickToken(logits, { maxNewTokens: 1, ...o }, () => draw),
            JSON.stringify({ n, o, draw }),
          ).toBe(pickTokenSorted(logits, { maxNewTokens: 1, ...o }, () => draw));
          cases++;
        }
    }
    expect(cases).toBe(13 * options.length * 5);
  });

  it("gives the event loop a turn before every ONNX Runtime pass, in classification and generation", async () => {
    // ORT Web's run never waits on I/O, so without these turns a runtime polls no socket until a request's passes are
    // all done; under load workerd then closed keep-alive connections whose next request sat unread for 5 s
    // one tick per turn of Node's event loop (setImmediate: no 1 ms clamp, so every turn counts)
    let turns = 0,
      running = true;
    const tick = () => {
      if (!running) return;
      turns++;
      setImmediate(tick);
    };
    const counted = async (work: () => Promise<unknown>) => {
      turns = 0;
      running = true;
      setImmediate(tick);
      await work();
      running = false;
      return turns;
    };
    const a = golden.adapters.find((x: { task: string }) => x.task === "classify");
    const items = (a.cases as GCase[]).map((c) => ({ ids: c.prompt_ids, adapter: adapters[a.adapter] }));
    const width = Math.max(...items.map((it) => it.adapter.virtualTokens + it.ids.length));
    const passes = planPasses(
      items.map((it) => it.adapter.virtualTokens + it.ids.length),
      width,
    ).length;
    expect(passes).toBeGreaterThan(1);
    expect(await counted(() => classifyBatch(ort, session, cfg, items, width))).toBeGreaterThanOrEqual(passes);
    const g = golden.adapters.find((x: { task: string }) => x.task === "generate");
    const steps = async () => {
      for await (const _ of generate(ort, session, cfg, adapters[g.adapter], g.cases[0].prompt_ids, (x) => tok.decode(x), { maxNewTokens: 6 }));
    };
    expect(await counted(steps)).toBeGreaterThanOrEqual(6);
  });

  it("generates greedily what PyTorch generates, with the adapter's no-repeat n-gram size", async () => {
    const gens = golden.adapters.filter((x: { task: string }) => x.task === "generate");
    expect(gens.length).toBeGreaterThan(0);
    for (const a of gens)
      for (const c of a.cases as GCase[]) {
        const n = adapters[a.adapter].generation.no_repeat_ngram_size ?? 0;
        expect(n).toBe(c.no_repeat_ngram_size);
        for (const [size, want] of [
          [n, c.greedy_ids],
          [0, c.plain_greedy_ids],
        ] as const) {
          const ids: number[] = [];
          for await (const s of generate(ort, session, cfg, adapters[a.adapter], c.prompt_ids, (x) => tok.decode(x), {
            maxNewTokens: golden.max_new_tokens,
            noRepeatNgram: size,
          }))
            ids.push(s.token);
          expect(ids).toEqual(want);
        }
      }
  });

  it("decodes with the adapter's beams as PyTorch's beam search does, to </s>, to max_new_tokens and to a stop string", async () => {
    const a = golden.adapters.find((x: { task: string }) => x.task === "generate");
    const adapter = adapters[a.adapter];
    const k = adapter.generation.num_beams ?? 1;
    expect(k).toBeGreaterThan(1); // the tuner chose beams on its dev split for the default adapter
    const realRun = session.run.bind(session);
    let runs = 0;
    const run = async (c: GCase, o: object) => {
      const steps: { token: number; text: string; stopped?: true; runs: number }[] = [];
      for await (const s of generate(ort, session, cfg, adapter, c.prompt_ids, (x) => tok.decode(x), {
        maxNewTokens: golden.max_new_tokens,
        noRepeatNgram: c.no_repeat_ngram_size,
        stop: adapter.generation.stop,
        numBeams: Math.max(k, 2),
        ...o,
      }))
        steps.push({ ...s, runs });
      return steps;
    };
    let differs = 0,
      early = 0,
      stopped = 0;
    session.run = ((...x: Parameters<typeof realRun>) => (runs++, realRun(...x))) as typeof realRun;
    try {
      for (const c of a.cases as GCase[]) {
        expect(c.num_beams).toBe(k);
        runs = 0;
        const steps = await run(c, {});
        expect(steps.map((s) => s.token)).toEqual(c.beam_ids);
        expect(steps.at(-1)?.text).toBe(tok.decode(c.beam_ids!));
        for (const s of steps) expect(tok.decode(c.beam_ids!).startsWith(s.text)).toBe(true);
        if (steps.length && steps[0].runs < runs) early++; // settled tokens come out while the search goes on
        if (c.beam_ids!.join() !== c.greedy_ids!.join()) differs++;
        // the search's other ends against PyTorch: at max_new_tokens, and at a stop string (its text cut there)
        expect((await run(c, { maxNewTokens: 4 })).map((s) => s.token)).toEqual(c.beam_ids_4_tokens);
        const space = await run(c, { stop: [" "] });
        expect(space.map((s) => s.token)).toEqual(c.beam_ids_stop_space);
        expect(space.at(-1)?.text ?? "").not.toContain(" ");
        if (space.at(-1)?.stopped) stopped++;
      }
    } finally {
      session.run = realRun;
    }
    expect(differs).toBeGreaterThan(0); // beams leave greedy's path on some golden case
    expect(early).toBeGreaterThan(0);
    expect(stopped).toBeGreaterThan(0);
    await expect(run((a.cases as GCase[])[0], { numBeams: 2, temperature: 1 })).rejects.toThrow(/greedy/);
  });

  it("holds back only what could begin a stop string", () => {
    expect(withoutStopStart("a mountain", ["\n"])).toBe("a mountain");
    expect(withoutStopStart("a moun", ["mount"])).toBe("a ");
    expect(withoutStopStart("a mo", ["o!"])).toBe("a m");
    expect(withoutStopStart("a mo", ["mount", "o!"])).toBe("a "); // the longest such end
    expect(withoutStopStart("a mountain", ["mount"])).toBe("a mountain"); // a whole stop string is the cut's business
    expect(withoutStopStart("", ["ab"])).toBe("");
  });

  it("picks the k best tokens, ties to the lower id, never a banned one", () => {
    const lp = Float64Array.from([-1, -0.5, -3, -0.5, Number.NEGATIVE_INFINITY, -0.1, -2]);
    expect(topTokens(lp, 3)).toEqual([5, 1, 3]);
    expect(topTokens(lp, 1)).toEqual([5]);
    expect(topTokens(lp, 10)).toEqual([5, 1, 3, 0, 6, 2]);
    const big = Float64Array.from({ length: 500 }, (_, i) => Math.sin(i * 7.3));
    const want = Array.from(big.keys())
      .sort((x, y) => big[y] - big[x] || x - y)
      .slice(0, 8);
    expect(topTokens(big, 8)).toEqual(want);
  });

  it("bans exactly the tokens that would repeat an n-gram of the generated text", () => {
    expect(bannedTokens([5, 6, 7, 5], 2)).toEqual([6]);
    expect(bannedTokens([5, 6, 5, 7, 5], 2).sort()).toEqual([6, 7]);
    expect(bannedTokens([5, 6, 7, 5, 6], 3)).toEqual([7]);
    expect(bannedTokens([5, 6, 7], 1)).toEqual([5, 6, 7]);
    expect(bannedTokens([5, 6, 7, 5], 0)).toEqual([]);
    expect(bannedTokens([], 2)).toEqual([]);
  });

  it("with a no-repeat n-gram size, no generated pair repeats; without one, greedy loops on some input", async () => {
    const a = golden.adapters.find((x: { task: string }) => x.task === "generate");
    const run = async (ids: number[], n: number) => {
      const out: number[] = [];
      for await (const s of generate(ort, session, cfg, adapters[a.adapter], ids, (x) => tok.decode(x), { maxNewTokens: 32, noRepeatNgram: n }))
        out.push(s.token);
      return out;
    };
    const pairs = (o: number[]) => o.slice(1).map((t, i) => `${o[i]},${t}`);
    let looped = 0;
    for (const c of (a.cases as GCase[]).slice(0, 8)) {
      const plain = await run(c.prompt_ids, 0);
      const banned = await run(c.prompt_ids, 2);
      if (new Set(pairs(plain)).size < pairs(plain).length) looped++;
      expect(new Set(pairs(banned)).size).toBe(pairs(banned).length);
    }
    expect(looped).toBeGreaterThan(0); // the ban has something to do on the default adapter
  });

  it("covers both classification readouts (a head and a verbalizer) in the golden cases", () => {
    const readouts = golden.adapters.filter((x: { task: string }) => x.task === "classify").map((x: { readout: string }) => x.readout);
    expect(new Set(readouts)).toEqual(new Set(["head", "verbalizer"]));
    for (const a of golden.adapters) expect(adapters[a.adapter].head === null).toBe(a.readout !== "head");
  });

  it("refuses a head that does not fit its labels or its backbone", async () => {
    const file = golden.adapters.find((x: { readout: string }) => x.readout === "head").adapter;
    const verb = golden.adapters.find((x: { readout: string }) => x.readout === "verbalizer").adapter;
    const buf = new Uint8Array(readFileSync(ADAPTERS + "/" + file));
    const a = await parseAdapter(buf, cfg);
    const K = a.head!.bagIds.length;
    await expect(parseAdapter(buf, { ...cfg, outputs: cfg.outputs.filter((o) => o !== "hidden_states") })).rejects.toMatchObject({
      code: "backbone_mismatch",
    });
    await expect(
      parseAdapter(withMetadata(buf, { readout: JSON.stringify({ type: "head", pooling: "mean", bag_tokens: K + 1 }) }), cfg),
    ).rejects.toMatchObject({ code: "adapter_corrupt" });
    await expect(
      parseAdapter(withMetadata(buf, { readout: JSON.stringify({ type: "head", pooling: "max", bag_tokens: K }) }), cfg),
    ).rejects.toMatchObject({ code: "adapter_corrupt" });
    const vbuf = new Uint8Array(readFileSync(ADAPTERS + "/" + verb));
    await expect(
      parseAdapter(withMetadata(vbuf, { readout: JSON.stringify({ type: "head", pooling: "mean", bag_tokens: 0 }) }), cfg),
    ).rejects.toMatchObject({ code: "adapter_corrupt" });
    await expect(parseAdapter(withMetadata(vbuf, { readout: JSON.stringify({ type: "forest" }) }), cfg)).rejects.toMatchObject({
      code: "adapter_corrupt",
    });
  });

  it("reads an int8 head through its per-row scales, and refuses one whose scales are missing or mistyped", async () => {
    const heads = golden.adapters.filter((x: { readout: string }) => x.readout === "head").map((x: { adapter: string }) => x.adapter);
    const stored = await Promise.all(
      heads.map(async (f: string) => [f, await parseAdapter(new Uint8Array(readFileSync(ADAPTERS + "/" + f)), cfg)] as const),
    );
    // the golden cases hold both storage forms, so the classification test above checks both against PyTorch
    expect(new Set(stored.map(([, a]) => a.dtype))).toEqual(new Set(["int8", "float16"]));
    const buf = new Uint8Array(readFileSync(ADAPTERS + "/" + stored.find(([, a]) => a.dtype === "int8")![0]));
    // renaming keeps the name order, so the checksum over the tensors still holds: only the scale check can refuse
    const renamed = withHeader(buf, (h) => {
      h.head_weight_scalf = h.head_weight_scale;
      delete h.head_weight_scale;
    });
    await expect(parseAdapter(renamed, cfg)).rejects.toMatchObject({
      code: "adapter_corrupt",
      message: expect.stringContaining("head_weight_scale"),
    });
    const mistyped = withHeader(buf, (h) => {
      h.bag_weight_scale.dtype = "I32";
    });
    await expect(parseAdapter(mistyped, cfg)).rejects.toMatchObject({
      code: "adapter_corrupt",
      message: expect.stringContaining("bag_weight_scale"),
    });
  });

  it("reads bag ids stored as int16 (since stop 20) and as int32 (artifacts before) alike", async () => {
    const bufs = golden.adapters
      .filter((x: { readout: string }) => x.readout === "head")
      .map((x: { adapter: string }) => new Uint8Array(readFileSync(ADAPTERS + "/" + x.adapter)));
    const buf = bufs.find((b: Uint8Array) => headerOf(b).bag_ids?.dtype === "I16"); // what tune writes now
    expect(buf).toBeDefined();
    const narrow = await parseAdapter(buf, cfg);
    const wide = await parseAdapter(withWideBagIds(buf), cfg);
    expect(narrow.head!.bagIds.length).toBeGreaterThan(0);
    expect(Array.from(wide.head!.bagIds)).toEqual(Array.from(narrow.head!.bagIds));
  });

  it("refuses a damaged adapter and one packed for another backbone", async () => {
    const buf = new Uint8Array(readFileSync(ADAPTERS + "/" + golden.adapters[0].adapter));
    for (const generation of ["null", "[]", '{"no_repeat_ngram_size": 9}', '{"no_repeat_ngram_size": true}'])
      await expect(parseAdapter(withMetadata(buf, { generation }), cfg)).rejects.toMatchObject({ code: "adapter_corrupt" });
    const flipped = buf.slice();
    flipped[flipped.length - 3] ^= 0x40;
    await expect(parseAdapter(flipped, cfg)).rejects.toMatchObject({ code: "adapter_corrupt" });
    await expect(parseAdapter(buf.slice(0, buf.length - 9), cfg)).rejects.toBeInstanceOf(AdapterError);
    await expect(parseAdapter(buf, { ...cfg, id: "another-backbone" })).rejects.toMatchObject({ code: "backbone_mismatch" });
  });
});

/** The same artifact with some metadata entries replaced (the checksum covers the tensors, not the metadata). */
function withMetadata(buf: Uint8Array, patch: Record<string, string>): Uint8Array {
  return withHeader(buf, (header) => Object.assign(header.__metadata__, patch));
}

/** The same artifact with its safetensors header edited (tensor bytes as they are). */
function withHeader(buf: Uint8Array, edit: (header: Record<string, any>) => void): Uint8Array {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  const header = headerOf(buf);
  edit(header);
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + buf.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(buf.subarray(8 + n), 8 + h.length);
  return out;
}

/** A safetensors file's header (tensor names -> dtype, shape, offsets; __metadata__). */
function headerOf(buf: Uint8Array): Record<string, any> {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
}

/** The same artifact with bag_ids re-stored as int32 (the form before stop 20): tensors re-laid, checksum redone. */
function withWideBagIds(buf: Uint8Array): Uint8Array {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  const header = headerOf(buf);
  const data = buf.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const bytes: Record<string, Uint8Array> = {};
  for (const k of names) bytes[k] = data.subarray(...(header[k].data_offsets as [number, number]));
  const ids = header.bag_ids;
  const dv = new DataView(bytes.bag_ids.buffer, bytes.bag_ids.byteOffset, bytes.bag_ids.byteLength);
  bytes.bag_ids = new Uint8Array(Int32Array.from({ length: ids.shape[0] }, (_, i) => dv.getInt16(2 * i, true)).buffer);
  ids.dtype = "I32";
  let at = 0;
  for (const k of names) {
    header[k].data_offsets = [at, at + bytes[k].length];
    at += bytes[k].length;
  }
  const sha = createHash("sha256");
  for (const k of [...names].sort()) sha.update(bytes[k]);
  header.__metadata__.checksum = sha.digest("hex");
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  for (const k of names) out.set(bytes[k], 8 + h.length + header[k].data_offsets[0]);
  return out;
}
