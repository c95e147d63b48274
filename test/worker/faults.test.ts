// Faults in workerd: damaged artifacts refused at publish and at load (while every other adapter keeps serving),
// object storage failing or hanging (bounded retries, then 503), and readers racing publishes and rollbacks.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { bytes, hex, join, newKey, plant, postJson, putAdapter, seedDefaults, split, withHeader } from "./helpers";

let good: Uint8Array; // demo/spam-prefix's artifact
let key: string;
const serving = async () => {
  const r = await postJson("/v1/classify", key, { adapter: "demo/spam-prompt", text: "are we still on for lunch?" });
  return r.status;
};

/** the tensors' checksum as adapter.py computes it: sha256 over the tensors' bytes in name order */
async function withChecksum(buf: Uint8Array): Promise<Uint8Array> {
  const { header, data } = split(buf);
  const names = Object.keys(header)
    .filter((k) => k !== "__metadata__")
    .sort();
  const parts = names.map((n) => data.subarray(header[n].data_offsets[0], header[n].data_offsets[1]));
  header.__metadata__.checksum = await hex(new Uint8Array(await new Blob(parts).arrayBuffer()));
  return join(header, data);
}

const flip = (buf: Uint8Array, at: number) => {
  const b = buf.slice();
  b[at] ^= 0x10;
  return b;
};

// each kind of damage, and the error it must get at publish (at load: 502 adapter_corrupt, or 409 for a backbone)
const damage: [string, () => Promise<Uint8Array> | Uint8Array, number, string][] = [
  ["empty", () => new Uint8Array(0), 422, "adapter_invalid"],
  ["not safetensors (JSON)", () => new TextEncoder().encode('{"kv_prefix": [1, 2, 3]}'), 422, "adapter_invalid"],
  [
    "header length past the end",
    () => {
      const b = good.slice();
      new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
      return b;
    },
    422,
    "adapter_invalid",
  ],
  ["truncated in the header", () => good.slice(0, 100), 422, "adapter_invalid"],
  ["truncated in the tensors", () => good.slice(0, good.length - 1000), 422, "adapter_invalid"],
  ["trailing bytes", () => new Uint8Array([...good, 0, 0, 0, 0]), 422, "adapter_invalid"],
  ["bit flip in the tensors (checksum)", () => flip(good, good.length - 500), 422, "adapter_invalid"],
  ["bit flip in the header JSON", () => flip(good, 8), 422, "adapter_invalid"],
  [
    "shape lie: shape vs byte range",
    () =>
      withHeader(good, (h) => {
        h.kv_prefix.shape[3] = 15;
      }),
    422,
    "adapter_invalid",
  ],
  [
    "shape lie: fits the bytes, not the backbone",
    () =>
      withHeader(good, (h) => {
        h.kv_prefix.shape = [4, 2, 4, 8, 64];
        h.__metadata__.num_virtual_tokens = "8";
      }),
    422,
    "adapter_invalid",
  ],
  [
    "metadata: virtual tokens lie",
    () =>
      withHeader(good, (h) => {
        h.__metadata__.num_virtual_tokens = "20";
      }),
    422,
    "adapter_invalid",
  ],
  [
    "metadata: labels missing",
    () =>
      withHeader(good, (h) => {
        delete h.__metadata__.labels;
      }),
    422,
    "adapter_invalid",
  ],
  [
    "metadata: not a softedge adapter",
    () =>
      withHeader(good, (h) => {
        h.__metadata__.format = "peft";
      }),
    422,
    "adapter_invalid",
  ],
  [
    "NaN in the prefix (checksum recomputed)",
    async () => {
      const { header, data } = split(good);
      const d = data.slice();
      if (header.kv_prefix.dtype === "F16")
        d[header.kv_prefix.data_offsets[0] + 1] = 0x7e; // float16 0x7eXX: NaN
      else d.set([0x00, 0x00, 0xc0, 0x7f], header.kv_prefix_scale.data_offsets[0]); // an int8 prefix's scale: float32 NaN
      return withChecksum(join(header, d));
    },
    422,
    "adapter_invalid",
  ],
  [
    "wrong backbone id",
    () =>
      withHeader(good, (h) => {
        h.__metadata__.backbone = "another-backbone-000000000000";
      }),
    409,
    "backbone_mismatch",
  ],
];

