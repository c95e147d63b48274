"""Prefix tuning (Li & Liang 2021): learned keys/values prepended in every attention layer.

Trained through a reparameterisation (PEFT's prefix projection): an embedding per virtual token through a
2-layer MLP to all layers' keys and values at once, which trains more steadily than the raw prefix. After training
the MLP is dropped: materialise() keeps only its output, the KV prefix, laid out as PEFT saves it:
[P, L*2*kvH*D], per virtual token [L0.key | L0.value | L1.key | ...], each block heads-major [kvH, D].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class PrefixTuningConfig:
    num_virtual_tokens: int = 20
    hidden: int = 256  # the reparameterisation MLP's width (0 = train the raw prefix directly)


class PrefixTuning(nn.Module):
    kind = "prefix"

    def __init__(self, cfg: PrefixTuningConfig, backbone, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        m = backbone.cfg
        self.L, self.kvH, self.D = m.n_layer, m.n_kv_head, m.head_dim
        out = self.L * 2 * self.kvH * self.D
        g = torch.Generator().manual_seed(seed)
        P = cfg.num_virtual_tokens
        if cfg.hidden:
            self.embedding = nn.Parameter(torch.randn(P, m.d_model, generator=g) * 0.02)
            self.mlp = nn.Sequential(nn.Linear(m.d_model, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, out))
        else:
            self.embedding = nn.Parameter(torch.randn(P, out, generator=g) * 0.02)
            self.mlp = None

    def flat(self) -> torch.Tensor:
        """[P, L*2*kvH*D]: the MLP's output (or the raw prefix)."""
        return self.mlp(self.embedding) if self.mlp is not None else self.embedding

    def kv_prefix(self, backbone, batch: int):
        return split_flat_prefix(self.flat(), self.L, self.kvH, self.D, batch)

    def raw(self) -> dict[str, torch.Tensor]:
        return {"prefix_flat": self.flat().detach().clone()}


def split_flat_prefix(flat: torch.Tensor, L: int, kvH: int, D: int, batch: int = 1):
    """[P, L*2*kvH*D] (PEFT layout) -> per layer (key, value), each [batch, kvH, P, D]."""
    P = flat.shape[0]
    x = flat.view(P, L, 2, kvH, D).permute(1, 2, 3, 0, 4)  # [L, 2, kvH, P, D]
    return [(x[i, 0][None].expand(batch, -1, -1, -1), x[i, 1][None].expand(batch, -1, -1, -1)) for i in range(L)]


def stack_kv(kv) -> torch.Tensor:
    """per layer (key, value) [1, kvH, P, D] -> one tensor [L, 2, kvH, P, D] (the artifact's layout)."""
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in kv])
