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


@pytest.mark.parametrize("rope", [False, True], ids=["learned-positions", "rope"])
@torch.no_grad()
def test_batched_prefill_of_ragged_rows_matches_row_by_row_prefill(rope, attention_path):
    torch.manual_seed(5)
    m = GPT(GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=32, rope=rope)).eval()
    one, many = m.new_cache(4), m.new_cache(4)
    for r, n in ((0, 5), (2, 9), (3, 1)):  # rows already at different positions
        t = torch.randint(0, 256, (1, n))
        m(t, cache=one, rows=[r])
        m(t, cache=many, rows=[r])
    new = {2: [7] * 8, 0: [1, 2, 3], 3: [4, 5, 6, 7, 8, 9]}  # ragged, rows out of order
    want = torch.stack([m(torch.tensor([t]), cache=one, last_only=True, rows=[r])[0, -1]
                        for r, t in new.items()])
    width = max(map(len, new.values()))
    idx = torch.tensor([t + [0] * (width - len(t)) for t in new.values()])
    got = m(idx, cache=many, last_only=True, rows=list(new),
            n_new=[len(t) for t in new.values()])[:, 0]
    assert torch.allclose(got, want, atol=1e-5)
    assert many.lengths == one.lengths == [8, 0, 17, 7]
    for r in new:  # the padding never became part of a row
        n = one.lengths[r]
        assert torch.allclose(many.k[:, r, :, :n], one.k[:, r, :, :n], atol=1e-5)
    # and the next decode step reads the same context
    toks = got.argmax(-1)[:, None]
    assert torch.allclose(m(toks, cache=many, last_only=True, rows=list(new)),
                          m(toks, cache=one, last_only=True, rows=list(new)), atol=1e-5)


@pytest.mark.parametrize("rope", [False, True], ids=["learned-positions", "rope"])
@torch.no_grad()
def test_ragged_rows_give_every_real_position_its_row_by_row_logits(rope, attention_path):
    """A drafted decode step: every position's logits, not only the last. Only the rows' real
    tokens go through the projections; a padding position's logits are zero."""
    torch.manual_seed(6)
    m = GPT(GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=32, rope=rope)).eval()
    one, many = m.new_cache(3), m.new_cache(3)
    for r, n in ((0, 4), (1, 11), (2, 2)):
        t = torch.randint(0, 256, (1, n))
        m(t, cache=one, rows=[r])
        m(t, cache=many, rows=[r])
    new = [[3], [9, 8, 7, 6, 5], [1, 2]]
    want = [m(torch.tensor([t]), cache=one, rows=[r])[0] for r, t in enumerate(new)]
    idx = torch.tensor([t + [0] * (5 - len(t)) for t in new])
    got = m(idx, cache=many, n_new=[len(t) for t in new])  # (3, 5, vocab)
    for r, t in enumerate(new):
        assert torch.allclose(got[r, :len(t)], want[r], atol=1e-5)
        assert not got[r, len(t):].any()
    assert many.lengths == one.lengths == [5, 16, 4]


def test_batched_prefill_counts_are_checked():
    m = GPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    cache = m.new_cache(2)
    idx = torch.zeros(2, 3, dtype=torch.long)
    for bad in ([3], [0, 3], [3, 4]):
        with pytest.raises(ValueError, match="n_new"):
            m(idx, cache=cache, n_new=bad)
    with pytest.raises(ValueError, match="n_new"):
        m(idx, n_new=[3, 3])
    assert cache.lengths == [0, 0]


