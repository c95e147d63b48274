"""Read and write the safetensors format (no PyPI here, and the format is small): an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw tensor bytes.
Reading validates the header against the file so a truncated or lying file fails with a clear message."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from softedge.common import atomic_path

_DTYPES = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_NAMES = {v[0]: k for k, v in _DTYPES.items()}
MAX_HEADER = 100 << 20


class SafetensorsError(ValueError):
    pass


def parse(buf: bytes, where: str = "safetensors") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if len(buf) < 8:
        raise SafetensorsError(f"{where}: file too short ({len(buf)} bytes)")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        raise SafetensorsError(f"{where}: header length {n} does not fit the file ({len(buf)} bytes)")
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: header is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(buf)[8 + n :]
    tensors, end_max = {}, 0
    for name, info in header.items():
        try:
            dtype, size = _DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{where}: tensor {name!r} has a malformed header entry") from None
        count = int(np.prod(shape)) if shape else 1
        if start < 0 or end > len(data) or end - start != count * size:
            raise SafetensorsError(f"{where}: tensor {name!r} {shape} {info['dtype']} does not match its byte range")
        end_max = max(end_max, end)
        raw = bytearray(data[start:end])
        t = torch.frombuffer(raw, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(shape)
    if end_max != len(data):
        raise SafetensorsError(f"{where}: {len(data) - end_max} trailing bytes after the last tensor")
    return tensors, meta


def load(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise SafetensorsError(f"{path}: not found")
    return parse(path.read_bytes(), str(path))


def serialize(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    header, chunks, off = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata values must be strings")
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {t.dtype}")
        b = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # align tensor data to 8 bytes, as the reference writer does
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


def save(path: Path | str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialize(tensors, metadata))
