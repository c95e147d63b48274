"""Prompt tuning (Lester et al. 2021): P learned input embeddings before the text; the backbone stays frozen.

Attention is causal, so the soft prompt's keys/values never depend on the text after it: kv_prefix() runs the
prompt through the backbone once and returns its KV cache, exactly what running the prompt in front would give.
That is also how pack compiles a prompt adapter for the edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class PromptTuningConfig:
    num_virtual_tokens: int = 20
    init: str = "vocab"  # "labels" (label-word embeddings, cycled) | "vocab" (sampled vocabulary rows) | "random"


class PromptTuning(nn.Module):
    def __init__(self, cfg: PromptTuningConfig, backbone, init_token_ids: list[int] | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        emb = backbone.embed.weight.detach()
        g = torch.Generator().manual_seed(seed)
        P = cfg.num_virtual_tokens
        if cfg.init == "labels" and init_token_ids:
            ids = torch.tensor([init_token_ids[i % len(init_token_ids)] for i in range(P)])
            init = emb[ids].clone()
        elif cfg.init in ("vocab", "labels"):  # labels without words falls back to vocabulary rows
            ids = torch.randint(4, emb.shape[0], (P,), generator=g)  # skip the 4 special tokens
            init = emb[ids].clone()
        elif cfg.init == "random":
            init = torch.randn(P, emb.shape[1], generator=g) * emb.std()
        else:
            raise ValueError(f"unknown prompt init {cfg.init!r} (labels, vocab or random)")
        self.prompt = nn.Parameter(init)

    @classmethod
    def from_options(cls, o, backbone, seed: int, label_token_ids: list[int] | None, text_token_ids: list[int]):
        """o: the tuning options (virtual_tokens, init); `--init labels` starts from the label words' embeddings."""
        return cls(PromptTuningConfig(o.virtual_tokens, o.init), backbone, label_token_ids, seed)

    def kv_prefix(self, backbone, batch: int):
        _, presents = backbone(inputs_embeds=self.prompt[None])
        return [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in presents]
