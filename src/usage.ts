// Per-tenant usage. Each successful inference request becomes one Workers Analytics Engine data point (binding
// USAGE: index = tenant; blobs = tenant, task, first adapter; doubles = requests, items, input tokens, generated
// tokens), the binding made for high-volume per-request counts. Reading it back needs Analytics Engine's SQL API
// (an account id and an API token with Account Analytics read, USAGE_ACCOUNT_ID / USAGE_API_TOKEN). Without them
// (local development, tests) the figures come from this isolate's own tally since it started.
import { DomainError } from "./errors";

export interface UsageEvent {
  tenant: string;
  task: "classify" | "generate";
  adapter: string;
  items: number;
  inputTokens: number;
  generatedTokens: number;
}
export interface UsageRow {
  task: string;
  requests: number;
  items: number;
  input_tokens: number;
  generated_tokens: number;
}
export interface UsageReport {
  tenant: string;
  source: "analytics-engine" | "isolate";
  since: string;
  usage: UsageRow[];
}
interface UsageEnv {
  USAGE?: AnalyticsEngineDataset;
  USAGE_ACCOUNT_ID?: string;
  USAGE_API_TOKEN?: string;
  USAGE_DATASET?: string;
}

const DATASET = "softedge_usage";
const started = new Date().toISOString();
const tally = new Map<string, Map<string, UsageRow>>(); // tenant -> task -> row

export function recordUsage(env: UsageEnv, e: UsageEvent): void {
  env.USAGE?.writeDataPoint({ indexes: [e.tenant], blobs: [e.tenant, e.task, e.adapter], doubles: [1, e.items, e.inputTokens, e.generatedTokens] });
  const byTask = tally.get(e.tenant) ?? new Map<string, UsageRow>();
  tally.set(e.tenant, byTask);
  const row = byTask.get(e.task) ?? { task: e.task, requests: 0, items: 0, input_tokens: 0, generated_tokens: 0 };
  byTask.set(e.task, row);
  row.requests++;
  row.items += e.items;
  row.input_tokens += e.inputTokens;
  row.generated_tokens += e.generatedTokens;
}

export async function usageReport(env: UsageEnv, tenant: string, days: number): Promise<UsageReport> {
  if (!env.USAGE_ACCOUNT_ID || !env.USAGE_API_TOKEN)
    return { tenant, source: "isolate", since: started, usage: [...(tally.get(tenant)?.values() ?? [])].map((r) => ({ ...r })) };
  if (!/^[a-z0-9_-]+$/.test(tenant) || !Number.isInteger(days)) throw new DomainError("invalid_request", "bad tenant or days");
  // sampled rows carry _sample_interval: weight every sum by it
  const sql =
    `SELECT blob2 AS task, SUM(_sample_interval * double1) AS requests, SUM(_sample_interval * double2) AS items, ` +
    `SUM(_sample_interval * double3) AS input_tokens, SUM(_sample_interval * double4) AS generated_tokens ` +
    `FROM ${env.USAGE_DATASET ?? DATASET} WHERE index1 = '${tenant}' AND timestamp > NOW() - INTERVAL '${days}' DAY GROUP BY task FORMAT JSON`;
  const res = await fetch(`https://api.cloudflare.com/client/v4/accounts/${env.USAGE_ACCOUNT_ID}/analytics_engine/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.USAGE_API_TOKEN}` },
    body: sql,
  });
  if (!res.ok) throw new DomainError("usage_unavailable", `Analytics Engine answered ${res.status}`);
  const rows = ((await res.json()) as { data: Record<string, string | number>[] }).data;
  return {
    tenant,
    source: "analytics-engine",
    since: new Date(Date.now() - days * 86_400_000).toISOString(),
    usage: rows.map((r) => ({
      task: String(r.task),
      requests: Number(r.requests),
      items: Number(r.items),
      input_tokens: Number(r.input_tokens),
      generated_tokens: Number(r.generated_tokens),
    })),
  };
}
