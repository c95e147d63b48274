"""A small decoder-only transformer covering GPT-2-style and Llama-style configurations.

GPT-2 style: learned positions, LayerNorm with bias, GELU (tanh) MLP, biases on projections.
Llama style: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention (n_kv_head < n_head), no biases.

forward() takes an optional KV prefix (past keys/values, [B, kvH, S, D] per layer) and an attention mask over
prefix + input ([B, S+T]); position ids default to the mask-aware count of attended slots before each token, so
left padding and a P-token prefix give real tokens positions 0.. (or P..) exactly as for a single unpadded request.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    arch: str = "llama"  # "llama" | "gpt2"
    vocab_size: int = 8000
    n_layer: int = 4
    n_head: int = 8
    n_kv_head: int = 4
    d_model: int = 256
    d_ff: int = 704
    max_positions: int = 1024
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    dropout: float = 0.0

    def __post_init__(self):
        if self.arch not in ("llama", "gpt2"):
            raise ValueError(f"unknown architecture {self.arch!r} (expected 'llama' or 'gpt2')")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if self.arch == "gpt2" and self.n_kv_head != self.n_head:
            raise ValueError("gpt2 architecture has no grouped-query attention (n_kv_head must equal n_head)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**d)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.arch == "llama" else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float):
    """cos/sin [B, 1, T, D] for the given positions (Hugging Face Llama's half-split convention)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=position_ids.device) / head_dim)
    )
    freqs = position_ids.to(torch.float32)[..., None] * inv_freq  # [B, T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        bias = cfg.arch == "gpt2"
        d, hd = cfg.d_model, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.n_head * hd, bias=bias)
        self.k_proj = nn.Linear(d, cfg.n_kv_head * hd, bias=bias)
        self.v_proj = nn.Linear(d, cfg.n_kv_head * hd, bias=bias)
        self.o_proj = nn.Linear(cfg.n_head * hd, d, bias=bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask_bias, rope, past_kv):
        cfg = self.cfg
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, cfg.n_head, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=2)
            v = torch.cat([past_kv[1], v], dim=2)
        present = (k, v)
        rep = cfg.n_head // cfg.n_kv_head
        if rep > 1:  # grouped-query attention: each kv head serves `rep` consecutive query heads
            S = k.shape[2]
            k = k[:, :, None].expand(B, cfg.n_kv_head, rep, S, cfg.head_dim).reshape(B, cfg.n_head, S, cfg.head_dim)
            v = v[:, :, None].expand(B, cfg.n_kv_head, rep, S, cfg.head_dim).reshape(B, cfg.n_head, S, cfg.head_dim)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(cfg.head_dim)) + mask_bias
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim)
        return self.o_proj(y), present


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.arch = cfg.arch
        if cfg.arch == "llama":
            self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        else:
            self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff)
            self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        if self.arch == "llama":
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask_bias, rope, past_kv):
        a, present = self.attn(self.ln_1(x), mask_bias, rope, past_kv)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.ln_2(x)))
        return x, present


def positions_from_mask(attention_mask: torch.Tensor, T: int) -> torch.Tensor:
    """Position of each of the last T slots = number of attended slots before it (padding does not count)."""
    pos = torch.cumsum(attention_mask, dim=1) - 1
    return pos[:, -T:].clamp(min=0)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.max_positions, cfg.d_model) if cfg.arch == "gpt2" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = make_norm(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.output_fn = None  # optional replacement of the output projection (quantize.simulate uses it)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def output_weight(self) -> torch.Tensor:
        return self.embed.weight if self.lm_head is None else self.lm_head.weight

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        last_only: bool = False,
    ):
        """Returns (logits [B,T,V] or [B,1,V] with last_only, presents: list of (k, v) per layer)."""
        h, presents = self.hidden_states(input_ids, attention_mask, position_ids, past_key_values, inputs_embeds)
        return self.logits(h[:, -1:] if last_only else h), presents

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The output projection of final hidden states."""
        return self.output_fn(h) if self.output_fn is not None else h @ self.output_weight().t()

    def hidden_states(
        self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None
    ):
        """(final hidden states after the last norm [B,T,d], presents). Classification heads read these."""
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        B, T, _ = x.shape
        S = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        if attention_mask is None:
            attention_mask = torch.ones(B, S + T, dtype=torch.long, device=x.device)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, T)
        # additive mask [B,1,T,S+T]: causal over absolute slots, and padded slots never attended
        # (built from aranges rather than tril so the ONNX export keeps S and T dynamic)
        q_slot = torch.arange(T, device=x.device) + attention_mask.shape[1] - T
        causal = torch.arange(attention_mask.shape[1], device=x.device)[None, :] <= q_slot[:, None]
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
        mask_bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~allowed, torch.finfo(x.dtype).min
        )
        rope = None
        if self.pos_embed is not None:
            x = x + self.pos_embed(position_ids)
        else:
            rope = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta)
            rope = (rope[0].to(x.dtype), rope[1].to(x.dtype))
        x = self.drop(x)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, mask_bias, rope, None if past_key_values is None else past_key_values[i])
            presents.append(present)
        return self.ln_f(x), presents
