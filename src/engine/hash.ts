// SHA-256 hex digest (Web Crypto: the same in workerd and Node) of one buffer or several in order.
export async function sha256Hex(data: ArrayBuffer | Uint8Array | Uint8Array[]): Promise<string> {
  let bytes: ArrayBuffer | Uint8Array;
  if (Array.isArray(data)) {
    const all = new Uint8Array(data.reduce((a, p) => a + p.byteLength, 0));
    let o = 0;
    for (const p of data) {
      all.set(p, o);
      o += p.byteLength;
    }
    bytes = all;
  } else bytes = data;
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}
