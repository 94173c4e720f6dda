"""The ragged attention kernel (reference/attention.py): the same attention as a plain softmax
over each row's keys, the cache written in place, and a clear fallback or error where it
cannot be built."""
import math
import warnings

import pytest
import torch

from reference import attention
from reference.model import GPT, GPTConfig, KVCache


def _kernel_or_skip(hs: int) -> attention.Kernel:
    k = attention.kernel(hs)
    if k is None:
        pytest.skip("the attention kernel cannot be built here (see the warning)")
    return k


def _plain(q, kc, vc, rows, starts, counts):
    """Each new token attends to its row's keys 0..its position: softmax(q k^T / sqrt(hs)) v."""
    out, tok = [], 0
    for r, s, c in zip(rows, starts, counts):
        for t in range(c):
            qt = q[tok + t]  # (nh, hs)
            keys, vals = kc[r, :, :s + t + 1], vc[r, :, :s + t + 1]  # (nh, n, hs)
            w = torch.softmax((keys @ qt[:, :, None])[..., 0] / math.sqrt(q.shape[-1]), -1)
            out.append((w[:, None, :] @ vals)[:, 0].reshape(-1))
        tok += c
    return torch.stack(out)


@pytest.mark.parametrize("hs", [8, 16, 32, 64])
def test_kernel_matches_a_plain_softmax_over_each_rows_own_keys(hs):
    """Rows scattered and out of order, 1 to 20 new tokens each (the single-query kernel,
    blocks of 8 queries and their remainders), starting at 0, mid-cache and at the very end of
    the cache (the single-query kernel reads keys in blocks of 8 and masks the stale ones);
    values read through a strided view, as the model's fused projection gives them."""
    kern = _kernel_or_skip(hs)
    torch.manual_seed(hs)
    nh, L, B = 3, 64, 9
    cfg = GPTConfig(block_size=L, n_layer=2, n_head=nh, n_embd=nh * hs)
    cache = KVCache(cfg, B, "cpu")
    cache.k.normal_()  # stale keys and values everywhere: a row must read only its own
    cache.v.normal_()
    rows = [7, 2, 0, 5, 8, 1, 4, 3]
    counts = [1, 8, 9, 20, 3, 1, 16, 2]
    starts = [0, 13, 40, L - 20, L - 3, L - 1, 0, 29]
    N, C = sum(counts), nh * hs
    qkv = torch.randn(N, 3 * C)
    q, k, v = (t.view(N, nh, hs) for t in qkv.split(C, dim=1))  # token stride 3C
    q = q.contiguous()  # and a contiguous one
    layer = 1
    kc, vc = cache.k[layer].clone(), cache.v[layer].clone()
    tok = 0
    for r, s, c in zip(rows, starts, counts):  # what the kernel must write
        kc[r, :, s:s + c] = k[tok:tok + c].transpose(0, 1)
        vc[r, :, s:s + c] = v[tok:tok + c].transpose(0, 1)
        tok += c
    before = cache.k[0].clone()
    got = kern(attention.RowMeta(rows, starts, counts), q, k, v, cache, layer)
    assert got.shape == (N, C)
    assert torch.equal(cache.k[layer], kc) and torch.equal(cache.v[layer], vc)
    assert torch.equal(cache.k[0], before)  # other layers untouched
    want = _plain(q, kc, vc, rows, starts, counts)
    assert torch.allclose(got, want, atol=2e-5, rtol=1e-4), (got - want).abs().max()


def test_kernel_rejects_tensors_it_cannot_read():
    kern = _kernel_or_skip(16)
    cfg = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=32)
    cache = KVCache(cfg, 2, "cpu")
    q = torch.zeros(3, 2, 16)
    meta = attention.RowMeta([0, 1], [0, 0], [1, 2])
    with pytest.raises(ValueError, match="float32"):
        kern(meta, q.double(), q, q, cache, 0)
    with pytest.raises(ValueError, match="contiguous heads"):
        kern(meta, q.transpose(1, 2).contiguous().transpose(1, 2), q, q, cache, 0)


