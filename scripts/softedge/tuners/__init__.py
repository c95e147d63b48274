"""Parameter-efficient tuners. Both produce the same thing for the backbone: a KV prefix of P virtual tokens
(a list of (key, value) per layer, [B, kvH, P, D]) fed as past_key_values, with real tokens at positions P, P+1, ..."""
from .prefix import PrefixTuning, PrefixTuningConfig
from .prompt import PromptTuning, PromptTuningConfig

__all__ = ["PromptTuning", "PromptTuningConfig", "PrefixTuning", "PrefixTuningConfig"]