beforeAll(async () => {
  await seedDefaults();
  good = await bytes("adapters/default/spam-prefix.safetensors");
  key = await newKey("acme", "publish");
});

describe("damaged artifacts", () => {
  it.each(damage)("%s: refused at publish, nothing written", async (_name, make, status, code) => {
    const before = (await env.BUCKET.list({ prefix: "adapters/acme/" })).objects.length;
    const r = await putAdapter("acme/damaged", key, await make());
    const j: any = await r.json();
    expect([r.status, j.error.code]).toEqual([status, code]);
    expect(j.error.message.length).toBeGreaterThan(10);
    expect((await env.BUCKET.list({ prefix: "adapters/acme/" })).objects.length).toBe(before);
    expect(await serving()).toBe(200);
  });

  it.each(damage.filter((d) => d[0] !== "empty"))(
    "%s: found in the bucket anyway, refused at load; others keep serving",
    async (name, make, status) => {
      const alias = `acme/planted-${damage.findIndex((d) => d[0] === name)}`;
      await plant(alias, await make());
      const r = await postJson("/v1/classify", key, { adapter: alias, text: "hello" });
      const j: any = await r.json();
      expect([r.status, j.error.code]).toEqual(status === 409 ? [409, "backbone_mismatch"] : [502, "adapter_corrupt"]);
      expect(await serving()).toBe(200);
    },
  );

  it("refuses to roll an alias back onto a version damaged in the bucket", async () => {
    const r1 = await putAdapter("acme/guarded", key, good);
    const v1 = ((await r1.json()) as any).version;
    await putAdapter("acme/guarded", key, await bytes("adapters/default/spam-prompt.safetensors"));
    await env.BUCKET.put(`adapters/acme/guarded/versions/${v1}.safetensors`, flip(good, good.length - 500));
    const r = await postJson("/v1/adapters/acme/guarded/rollback", key, {});
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([502, "adapter_corrupt"]);
    const alias: any = await (await env.BUCKET.get("adapters/acme/guarded/alias.json"))!.json();
    expect(alias.version).not.toBe(v1);
  });
});

describe("object storage faults", () => {
  /** the real bucket behind a switch: healthy, throwing, or never answering; counts adapter-version reads */
  function faulty() {
    const s = { mode: "ok" as "ok" | "throw" | "hang", failures: 0, reads: 0 };
    const gate = async () => {
      if (s.mode === "hang") return new Promise<never>(() => {});
      if (s.mode === "throw" || s.failures > 0) {
        s.failures = Math.max(0, s.failures - 1);
        throw new Error("R2 internal error (injected)");
      }
    };
    const b = env.BUCKET;
    const bucket = {
      get: async (k: string, o?: R2GetOptions) => {
        if (k.includes("/versions/")) s.reads++;
        await gate();
        return b.get(k, o);
      },
      head: async (k: string) => {
        await gate();
        return b.head(k);
      },
      put: async (k: string, v: any, o?: R2PutOptions) => {
        await gate();
        return b.put(k, v, o);
      },
      list: async (o?: R2ListOptions) => {
        await gate();
        return b.list(o);
      },
    } as unknown as R2Bucket;
    return { s, env: { ...env, BUCKET: bucket, R2_ATTEMPTS: "3", R2_TIMEOUT_MS: "100" } };
  }

  it("retries transient errors, answers 503 storage_unavailable when they persist or R2 hangs, recovers after", async () => {
    expect(await serving()).toBe(200); // backbone loaded from the healthy bucket
    const f = faulty();
    const v = await plant("acme/flaky", await bytes("adapters/default/spam-prompt.safetensors"));
    const ask = (ref: string) => postJson("/v1/classify", key, { adapter: ref, text: "hello" }, f.env);
    // two failures, then an answer: retried within one request
    f.s.failures = 2;
    let r = await ask(`acme/flaky@${v}`);
    expect(r.status).toBe(200);
    expect(f.s.reads).toBe(3);
    // every attempt fails: 503 after exactly R2_ATTEMPTS tries
    const v2 = await plant("acme/flaky2", await bytes("adapters/default/topic-prefix.safetensors"));
    for (const mode of ["throw", "hang"] as const) {
      f.s.mode = mode;
      f.s.reads = 0;
      r = await ask(`acme/flaky2@${v2}`);
      const j: any = await r.json();
      expect([mode, r.status, j.error.code, f.s.reads]).toEqual([mode, 503, "storage_unavailable", 3]);
      expect(r.headers.get("retry-after")).toBe("1");
      // adapters already in the isolate's cache keep serving through the outage
      expect((await ask(`acme/flaky@${v}`)).status).toBe(200);
      // a publish during the outage fails cleanly
      r = await putAdapter("acme/during-outage", key, good, f.env);
      expect([r.status, ((await r.json()) as any).error.code]).toEqual([503, "storage_unavailable"]);
    }
    f.s.mode = "ok";
    expect((await ask(`acme/flaky2@${v2}`)).status).toBe(200);
    expect(await env.BUCKET.head("adapters/acme/during-outage/alias.json")).toBeNull();
  });
});

