"""Prefix tuning (Li & Liang 2021): learned keys/values prepended in every attention layer.

Trained through a reparameterisation (PEFT's prefix projection): an embedding per virtual token through a
2-layer MLP to all layers' keys and values at once, which trains more steadily than the raw prefix. After training
the MLP is dropped: flat() is the KV prefix the artifact keeps, laid out as PEFT saves it:
[P, L*2*kvH*D], per virtual token [L0.key | L0.value | L1.key | ...], each block heads-major [kvH, D].

Initialisation (Li & Liang 2021, section 7.2): "random", or "tokens": the keys/values that P real tokens produce in
the frozen backbone. With the MLP, the prefix is then those keys/values plus the MLP's output, whose last layer
starts at zero, so training starts exactly at the real-token prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class PrefixTuningConfig:
    num_virtual_tokens: int = 20
    hidden: int = 256  # the reparameterisation MLP's width (0 = train the raw prefix directly)
    init: str = "random"  # "random" | "tokens" (the keys/values of real tokens: pass init_token_ids)


class PrefixTuning(nn.Module):
    def __init__(self, cfg: PrefixTuningConfig, backbone, seed: int = 0, init_token_ids: list[int] | None = None):
        super().__init__()
        self.cfg = cfg
        m = backbone.cfg
        self.L, self.kvH, self.D = m.n_layer, m.n_kv_head, m.head_dim
        out = self.L * 2 * self.kvH * self.D
        g = torch.Generator().manual_seed(seed)
        P = cfg.num_virtual_tokens
        if cfg.init == "tokens":
            if not init_token_ids or len(init_token_ids) < P:
                raise ValueError(f"prefix init 'tokens' needs {P} token ids")
            base = real_token_prefix(backbone, init_token_ids[:P])
        elif cfg.init == "random":
            base = torch.zeros(P, out)
        else:
            raise ValueError(f"unknown prefix init {cfg.init!r} (random or tokens)")
        self.register_buffer("base", base)
        if cfg.hidden:
            self.embedding = nn.Parameter(torch.randn(P, m.d_model, generator=g) * 0.02)
            self.mlp = nn.Sequential(nn.Linear(m.d_model, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, out))
            if cfg.init == "tokens":
                nn.init.zeros_(self.mlp[2].weight)
                nn.init.zeros_(self.mlp[2].bias)
        else:
            self.embedding = nn.Parameter(
                base.clone() if cfg.init == "tokens" else torch.randn(P, out, generator=g) * 0.02
            )
            self.mlp = None

    @classmethod
    def from_options(cls, o, backbone, seed: int, label_token_ids: list[int] | None, text_token_ids: list[int]):
        """o: the tuning options (virtual_tokens, prefix_hidden, prefix_init); `tokens` starts from the training text."""
        return cls(PrefixTuningConfig(o.virtual_tokens, o.prefix_hidden, o.prefix_init), backbone, seed, text_token_ids)

    def flat(self) -> torch.Tensor:
        """[P, L*2*kvH*D]: the real-token base (zeros for random init) plus the MLP's output, or the raw prefix."""
        return self.base + self.mlp(self.embedding) if self.mlp is not None else self.embedding

    def kv_prefix(self, backbone, batch: int):
        return split_flat_prefix(self.flat(), self.L, self.kvH, self.D, batch)


@torch.no_grad()
def real_token_prefix(backbone, ids: list[int]) -> torch.Tensor:
    """[P, L*2*kvH*D] (PEFT layout): the keys/values the backbone computes for these tokens at positions 0..P-1."""
    _, presents = backbone(torch.tensor([ids]))
    x = torch.stack([torch.stack([k[0], v[0]]) for k, v in presents])  # [L, 2, kvH, P, D]
    return x.permute(3, 0, 1, 2, 4).reshape(len(ids), -1).float()


def split_flat_prefix(flat: torch.Tensor, L: int, kvH: int, D: int, batch: int = 1):
    """[P, L*2*kvH*D] (PEFT layout) -> per layer (key, value), each [batch, kvH, P, D]."""
    P = flat.shape[0]
    x = flat.view(P, L, 2, kvH, D).permute(1, 2, 3, 0, 4)  # [L, 2, kvH, P, D]
    return [(x[i, 0][None].expand(batch, -1, -1, -1), x[i, 1][None].expand(batch, -1, -1, -1)) for i in range(L)]