@pytest.mark.parametrize("rope", [False, True], ids=["learned-positions", "rope"])
@torch.no_grad()
def test_attention_groups_give_every_row_its_row_by_row_logits(rope, monkeypatch):
    """A batched forward runs attention per group of rows, each reading keys up to its own
    longest row: contiguous and scattered rows, out of order, ragged and plain."""
    import reference.model as gpt
    monkeypatch.setattr(gpt._attention, "kernel", lambda hs: None)  # SDPA groups
    monkeypatch.setattr(gpt, "_partition", lambda starts, n_new: [(0, 3), (3, 5), (5, 7)])
    torch.manual_seed(7)
    m = GPT(GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=32, rope=rope)).eval()
    one, many = m.new_cache(9), m.new_cache(9)
    rows = [4, 5, 6, 0, 8, 2, 1]  # a contiguous run, then scattered rows
    for r, n in zip(rows, (30, 2, 17, 9, 1, 25, 5)):
        t = torch.randint(0, 256, (1, n))
        m(t, cache=one, rows=[r])
        m(t, cache=many, rows=[r])
    new = [[3, 1], [9, 8, 7, 6], [1], [2, 2, 2], [5, 4, 3, 2], [7], [6, 6]]
    want = [m(torch.tensor([t]), cache=one, rows=[r])[0] for r, t in zip(rows, new)]
    idx = torch.tensor([t + [0] * (4 - len(t)) for t in new])
    got = m(idx, cache=many, rows=rows, n_new=[len(t) for t in new])  # (7, 4, vocab)
    for i, t in enumerate(new):
        assert torch.allclose(got[i, :len(t)], want[i], atol=1e-5)
        assert not got[i, len(t):].any()
    assert many.lengths == one.lengths
    toks = got[torch.arange(7), torch.tensor([len(t) - 1 for t in new])].argmax(-1)[:, None]
    plain = m(toks, cache=many, last_only=True, rows=rows)  # one token per row
    for i, r in enumerate(rows):
        assert torch.allclose(plain[i, 0], m(toks[i:i + 1], cache=one, rows=[r])[0, -1],
                              atol=1e-5)


def test_move_rows_permutes_rows_and_their_lengths():
    m = GPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    cache = m.new_cache(4)
    for r, n in ((0, 3), (1, 5), (2, 2)):
        m(torch.randint(0, 256, (1, n)), cache=cache, rows=[r])
    before = {r: (cache.k[:, r, :, :cache.lengths[r]].clone(),
                  cache.v[:, r, :, :cache.lengths[r]].clone(), cache.lengths[r]) for r in range(3)}
    cache.move_rows([0, 1, 2], [1, 3, 0])  # a cycle through an overlapping row, and a free one
    assert cache.lengths == [2, 3, 0, 5]
    for src, dst in ((0, 1), (1, 3), (2, 0)):
        k, v, n = before[src]
        assert torch.equal(cache.k[:, dst, :, :n], k) and torch.equal(cache.v[:, dst, :, :n], v)


def test_partition_covers_rows_in_order_and_separates_wide_prefills():
    import random
    from reference import model as gpt

    def cost(starts, widths, cuts):
        return sum((j - i) * max(s + w for s, w in zip(starts[i:j], widths[i:j]))
                   * (gpt.KEY_COST + gpt.QUERY_COST * max(widths[i:j])) + gpt.CALL_COST
                   for i, j in cuts)

    rng = random.Random(0)
    for _ in range(200):
        B = rng.randint(1, 64)
        starts = sorted((rng.randint(0, 900) for _ in range(B)), reverse=True)
        widths = [rng.randint(1, 9) for _ in range(B)]
        cuts = gpt._partition(starts, widths)
        assert [r for i, j in cuts for r in range(i, j)] == list(range(B))  # each row once
        runs = [(i, min(i + gpt.GROUP_ROWS, B)) for i in range(0, B, gpt.GROUP_ROWS)]
        assert cost(starts, widths, cuts) <= cost(starts, widths, runs) + 1e-6
    # a prefill: observations of long rows, then prompts 10x wider at the start of their rows
    cuts = gpt._partition([400, 390, 380, 370, 0, 0, 0], [30, 20, 30, 25, 200, 210, 190])
    assert all(j <= 4 or i >= 4 for i, j in cuts)  # no observation padded to a prompt's width