describe("concurrency", () => {
  it("readers racing publishes and rollbacks always get a complete, valid version (0 torn reads)", async () => {
    // six versions: three header variants of each of two different adapters (same labels, different answers)
    const bases = [good, await bytes("adapters/default/spam-prompt.safetensors")];
    const variants = bases.flatMap((b, i) =>
      [0, 1, 2].map((j) => ({
        base: i,
        buf: withHeader(b, (h) => {
          h.__metadata__.created = `v${j}`;
        }),
      })),
    );
    const versions = await Promise.all(variants.map(async (v) => ({ ...v, version: (await hex(v.buf)).slice(0, 16) })));
    const texts = ["WIN a FREE cruise now", "lunch tomorrow?", "cheap meds online", "minutes of the meeting attached"];
    // the answer each underlying adapter gives, from pinned single calls
    await putAdapter("acme/race", key, versions[0].buf);
    const expected: Record<string, any[]> = {};
    for (const v of versions) {
      await putAdapter("acme/race", key, v.buf);
      expected[v.version] = await Promise.all(
        texts.map(async (t) => await (await postJson("/v1/classify", key, { adapter: `acme/race@${v.version}`, text: t })).json()),
      );
    }
    const unlimited = { ...env, RATE_LIMITER: undefined }; // thousands of calls from one tenant: not a rate-limit test
    let torn = 0,
      reads = 0;
    const seen = new Set<string>(),
      failedWrites: string[] = [];
    const read = async (t: number) => {
      const r = await postJson("/v1/classify", key, { adapter: "acme/race", text: texts[t] }, unlimited);
      reads++;
      const j: any = await r.json();
      const want = expected[j.version]?.[t];
      seen.add(j.version);
      if (
        r.status !== 200 ||
        !want ||
        j.label !== want.label ||
        Object.keys(want.probabilities).some((l) => Math.abs(j.probabilities[l] - want.probabilities[l]) > 1e-4)
      )
        torn++;
    };
    const write = async (i: number) => {
      const r =
        i % 3 === 2
          ? await postJson("/v1/adapters/acme/race/rollback", key, {}, unlimited)
          : await putAdapter("acme/race", key, versions[(i * 7) % versions.length].buf, unlimited);
      if (r.status >= 300) failedWrites.push(`${r.status} ${await r.text()}`);
    };
    // each round: two writers (publish or rollback) and eight readers in flight at once
    const rounds = 40;
    for (let i = 0; i < rounds; i++)
      await Promise.all([write(2 * i), write(2 * i + 1), ...Array.from({ length: 8 }, (_, k) => read((i + k) % texts.length))]);
    expect(failedWrites).toEqual([]);
    expect(torn).toBe(0);
    expect(seen.size).toBeGreaterThan(2);
    const alias: any = await (await env.BUCKET.get("adapters/acme/race/alias.json"))!.json();
    expect(versions.map((v) => v.version)).toContain(alias.version);
    for (const h of alias.history) expect(versions.map((v) => v.version)).toContain(h);
    console.log(`concurrency: ${reads} reads during ${2 * rounds} publishes/rollbacks (2 at a time), ${seen.size} versions seen, ${torn} torn`);
  });
});
