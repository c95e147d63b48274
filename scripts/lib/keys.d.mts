// Types for keys.mjs (the worker tests import it).
export declare const SCOPES: string[];
export declare const NAME: RegExp;
export declare function sha256Hex(text: string): Promise<string>;
export declare function createKey(
  opts: { tenant: string; scope: string; label?: string },
): Promise<{ id: string; key: string; kvKey: string; record: { tenant: string; scope: string; hash: string; created: string; label: string } }>;
export declare const DEV_KEYS: [string, string, string][];
export declare function keyRecord(
  key: string,
  opts: { tenant: string; scope: string; label?: string },
): Promise<{ tenant: string; scope: string; hash: string; created: string; label: string }>;