@torch.no_grad()
def test_model_uses_the_kernel_only_for_float32_inference(monkeypatch):
    _kernel_or_skip(16)
    m = GPT(GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=32)).eval()
    cache = m.new_cache(2)
    assert m.ragged(cache)
    calls = []
    real = attention.Kernel.__call__
    monkeypatch.setattr(attention.Kernel, "__call__",
                        lambda self, *a: calls.append(1) or real(self, *a))
    idx = torch.zeros(2, 3, dtype=torch.long)
    m(idx, cache=cache)
    assert calls == [1]
    with torch.enable_grad():  # training: autograd needs SDPA
        m(idx, cache=cache)
    assert calls == [1]
    assert not m.ragged(KVCache(GPTConfig(block_size=30, n_layer=1, n_head=2, n_embd=32), 2,
                                "cpu"))  # the cache's length not a multiple of 8
    assert not m.ragged(KVCache(m.config, 2, "cpu", dtype=torch.bfloat16))


def _fresh(monkeypatch, tmp_path, **env):
    monkeypatch.setattr(attention, "_kernels", {})
    monkeypatch.setattr(attention, "_build_dir", lambda: tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_a_failed_build_falls_back_to_sdpa_with_a_warning(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path, CC=str(tmp_path / "no-such-compiler"))
    with pytest.warns(RuntimeWarning, match="using SDPA"):
        assert attention.kernel(16) is None
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_a_head_size_the_kernel_cannot_take_falls_back(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path)
    with pytest.warns(RuntimeWarning, match="head size 12"):
        assert attention.kernel(12) is None


def test_nano_attention_kernel_makes_a_failed_build_an_error(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path, CC="false", NANO_ATTENTION="kernel")
    with pytest.raises(attention.KernelError, match="false failed"):
        attention.kernel(16)


def test_nano_attention_sdpa_and_bad_values(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path, NANO_ATTENTION="sdpa")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert attention.kernel(16) is None
    _fresh(monkeypatch, tmp_path, NANO_ATTENTION="fast")
    with pytest.raises(attention.KernelError, match="auto, sdpa or kernel"):
        attention.kernel(16)


def test_the_library_is_built_once_per_source_and_reused(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path)
    _kernel_or_skip(16)
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("attention-hs16-")
    monkeypatch.setattr(attention, "_kernels", {})
    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")
    monkeypatch.setattr(attention.subprocess, "run", no_compiling)
    assert attention.kernel(16) is not None


def test_threads_split_rows_and_heads_with_bit_identical_results():
    """threads > 1 splits the (row, head) units over OpenMP threads (where the build has
    OpenMP; else it runs serially): every output and cache entry equals the one-thread call's,
    bit for bit, whatever the split."""
    kern = _kernel_or_skip(32)
    torch.manual_seed(3)
    nh, L, B, hs = 4, 128, 24, 32
    cfg = GPTConfig(block_size=L, n_layer=1, n_head=nh, n_embd=nh * hs)
    rows = list(range(B))[::-1]
    counts = [(1, 3, 9, 17)[i % 4] for i in range(B)]
    starts = [(7 * i) % (L - 20) for i in range(B)]
    N, C = sum(counts), nh * hs
    q, k, v = (t.view(N, nh, hs) for t in torch.randn(N, 3 * C).split(C, dim=1))
    got = {}
    for threads in (1, 2, 3):
        cache = KVCache(cfg, B, "cpu")
        cache.k.normal_(generator=torch.Generator().manual_seed(1))
        cache.v.normal_(generator=torch.Generator().manual_seed(2))
        out = kern(attention.RowMeta(rows, starts, counts, threads=threads), q, k, v, cache, 0)
        got[threads] = (out, cache.k.clone(), cache.v.clone())
    for threads in (2, 3):
        assert all(torch.equal(a, b) for a, b in zip(got[1], got[threads]))
