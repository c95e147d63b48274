// safetensors reader for the edge: an 8-byte little-endian header length, a JSON header, raw little-endian data.
// Validates the header against the buffer, so a truncated or lying file fails with a reason, never a crash.

export type DType = "F32" | "F16" | "I8" | "I16" | "I32" | "I64" | "U8";
export interface RawTensor {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array; // the tensor's raw bytes (a view into the file)
}
export interface Parsed {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

const SIZES: Record<DType, number> = { F32: 4, F16: 2, I8: 1, I16: 2, I32: 4, I64: 8, U8: 1 };
const MAX_HEADER = 1 << 20;

export class SafetensorsError extends Error {}

export function parseSafetensors(buf: ArrayBuffer | Uint8Array): Parsed {
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (u8.byteLength < 8) throw new SafetensorsError(`file too short (${u8.byteLength} bytes)`);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > u8.byteLength) throw new SafetensorsError(`header length ${n} does not fit the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(u8.subarray(8, 8 + n)));
  } catch {
    throw new SafetensorsError("header is not valid JSON");
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) throw new SafetensorsError("header is not an object");
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  delete header.__metadata__;
  const data = u8.subarray(8 + n);
  const tensors: Record<string, RawTensor> = {};
  let end = 0;
  for (const [name, info] of Object.entries(header)) {
    const { dtype, shape, data_offsets } = (info ?? {}) as { dtype?: DType; shape?: number[]; data_offsets?: number[] };
    if (!dtype || !(dtype in SIZES) || !Array.isArray(shape) || !Array.isArray(data_offsets) || data_offsets.length !== 2)
      throw new SafetensorsError(`tensor ${JSON.stringify(name)} has a malformed header entry`);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor ${JSON.stringify(name)} has a bad shape`);
    const [s, e] = data_offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(s) && Number.isInteger(e)) || s < 0 || e > data.byteLength || e - s !== count * SIZES[dtype])
      throw new SafetensorsError(`tensor ${JSON.stringify(name)} ${JSON.stringify(shape)} ${dtype} does not match its byte range`);
    end = Math.max(end, e);
    tensors[name] = { dtype, shape, bytes: data.subarray(s, e) };
  }
  if (end !== data.byteLength) throw new SafetensorsError(`${data.byteLength - end} trailing bytes after the last tensor`);
  return { tensors, metadata };
}

/** float16 bits -> float32 */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A tensor's values as float32 (copying: the file's bytes may be unaligned). */
export function toFloat32(t: RawTensor): Float32Array {
  const b = t.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = b.byteLength / SIZES[t.dtype];
  const out = new Float32Array(n);
  if (t.dtype === "F32") for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (t.dtype === "F16") for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  else if (t.dtype === "I8") for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
  else throw new SafetensorsError(`cannot read ${t.dtype} as float`);
  return out;
}

/** An I32 or I16 tensor's values as int32 (copying: the file's bytes may be unaligned). */
export function toInt32(t: RawTensor): Int32Array {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  if (t.dtype === "I16") return Int32Array.from({ length: t.bytes.byteLength / 2 }, (_, i) => dv.getInt16(2 * i, true));
  if (t.dtype !== "I32") throw new SafetensorsError(`cannot read ${t.dtype} as int32`);
  const out = new Int32Array(t.bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(4 * i, true);
  return out;
}
