import dataclasses

import pytest
import torch

from reference.model import GPT, GPTConfig, decode, encode

CFG = GPTConfig(block_size=128, n_layer=2, n_head=2, n_embd=32)


def test_tokenizer_round_trips_utf8():
    text = "Question: Ünïcode ok? 6.022e+23\n"
    assert decode(encode(text)) == text


@pytest.mark.parametrize("rope", [False, True], ids=["learned-positions", "rope"])
@torch.no_grad()
def test_kv_cache_decoding_matches_full_recomputation(rope):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(CFG, rope=rope)).eval()
    prompt = encode("Question: What is pi times 2?\n")
    # incremental: prefill the prompt, then one token at a time, with a mid-way multi-token chunk
    cache = model.new_cache(1)
    logits = model(torch.tensor([prompt]), cache=cache)[0, -1]
    seq = list(prompt)
    chosen_inc = []
    for i in range(40):
        tok = int(logits.argmax())
        chosen_inc.append(tok)
        seq.append(tok)
        if i == 20:  # inject an "observation" chunk as the environment would
            chunk = encode("Observation: 3\n")
            seq.extend(chunk)
            logits = model(torch.tensor([[tok] + chunk]), cache=cache)[0, -1]
        else:
            logits = model(torch.tensor([[tok]]), cache=cache)[0, -1]
    # full recomputation of the same sequence gives the same choices at the same positions
    full = model(torch.tensor([seq[:-1]]))[0]
    pos, chosen_full = len(prompt) - 1, []
    for i in range(40):
        chosen_full.append(int(full[pos].argmax()))
        pos += 1 + (len(encode("Observation: 3\n")) if i == 20 else 0)
    assert chosen_inc == chosen_full
    assert cache.length == len(seq)


@torch.no_grad()
def test_cache_truncate_forgets_tokens():
    torch.manual_seed(1)
    model = GPT(CFG).eval()
    a = encode("Question: x\n")
    cache = model.new_cache(1)
    model(torch.tensor([a]), cache=cache)
    model(torch.tensor([encode("junk")]), cache=cache)
    cache.truncate(len(a))
    out1 = model(torch.tensor([encode("ok")]), cache=cache)[0, -1]
    out2 = model(torch.tensor([a + encode("ok")]))[0, -1]
    assert torch.allclose(out1, out2, atol=1e-5)


def test_context_over_block_size_is_refused():
    model = GPT(CFG)
    try:
        model(torch.zeros(1, 129, dtype=torch.long))
    except ValueError as err:
        assert "block_size" in str(err)
    else:
        raise AssertionError("no error")


def test_kv_cache_bytes_grow_with_context():
    model = GPT(CFG)
    cache = model.new_cache(1)
    model(torch.zeros(1, 10, dtype=torch.long), cache=cache)
    # 2 (k, v) * layers * heads * head size * 4 bytes per token
    assert cache.nbytes_used() == 10 * 2 * 2 * 2 * 16 * 4
