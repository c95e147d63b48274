"""int8 weight quantisation of an exported backbone, written by the project (no ONNX Runtime for Python here).

Every MatMul weight and embedding table is stored as int8 with one fp32 scale per output channel (symmetric,
zero point 0). Two schemes, chosen by measuring in ONNX Runtime Web (npm run bench:quant):

  weight-only  int8 storage, fp32 compute: W = Cast(W_q) * scale, which ONNX Runtime constant-folds into an fp32
               weight at session creation. The file is ~4x smaller; the math is exactly the dequantised weights'.
  weight-only-dql  the same with DequantizeLinear, which ORT never constant-folds: it re-dequantises every weight
               on every run (kept for the benchmark that shows what that costs).
  weight-only-nbits  the same dequantised math with the weights kept int8 in memory: MatMulNBits and
               GatherBlockQuantized (ONNX Runtime's com.microsoft operators, in its wasm build too) dequantise block
               by block inside the kernel. weight-only's folded fp32 copies (and the folding's temporaries) put ORT's
               wasm memory at 83 MB after loading the 5M default; this scheme loads in 23 MB (the isolate limit is
               128 MB, wasm memory never shrinks). Stored as uint8 with the zero point 128: (q + 128) - 128 = q.
               The price: every call dequantises every weight, ~5x the time of a decode step in wasm.
  weight-only-nbits-embed  only the embedding table (and a tied head over it: the vocabulary matrix, 40% of a 5M
               model, folded twice by weight-only because of its transpose) kept int8 as above; the other matrices
               folded as weight-only. Between the two on memory and on decode time (npm run bench:quant).
  dynamic-row  activations quantised to int8 per row (one scale per token, from that token's own max |x|),
               MatMulInteger(x_q, W_q) in int32, then rescaled. ONNX's DynamicQuantizeLinear is per tensor, so
               one row's scale would depend on every other row of the batch: a customer's answer would change with
               its batch-mates. Per-row scales keep each token's computation independent of the rest of the batch.
  dynamic-row-mixed  dynamic-row for the matrices that read normalised activations (q, k, v, gate, up: two
               thirds of a block's multiply-adds), weight-only for those that cost accuracy when their input is
               quantised per row: o_proj and down_proj (folded), whose inputs (attention mixtures, SwiGLU products)
               carry outlier channels, and the vocabulary matrix (embedding and tied head kept int8 in memory as in
               weight-only-nbits-embed: folding it took ORT's wasm memory from 45 to 69 MB at load). Measured on the
               default backbone (PyTorch simulation, 64x64 held-out tokens): top-1 agreement with fp32 96.2% all
               dynamic, 96.9% with the head kept, 97.7% with the head and down_proj, 98.2% with all three
               (weight-only alone: 98.8%).
  dynamic-row-mixed-i8head  dynamic-row-mixed with the tied head as integer matmuls over the int8 vocabulary
               matrix instead of MatMulNBits, whose wasm kernel re-dequantises the whole 8000 x 256 matrix on every
               call (a profile of a 64-token forward in onnxruntime-web: 19% of the run for one row of logits, most of
               a decode step). The head's input is quantised per row in two terms, x ~ s1 q1 + s2 q2 (q2 quantises
               the residual of q1: error ~1/(127 * 254) of max |x|), so the logits keep weight-only accuracy; the
               transposed uint8 matrix that MatMulInteger reads is folded once at session creation (+2 MB).

Embedding tables (Gather) are quantised per row; a tied output head (Transpose of the table) reuses the same int8
table, so tying still stores the vocabulary matrix once.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

SCHEMES = (
    "weight-only",
    "weight-only-dql",
    "weight-only-nbits",
    "weight-only-nbits-embed",
    "dynamic-row",
    "dynamic-row-mixed",
    "dynamic-row-mixed-i8head",
)
MIXED = ("dynamic-row-mixed", "dynamic-row-mixed-i8head")  # o_proj and down_proj kept weight-only
KEPT_WEIGHT_ONLY = ("o_proj", "down_proj", "lm_head")  # dynamic-row-mixed: modules left weight-only (a tied head too)
NBITS_TABLES = (
    "weight-only-nbits",
    "weight-only-nbits-embed",
    "dynamic-row-mixed",
    "dynamic-row-mixed-i8head",
)  # tables (and a tied head) kept int8
MS_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib operators
MIN_ELEMENTS = 1024  # smaller matrices are not worth the extra nodes


def quantize_array(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per slice along `axis` (the kept axis)."""
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=reduce)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def nbits_block(k: int) -> int:
    """MatMulNBits' block size along K: a power of two >= 16 that divides K (at most 256), so no block is padded;
    every block of a column carries that column's one scale, so the math stays per channel."""
    b = 256
    while b >= 16 and k % b:
        b //= 2
    if b < 16:
        raise ValueError(f"MatMulNBits needs an inner dimension divisible by 16 (got {k})")
    return b


