import struct

import pytest
import torch

from softedge.artifacts.safetensors_io import SafetensorsError, parse, serialize


def test_round_trip_keeps_dtypes_shapes_and_metadata():
    t = {
        "a": torch.randn(3, 4),
        "b": torch.arange(5, dtype=torch.int64),
        "c": torch.randn(2).half(),
        "e": torch.zeros(0, 3),
    }
    out, meta = parse(serialize(t, {"k": "v"}))
    assert meta == {"k": "v"}
    for k in t:
        assert out[k].dtype == t[k].dtype and torch.equal(out[k], t[k])


@pytest.mark.parametrize(
    "damage, msg",
    [
        (lambda b: b[:5], "too short"),
        (lambda b: struct.pack("<Q", 1 << 40) + b[8:], "does not fit"),
        (lambda b: b[:8] + b"{" * (len(b) - 8), "not valid JSON|byte range"),
        (lambda b: b + b"xx", "trailing"),
        (lambda b: b[:-4], "byte range|trailing"),
    ],
)
def test_damaged_files_fail_with_a_reason(damage, msg):
    buf = serialize({"w": torch.randn(4, 4)})
    with pytest.raises(SafetensorsError, match=msg):
        parse(damage(buf))


def test_shape_lie_is_caught():
    buf = serialize({"w": torch.randn(4, 4)})
    lied = buf.replace(b'"shape":[4,4]', b'"shape":[4,5]')
    with pytest.raises(SafetensorsError, match="byte range"):
        parse(lied)
