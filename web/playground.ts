// The playground (GET /): a key, an adapter the key may read, some text; label probabilities as bars, or a
// generation streamed in. It talks to the same public API as any client (src/api), with the key as a bearer token.

type ApiError = { error: { code: string; message: string } };
type Summary = { alias: string; version: string; task: "classify" | "generate"; kind: string };
type Info = Summary & {
  virtual_tokens: number;
  bytes: number;
  dtype: string;
  template: string;
  backbone: string;
  labels: { name: string }[];
  readout: { type: string; pooling?: string; bag_tokens?: number } | null;
  training: { eval?: Record<string, number>; train_examples?: number; max_tokens?: number };
};
type Scored = { label: string; score: number };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const KEY_STORE = "softedge.key";
const remember = () => $<HTMLInputElement>("remember").checked;
const EXAMPLES = { classify: "WIN a FREE cruise!!! Reply now to claim your prize", generate: "volcano" };
let key = "";
let accepted = ""; // the last key the API accepted: the one kept
let adapters: Summary[] = [];

/** The accepted key in this tab's sessionStorage (gone when the tab closes), or, with "remember this key on this
 *  device" ticked, in localStorage (kept until unticked); never in both. */
function keep() {
  const [into, from] = remember() ? [localStorage, sessionStorage] : [sessionStorage, localStorage];
  from.removeItem(KEY_STORE);
  if (accepted) into.setItem(KEY_STORE, accepted);
}

class RequestFailed extends Error {}

/** the API's JSON error as one readable line; anything else (a proxy's HTML page) by its status */
async function failure(r: Response): Promise<RequestFailed> {
  const body = await r.text();
  try {
    const e = (JSON.parse(body) as ApiError).error;
    return new RequestFailed(`${e.message} (${e.code}, HTTP ${r.status})`);
  } catch {
    return new RequestFailed(`HTTP ${r.status} ${r.statusText}`);
  }
}

