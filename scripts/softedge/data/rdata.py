"""Read character vectors out of an R package's lazy-load data (data/Rdata.rdx + Rdata.rdb), without R.

Debian ships some public-domain texts only as R data (r-cran-janeaustenr: Austen's six novels, one element per line).
R's serialization format (XDR, big-endian) is documented in R Internals, "Serialization Formats"; this reads the
subset such packages use: vectors of strings, ints, doubles and lists, pairlist attributes, symbols and references.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from softedge.common import CliError

NILVALUE, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP, REFSXP = (
    254,
    1,
    2,
    9,
    10,
    13,
    14,
    16,
    19,
    255,
)
_SKIP = {242, 252, 253}  # empty env, base env, global env markers: nothing to read


class _Reader:
    def __init__(self, data: bytes):
        self.b, self.p, self.refs = data, 0, []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.b, self.p)
        self.p += 4
        return v

    def stream(self):
        if self.b[:2] != b"X\n":
            raise CliError("R data: not XDR serialization")
        self.p = 2
        version = self.int()
        self.int(), self.int()  # writer's and minimal reader's R versions
        if version == 3:
            n = self.int()
            self.p += n  # native encoding name
        return self.item()

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == NILVALUE or kind in _SKIP:
            return None
        if kind == REFSXP:
            return self.refs[(flags >> 8 or self.int()) - 1]
        if kind == SYMSXP:
            sym = self.item()
            self.refs.append(sym)
            return sym
        if kind == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            s = self.b[self.p : self.p + n].decode("utf-8", errors="replace")
            self.p += n
            return s
        if kind == LISTSXP:  # pairlist (attributes): [(tag, value), ...]
            if has_attr:
                self.item()  # a pairlist node's own attributes: read past them
            tag = self.item() if has_tag else None
            head, rest = self.item(), self.item()
            return [(tag, head)] + (rest or [])
        if kind in (LGLSXP, INTSXP):
            n = self.int()
            value = list(struct.unpack_from(f">{n}i", self.b, self.p))
            self.p += 4 * n
        elif kind == REALSXP:
            n = self.int()
            value = list(struct.unpack_from(f">{n}d", self.b, self.p))
            self.p += 8 * n
        elif kind in (STRSXP, VECSXP):
            value = [self.item() for _ in range(self.int())]
        else:
            raise CliError(f"R data: unsupported object type {kind}")
        attrs = dict(self.item()) if has_attr else {}
        return _Vector(value, attrs)


class _Vector(list):
    def __init__(self, value, attrs):
        super().__init__(value)
        self.attrs = attrs


def _unchunk(raw: bytes) -> bytes:
    """One .rdb entry: 4-byte length, then (R >= 2.10) a compression tag, then the payload."""
    tag = raw[4:5]
    if tag == b"Z":
        return zlib.decompress(raw[5:])
    if tag == b"0":
        return raw[5:]
    if tag in (b"2", b"X"):
        raise CliError("R data: bzip2/xz-compressed lazy-load data is not supported")
    return zlib.decompress(raw[4:])


def load_lazy_data(base: Path) -> dict[str, list]:
    """{object name: value} of an R package's data/Rdata.{rdx,rdb} (base = .../data/Rdata)."""
    rdx, rdb = base.with_suffix(".rdx"), base.with_suffix(".rdb")
    if not rdx.is_file() or not rdb.is_file():
        raise CliError(f"R data: no {rdx.name}/{rdb.name} in {base.parent}")
    index = _Reader(gzip.decompress(rdx.read_bytes())).stream()  # list(variables=, references=, compressed=)
    variables = index[list(index.attrs["names"]).index("variables")]
    data = rdb.read_bytes()
    out = {}
    for name, (off, size) in zip(variables.attrs["names"], variables):
        out[name] = _Reader(_unchunk(data[int(off) : int(off) + int(size)])).stream()
    return out
