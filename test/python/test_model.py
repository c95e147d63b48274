"""The model's contract: KV prefix == running the prefix tokens, padded batch == single requests."""
import pytest
import torch

from softedge.backbone.model import ModelConfig, Transformer, positions_from_mask


def test_kv_prefix_equals_running_the_prefix_tokens(tiny_model):
    ids = torch.randint(4, 300, (2, 9))
    full, _ = tiny_model(ids)
    _, past = tiny_model(ids[:, :5])
    rest, _ = tiny_model(ids[:, 5:], attention_mask=torch.ones(2, 9, dtype=torch.long), past_key_values=past)
    assert torch.allclose(full[:, 5:], rest, atol=1e-5)


def test_left_padded_batch_answers_as_single_requests(tiny_model):
    a = torch.randint(4, 300, (1, 7))
    b = torch.randint(4, 300, (1, 3))
    ids = torch.cat([a, torch.cat([torch.zeros(1, 4, dtype=torch.long), b], 1)])
    mask = torch.tensor([[1] * 7, [0] * 4 + [1] * 3])
    batch, _ = tiny_model(ids, attention_mask=mask)
    single_a, _ = tiny_model(a)
    single_b, _ = tiny_model(b)
    assert torch.allclose(batch[0], single_a[0], atol=1e-5)
    assert torch.allclose(batch[1, 4:], single_b[0], atol=1e-5)


def test_padding_behind_a_kv_prefix(tiny_model):
    cfg = tiny_model.cfg
    past = [
        (torch.randn(1, cfg.n_kv_head, 3, cfg.head_dim), torch.randn(1, cfg.n_kv_head, 3, cfg.head_dim))
        for _ in range(cfg.n_layer)
    ]
    b = torch.randint(4, 300, (1, 4))
    single, _ = tiny_model(b, attention_mask=torch.ones(1, 7, dtype=torch.long), past_key_values=past)
    padded_ids = torch.cat([torch.zeros(1, 2, dtype=torch.long), b], 1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 1, 1]])
    padded, _ = tiny_model(padded_ids, attention_mask=mask, past_key_values=past)
    assert torch.allclose(padded[0, 2:], single[0], atol=1e-5)


def test_positions_start_after_the_prefix_and_skip_padding():
    mask = torch.tensor([[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert positions_from_mask(mask, 4).tolist() == [[1, 1, 2, 3], [2, 3, 4, 5]]


def test_last_only_is_the_last_row_of_full_logits(tiny_model):
    ids = torch.randint(4, 300, (2, 6))
    full, _ = tiny_model(ids)
    last, _ = tiny_model(ids, last_only=True)
    assert last.shape == (2, 1, 300)
    assert torch.allclose(full[:, -1:], last, atol=1e-6)


def test_inputs_embeds_matches_ids(tiny_model):
    ids = torch.randint(4, 300, (1, 5))
    a, _ = tiny_model(ids)
    b, _ = tiny_model(inputs_embeds=tiny_model.embed(ids))
    assert torch.allclose(a, b)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(arch="mamba"), "unknown architecture"),
        (dict(d_model=30, n_head=4), "multiple of n_head"),
        (dict(n_head=4, n_kv_head=3), "multiple of n_kv_head"),
        (dict(arch="gpt2", n_head=4, n_kv_head=2), "grouped-query"),
    ],
)
def test_bad_configs_are_refused(bad, msg):
    with pytest.raises(ValueError, match=msg):
        ModelConfig(**{"d_model": 32, **bad})


def test_gqa_has_fewer_kv_parameters():
    gqa = Transformer(ModelConfig(arch="llama", vocab_size=50, n_layer=1, n_head=4, n_kv_head=1, d_model=32, d_ff=64))
    mha = Transformer(ModelConfig(arch="llama", vocab_size=50, n_layer=1, n_head=4, n_kv_head=4, d_model=32, d_ff=64))
    assert gqa.blocks[0].attn.k_proj.weight.shape == (8, 32)
    assert gqa.num_params() < mha.num_params()