def dequantize_array(q: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    shape[axis] = -1
    return q.astype(np.float32) * scale.reshape(shape)


class _Graph:
    def __init__(self, proto: onnx.ModelProto):
        self.g = proto.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.new_nodes: list = []
        self.new_inits: list = []
        self.drop: set[str] = set()
        self.count = 0

    def uid(self, base: str) -> str:
        self.count += 1
        return f"q{self.count}_{base.replace('/', '_').replace('.', '_')}"

    def weight(self, name: str) -> np.ndarray | None:
        i = self.inits.get(name)
        if i is None or i.data_type != TensorProto.FLOAT or len(i.dims) != 2:
            return None
        a = numpy_helper.to_array(i)
        return a if a.size >= MIN_ELEMENTS else None

    def add_init(self, arr: np.ndarray, base: str) -> str:
        name = self.uid(base)
        self.new_inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], base: str, out: str | None = None, **attrs) -> str:
        """Add a node; `out` names its output (to take over a replaced node's output), else a fresh name."""
        name = self.uid(base + "_" + op)
        out = out or name
        self.new_nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out


def quantize(proto: onnx.ModelProto, scheme: str = "weight-only") -> onnx.ModelProto:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantisation scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    G = _Graph(proto)
    rewired: dict[int, tuple[int, str]] = {}  # id(node) -> (input index, new name)
    replaced: set[int] = set()  # id() of nodes whose output new nodes now produce
    quantized_tables: dict[str, tuple[str, str]] = {}  # table name -> (int8 table, per-row scale)
    nbits_tables: dict[str, tuple[str, np.ndarray, int]] = {}  # table name -> (uint8 [V, K/bs, bs], scale, bs)

    def table(name: str, arr: np.ndarray):
        if name not in quantized_tables:
            q, s = quantize_array(arr, axis=0)
            quantized_tables[name] = (G.add_init(q, name + "_int8"), G.add_init(s, name + "_scale"))
            G.drop.add(name)
        return quantized_tables[name]

    def nbits_table(name: str, arr: np.ndarray):
        # one uint8 table serves both the Gather (GatherBlockQuantized) and a tied head (MatMulNBits: B is [N, K])
        if name not in nbits_tables:
            q, s = quantize_array(arr, axis=0)
            v, k = q.shape
            bs = nbits_block(k)
            nbits_tables[name] = (G.add_init(_u8_blocks(q, bs), name + "_u8"), s, bs)
            G.drop.add(name)
        return nbits_tables[name]

    def matmul_nbits(node, b_u8: str, scale: np.ndarray, k: int, bs: int):
        n = scale.shape[0]
        scales = G.add_init(np.repeat(scale, k // bs).astype(np.float32), node.input[1] + "_scales")
        G.node(
            "MatMulNBits",
            [node.input[0], b_u8, scales],
            node.input[1],
            out=node.output[0],
            domain=MS_DOMAIN,
            K=k,
            N=n,
            bits=8,
            block_size=bs,
        )
        replaced.add(id(node))

    def quantize_rows(x: str) -> tuple[str, str, str]:
        """per-row symmetric int8 of x: (scale, rounded values as float, values as uint8 with zero point 128:
        MLAS's fast u8 x s8 kernel)"""
        amax = G.node("ReduceMax", [G.node("Abs", [x], x)], x, axes=[-1], keepdims=1)
        sx = G.node(
            "Div",
            [
                G.node("Max", [amax, G.add_init(np.array(1e-8, np.float32), "eps")], x),
                G.add_init(np.array(127.0, np.float32), "c127"),
            ],
            x,
        )
        xr = G.node("Round", [G.node("Div", [x, sx], x)], x)  # in [-127, 127] by construction
        xu = G.node("Add", [xr, G.add_init(np.array(128.0, np.float32), "c128")], x)
        return sx, xr, G.node("Cast", [xu], x, to=TensorProto.UINT8)

    def integer_head(node, b_u8: str, scale: np.ndarray, v: int, k: int):
        # logits = (s1 (q1 @ E_q^T) + s2 (q2 @ E_q^T)) * scale: q2 quantises what q1 left of x
        x = node.input[0]
        et = G.node(  # [K, V] uint8: constant, folded by ORT at session creation
            "Transpose",
            [G.node("Reshape", [b_u8, G.add_init(np.array([v, k], np.int64), "shape")], b_u8)],
            b_u8,
            perm=[1, 0],
        )
        zp = G.add_init(np.array(128, np.uint8), "zp128")
        s1, r1, q1 = quantize_rows(x)
        s2, _, q2 = quantize_rows(G.node("Sub", [x, G.node("Mul", [r1, s1], x)], x))
        terms = [
            G.node(
                "Mul", [G.node("Cast", [G.node("MatMulInteger", [q, et, zp, zp], x)], x, to=TensorProto.FLOAT), sq], x
            )
            for sq, q in ((s1, q1), (s2, q2))
        ]
        G.node("Mul", [G.node("Add", terms, x), G.add_init(scale, node.input[1] + "_scale")], x, out=node.output[0])
        replaced.add(id(node))

    for node in list(G.g.node):
        table_w = G.weight(node.input[0]) if node.op_type == "Gather" else None  # one copy of the table, used below
        if scheme in NBITS_TABLES and table_w is not None:
            tq, s, bs = nbits_table(node.input[0], table_w)
            v, k = table_w.shape
            scales = G.add_init(np.repeat(s, k // bs).reshape(v, k // bs, 1).astype(np.float32), node.input[0] + "_gs")
            zp = G.add_init(np.full((v, k // bs, 1), 128, np.uint8), node.input[0] + "_zp")
            blocks = G.node(
                "GatherBlockQuantized",
                [tq, node.input[1], scales, zp],
                node.input[0],
                domain=MS_DOMAIN,
                gather_axis=0,
                quantize_axis=2,
                block_size=bs,
                bits=8,
            )  # [..., K/bs, bs]
            G.node(
                "Reshape",
                [blocks, G.add_init(np.array([0, 0, k], np.int64), "shape")],
                node.input[0],
                out=node.output[0],
            )
            replaced.add(id(node))
            continue
        if table_w is not None:
            qt, qs = table(node.input[0], table_w)
            rows = G.node("Gather", [qt, node.input[1]], node.input[0], axis=0)
            scales = G.node("Gather", [qs, node.input[1]], node.input[0])
            rows_f = G.node("Cast", [rows], node.input[0], to=TensorProto.FLOAT)
            scales_f = G.node("Unsqueeze", [scales, G.add_init(np.array([-1], np.int64), "axes")], node.input[0])
            G.node("Mul", [rows_f, scales_f], node.input[0], out=node.output[0])
            replaced.add(id(node))
            continue
        if node.op_type != "MatMul":
            continue
        wname = node.input[1]
        w = G.weight(wname)
        if scheme in NBITS_TABLES:
            if w is not None and scheme == "weight-only-nbits":  # plain [K, N]: MatMulNBits wants [N, K/bs, bs]
                q, s = quantize_array(w, axis=1)
                bs = nbits_block(w.shape[0])
                matmul_nbits(node, G.add_init(_u8_blocks(q.T, bs), wname + "_u8"), s, w.shape[0], bs)
                G.drop.add(wname)
                continue
            prod = G.producer.get(wname)  # tied head: MatMul(x, Transpose(E)) is MatMulNBits over E itself
            e = G.weight(prod.input[0]) if w is None and prod is not None and prod.op_type == "Transpose" else None
            if e is not None:
                tq, s, bs = nbits_table(prod.input[0], e)
                if scheme == "dynamic-row-mixed-i8head":
                    integer_head(node, tq, s, *e.shape)
                else:
                    matmul_nbits(node, tq, s, e.shape[1], bs)
                replaced.add(id(prod))
                continue
            if w is None:
                continue
            # weight-only-nbits-embed, dynamic-row-mixed: the other matrices are handled below
        if w is not None:  # plain weight [K, N]: per-output-column scales
            q, s = quantize_array(w, axis=1)
            wq, ws = G.add_init(q, wname + "_int8"), G.add_init(s, wname + "_scale")
            G.drop.add(wname)
        else:  # tied head: MatMul(x, Transpose(E)) with E a [V, d] table
            prod = G.producer.get(wname)
            if prod is None or prod.op_type != "Transpose" or G.weight(prod.input[0]) is None:
                continue
            qt, ws = table(prod.input[0], G.weight(prod.input[0]))
            wq = G.node("Transpose", [qt], prod.input[0], perm=[1, 0])
            replaced.add(id(prod))
        # dynamic-row-mixed: the export names a block's MatMul /model/blocks.<i>/<attn|mlp>/<module>/MatMul
        module = node.name.split("/")[-2] if node.name.count("/") >= 2 else ""
        kept = scheme in MIXED and (w is None or module in KEPT_WEIGHT_ONLY)  # w None: the tied head
        if scheme in ("weight-only", "weight-only-nbits-embed") or kept:
            # Cast+Mul of constants: ONNX Runtime folds this into an fp32 weight once, at session creation
            wf = G.node("Cast", [wq], wname, to=TensorProto.FLOAT)
            rewired[id(node)] = (1, G.node("Mul", [wf, ws], wname))
        elif scheme == "weight-only-dql":
            # DequantizeLinear is kept out of constant folding by ORT: it re-dequantises every weight every run
            n_out = next(i.dims[0] for i in G.new_inits if i.name == ws)
            zp = G.add_init(np.zeros(n_out, np.int8), "zp")
            rewired[id(node)] = (1, G.node("DequantizeLinear", [wq, ws, zp], wname, axis=1))
        else:
            x = node.input[0]
            sx, _, xq = quantize_rows(x)
            acc = G.node("MatMulInteger", [xq, wq, G.add_init(np.array(128, np.uint8), "zp128")], x)
            G.node(
                "Mul",
                [G.node("Mul", [G.node("Cast", [acc], x, to=TensorProto.FLOAT), sx], x), ws],
                x,
                out=node.output[0],
            )
            replaced.add(id(node))

    # rebuild the node list in topological order with the new nodes in place of the replaced ones
    old = list(G.g.node)
    del G.g.node[:]
    kept = []
    for n in old:
        if id(n) in replaced:
            continue
        if id(n) in rewired:
            idx, name = rewired[id(n)]
            n.input[idx] = name
        kept.append(n)
    final = _toposort(kept + G.new_nodes, {i.name for i in G.g.input} | set(G.inits) | {i.name for i in G.new_inits})
    G.g.node.extend(final)
    keep = [i for i in G.g.initializer if i.name not in G.drop]
    del G.g.initializer[:]
    G.g.initializer.extend(keep + G.new_inits)
    if scheme in NBITS_TABLES and not any(o.domain == MS_DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    onnx.checker.check_model(proto)
    return proto


def _u8_blocks(q: np.ndarray, bs: int) -> np.ndarray:
    """int8 rows [N, K] as MatMulNBits' uint8 blocks [N, K/bs, bs] (zero point 128)."""
    n, k = q.shape
    return (q.astype(np.int16) + 128).astype(np.uint8).reshape(n, k // bs, bs)


def _toposort(nodes: list, available: set[str]) -> list:
    available = set(available) | {""}
    remaining, out = list(nodes), []
    while remaining:
        progressed = []
        for n in remaining:
            if all(i in available for i in n.input):
                out.append(n)
                available.update(n.output)
            else:
                progressed.append(n)
        if len(progressed) == len(remaining):
            missing = {i for n in progressed for i in n.input if i not in available}
            raise ValueError(f"quantised graph has unresolved inputs: {sorted(missing)[:3]}")
        remaining = progressed
    return out


def dequantized_state(model):
    """The fp32 weights the weight-only int8 graph effectively computes with: a PyTorch reference for parity."""
    sd = {}
    for name, t in model.state_dict().items():
        a = t.detach().float().numpy()
        if a.ndim == 2 and a.size >= MIN_ELEMENTS:
            # tables are quantised per row; an nn.Linear weight [out, in] is the transpose of the ONNX MatMul
            # weight, whose per-output-column scales are per row here: axis 0 in both cases
            a = dequantize_array(*quantize_array(a, 0), 0)
        sd[name] = torch.from_numpy(np.ascontiguousarray(a))
    return sd


def _quantize_rows(x):
    """Per-row int8 activations exactly as the dynamic-row graph computes them: scale, rounded values."""
    sx = torch.clamp(x.abs().amax(-1, keepdim=True), min=1e-8) / 127.0
    return sx, torch.round(x / sx)  # round half to even, as ONNX Round


def _dyn_row_matmul(x, wq_t, ws):
    """(x_q @ W_q) in exact integer arithmetic (float64 holds it), then * sx * ws in float32 like the graph."""
    sx, xq = _quantize_rows(x)
    acc = (xq.double() @ wq_t.double()).float()
    return acc * sx * ws


def _two_term_head(x, wq_t, ws):
    """dynamic-row-mixed-i8head's head: x ~ s1 q1 + s2 q2 (q2 quantises the residual), two exact integer matmuls"""
    s1, q1 = _quantize_rows(x)
    s2, q2 = _quantize_rows(x - q1 * s1)
    acc1, acc2 = ((q.double() @ wq_t.double()).float() for q in (q1, q2))
    return (acc1 * s1 + acc2 * s2) * ws


class _DynRowLinear(torch.nn.Module):
    def __init__(self, lin):
        super().__init__()
        q, s = quantize_array(lin.weight.detach().float().numpy(), axis=0)  # per output row of [out, in]
        self.wq_t, self.ws = torch.from_numpy(q.astype(np.float32)).t(), torch.from_numpy(s)
        self.bias = None if lin.bias is None else lin.bias.detach()

    def forward(self, x):
        y = _dyn_row_matmul(x, self.wq_t, self.ws)
        return y if self.bias is None else y + self.bias


def simulate(model, scheme: str):
    """A PyTorch model that computes what the int8 ONNX graph of `scheme` computes (the reference for parity).
    weight-only: the dequantised weights. dynamic-row: per-row activation quantisation and integer matmuls too."""
    import copy

    from softedge.backbone.model import Transformer

    ref = Transformer(model.cfg).eval()
    ref.load_state_dict(dequantized_state(model))
    if scheme.startswith("weight-only"):
        return ref
    if scheme not in ("dynamic-row",) + MIXED:
        raise ValueError(f"unknown quantisation scheme {scheme!r}")
    mixed = scheme in MIXED
    src = copy.deepcopy(model).eval()
    for name, mod in list(ref.named_modules()):
        for child_name, child in list(mod.named_children()):
            if mixed and child_name in KEPT_WEIGHT_ONLY:
                continue  # stays the dequantised weight-only linear
            if isinstance(child, torch.nn.Linear) and child.weight.numel() >= MIN_ELEMENTS:
                orig = src.get_submodule(f"{name}.{child_name}" if name else child_name)
                setattr(mod, child_name, _DynRowLinear(orig))
    W = model.output_weight().detach().float().numpy()
    if W.size >= MIN_ELEMENTS and scheme != "dynamic-row-mixed":
        q, s = quantize_array(W, axis=0)  # the table's per-row scales serve the tied head's columns
        wq_t, ws = torch.from_numpy(q.astype(np.float32)).t(), torch.from_numpy(s)
        head = _two_term_head if scheme == "dynamic-row-mixed-i8head" else _dyn_row_matmul
        ref.output_fn = lambda h: head(h, wq_t, ws)
    return ref
