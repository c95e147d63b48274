"""Parameter-efficient tuners. Every tuner produces the same thing for the backbone: a KV prefix of P virtual tokens
(a list of (key, value) per layer, [B, kvH, P, D]) fed as past_key_values, with real tokens at positions P, P+1, ...

One interface: TUNERS maps a method name to its class; each class builds itself from the tuning options with
`from_options(opts, backbone, seed, label_token_ids, text_token_ids)` and gives `kv_prefix(backbone, batch)`.
A new method is a class with those two and an entry here."""
from .prefix import PrefixTuning, PrefixTuningConfig
from .prompt import PromptTuning, PromptTuningConfig

TUNERS = {"prompt": PromptTuning, "prefix": PrefixTuning}

__all__ = ["TUNERS", "PromptTuning", "PromptTuningConfig", "PrefixTuning", "PrefixTuningConfig"]