async function api<T>(path: string, body?: object): Promise<T> {
  const r = await fetch(path, {
    method: body ? "POST" : "GET",
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw await failure(r);
  return (await r.json()) as T;
}

function showError(e: unknown) {
  const el = $("error");
  el.textContent = e instanceof RequestFailed ? e.message : `Something went wrong: ${e instanceof Error ? e.message : String(e)}`;
  el.hidden = false;
}
const clearError = () => {
  $("error").hidden = true;
};

async function connect(k: string) {
  key = k.trim();
  clearError();
  $("adapter-section").hidden = $("run-section").hidden = true;
  try {
    const t = await api<{ tenant: string; scope: string; readable: string[] }>("/v1/tenant");
    adapters = (await api<{ adapters: Summary[] }>("/v1/adapters")).adapters.sort((a, b) => a.alias.localeCompare(b.alias));
    accepted = key;
    keep();
    $("tenant").textContent = `Tenant ${t.tenant} (${t.scope}); reads ${t.readable.join(", ")}: ${adapters.length} adapters.`;
    const sel = $<HTMLSelectElement>("adapter");
    sel.replaceChildren(...adapters.map((a) => new Option(`${a.alias} (${a.task}, ${a.kind})`, a.alias)));
    $("adapter-section").hidden = false;
    // classification first: it is what most adapters here do, and it answers at a glance
    const first = adapters.find((a) => a.task === "classify") ?? adapters[0];
    if (first) {
      sel.value = first.alias;
      await select(first.alias, true);
    }
  } catch (e) {
    $("tenant").textContent = "";
    showError(e);
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function describe(a: Info): [string, string][] {
  const rows: [string, string][] = [
    ["task", a.task],
    ["method", `${a.kind} tuning, ${a.virtual_tokens} virtual tokens`],
    ["stored", `${a.bytes.toLocaleString()} bytes (${a.dtype})`],
    ["version", a.version],
    ["backbone", a.backbone],
  ];
  if (a.readout)
    rows.push([
      "readout",
      a.readout.type === "head" ? `linear head (${a.readout.pooling} pooling, bag of ${a.readout.bag_tokens} tokens)` : a.readout.type,
    ]);
  if (a.labels.length) rows.push(["labels", a.labels.map((l) => l.name).join(", ")]);
  for (const [k, v] of Object.entries(a.training.eval ?? {}))
    rows.push([`eval ${k.replace("_", " ")}`, k === "accuracy" || k === "exact_match" ? pct(v) : v.toFixed(3)]);
  if (a.training.train_examples) rows.push(["trained on", `${a.training.train_examples.toLocaleString()} examples`]);
  return rows;
}

async function select(alias: string, fillExample = false) {
  clearError();
  $("labels").replaceChildren();
  $("generation").hidden = true;
  try {
    const a = await api<Info>(`/v1/adapters/${alias}`);
    $("meta").replaceChildren(
      ...describe(a).flatMap(([k, v]) => [
        Object.assign(document.createElement("dt"), { textContent: k }),
        Object.assign(document.createElement("dd"), { textContent: v }),
      ]),
    );
    const gen = a.task === "generate";
    $("run").textContent = gen ? "Generate" : "Classify";
    $("text-label").textContent = gen ? "Input" : "Text";
    $("max-label").hidden = !gen;
    const text = $<HTMLTextAreaElement>("text");
    if (fillExample || !text.value) text.value = EXAMPLES[a.task];
    $("run-section").hidden = false;
    $("meta").dataset.alias = alias; // the page is ready for this adapter
  } catch (e) {
    showError(e);
  }
}

function bars(scores: Scored[]) {
  $("labels").replaceChildren(
    ...scores.map((s, i) => {
      const row = document.createElement("div");
      row.className = "label-row" + (i === 0 ? " top" : "");
      row.dataset.label = s.label;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.append(Object.assign(document.createElement("div"), { style: `width:${(100 * s.score).toFixed(1)}%` }));
      row.append(
        Object.assign(document.createElement("span"), { className: "name", textContent: s.label }),
        bar,
        Object.assign(document.createElement("span"), { className: "score", textContent: pct(s.score) }),
      );
      return row;
    }),
  );
}

/** POST /v1/generate with stream: true; server-sent events token / done / error (src/api/inference.ts) */
async function stream(adapter: string, input: string, maxNew: number) {
  const out = $("generation");
  out.textContent = "";
  out.hidden = false;
  const r = await fetch("/v1/generate", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ adapter, input, max_new_tokens: maxNew, stream: true }),
  });
  if (!r.ok || !r.body) throw await failure(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1] ?? "message";
      const data = frame
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      if (event === "token") out.textContent += (JSON.parse(data) as { text: string }).text;
      else if (event === "error") {
        const e = (JSON.parse(data) as ApiError).error;
        throw new RequestFailed(`${e.message} (${e.code}, during the stream)`);
      } else if (event === "done") {
        const d = JSON.parse(data) as { text: string; finish_reason: string; usage: { completion_tokens: number } };
        out.textContent = d.text;
        out.dataset.finish = d.finish_reason;
        return d.usage.completion_tokens;
      }
    }
  }
  throw new RequestFailed("the stream closed before its done event");
}

async function run(ev: SubmitEvent) {
  ev.preventDefault();
  clearError();
  const alias = $<HTMLSelectElement>("adapter").value;
  const a = adapters.find((x) => x.alias === alias);
  const text = $<HTMLTextAreaElement>("text").value;
  const button = $<HTMLButtonElement>("run");
  button.disabled = true;
  const t0 = performance.now();
  try {
    if (a?.task === "generate") {
      const n = await stream(alias, text, Number($<HTMLInputElement>("max-new").value) || 32);
      $("timing").textContent = `${n} tokens in ${Math.round(performance.now() - t0)} ms`;
    } else {
      const r = await api<{ scores: Scored[]; truncated: boolean }>("/v1/classify", { adapter: alias, text });
      bars(r.scores);
      $("timing").textContent = `${Math.round(performance.now() - t0)} ms` + (r.truncated ? " (text cut to the token limit)" : "");
    }
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void connect($<HTMLInputElement>("key").value);
});
$("adapter").addEventListener("change", (ev) => void select((ev.target as HTMLSelectElement).value, true));
$("run-form").addEventListener("submit", (ev) => void run(ev as SubmitEvent));
$("remember").addEventListener("change", keep);
const remembered = localStorage.getItem(KEY_STORE);
$<HTMLInputElement>("remember").checked = remembered !== null;
const saved = sessionStorage.getItem(KEY_STORE) ?? remembered;
if (saved) {
  $<HTMLInputElement>("key").value = saved;
  void connect(saved);
}
