"""A nanoGPT-style byte-level decoder with a KV cache, and its byte tokenizer.

    from reference.model import GPT, GPTConfig, encode, decode
    model = GPT(GPTConfig())
    cache = model.new_cache(batch_size=1)
    logits = model(idx, cache=cache)      # prefill; later calls append one token at a time

The KV cache lets an agent loop keep its context across steps: each new token (or each injected
observation) is processed once, and attention reads the cached keys and values of everything
before it. `tests/test_model.py` checks that incremental decoding picks the same next tokens
as recomputing the whole context.

Positions are learned absolute embeddings, or rotary ones (`GPTConfig(rope=True)`: relative
positions, which make copying a string from anywhere in the context far easier to learn; the
nano-react reference uses them). Cached keys are stored already rotated.

A forward of several cached rows (the engine's decode steps, drafted or not, and its prefills)
runs only the rows' real tokens through the embedding, projections and MLP, (N, C). Attention
then runs, for float32 inference on a CPU with AVX2, in the ragged kernel of
reference/attention.py: each row's new tokens read only that row's own keys, nothing padded,
rows in any order (`GPT.ragged`). Elsewhere (a GPU, bf16, no C compiler) it runs as SDPA per
group of consecutive rows (`_Batch`, cut by `_partition`), each group's keys read up to its own
longest row and its queries padded to its own widest (SDPA on CPU at these shapes costs about
rows x keys x (1.34 + 0.52 x width), so a short or narrow row in a long or wide group is the
waste this cuts).

Limits: a context never exceeds `block_size`; the cache's rows advance independently (the
batched engine keeps its own per-row bookkeeping on top).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference import attention as _attention

# Rows per attention call in a batched forward (_Batch): keys are read, and queries padded, only
# up to the longest and widest row of each group of this many consecutive rows.
GROUP_ROWS = 8
# What one SDPA call of a group costs, measured on the 2-core reference machine (nh=4, hs=32):
# rows x keys x (KEY_COST + QUERY_COST x width), plus CALL_COST for the call itself.
KEY_COST, QUERY_COST, CALL_COST = 1.34, 0.52, 2000.0


def encode(text: str) -> list[int]:
    """Byte-level tokenizer: one token per UTF-8 byte. Total: text that is not valid Unicode
    (a lone surrogate from a program's output) is backslash-escaped, never an exception."""
    return list(text.encode("utf-8", "backslashreplace"))


def decode(tokens: list[int]) -> str:
    return bytes(tokens).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = 1024   # longest context in tokens (bytes)
    vocab_size: int = 256    # byte-level
    n_layer: int = 4         # transformer blocks
    n_head: int = 4          # attention heads per block
    n_embd: int = 128        # residual stream width
    rope: bool = False       # rotary position embeddings (relative) instead of learned positions

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Keys and values of up to `batch_size` independent rows (episodes), preallocated to
    block_size: k, v are (n_layer, B, nh, T_max, hs); `lengths[b]` tokens of row b are cached.

    Rows advance independently, which is what continuous batching needs: a finished episode's
    row is `reset` and reused by the next episode while the others keep decoding."""

    def __init__(self, config: GPTConfig, batch_size: int, device, dtype=torch.float32):
        hs = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, hs)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.lengths = [0] * batch_size  # tokens cached per row (host-side bookkeeping)

    @property
    def length(self) -> int:
        """Cached tokens of row 0 (the single-episode case)."""
        return self.lengths[0]

    def truncate(self, length: int, row: int = 0) -> None:
        """Forget everything after `length` tokens of a row (e.g. a line the agent must not
        have written); the stale keys beyond it are never read again."""
        assert 0 <= length <= self.lengths[row]
        self.lengths[row] = length

    def reset(self, row: int) -> None:
        self.lengths[row] = 0

    def move_rows(self, src: list[int], dst: list[int]) -> None:
        """Move rows' cached tokens to other rows, all at once (src and dst may overlap, as in
        a permutation: the engine keeps active rows contiguous and grouped by length). Each
        row's live part is copied out, then in (3x faster than one indexed copy, measured)."""
        parts = [(self.k[:, r, :, :self.lengths[r]].clone(),
                  self.v[:, r, :, :self.lengths[r]].clone()) for r in src]
        moved = [self.lengths[r] for r in src]
        for r in src:
            self.lengths[r] = 0
        for r, n, (k, v) in zip(dst, moved, parts):
            self.k[:, r, :, :n] = k
            self.v[:, r, :, :n] = v
            self.lengths[r] = n

    def bytes_per_token(self) -> int:
        n_layer, _, nh, _, hs = self.k.shape
        return 2 * n_layer * nh * hs * self.k.element_size()

    def nbytes_used(self, row: int = 0) -> int:
        return self.bytes_per_token() * self.lengths[row]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x, cache: KVCache | None, layer: int, rows=None, starts=None, rot=None,
                batch=None):
        if batch is not None:  # several cached rows: their real tokens only, x is (N, C)
            return self._batched(x, cache, layer, rot, batch)
        B, T, C = x.size()
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        if rot is not None:  # keys are cached rotated: a cached key never moves
            q, k = _rotate(q, *rot), _rotate(k, *rot)
        if cache is None:
            # fp32 attention even under bf16 autocast: on CPU its fused kernel is faster in
            # fp32 (measured 140 ms against 203 ms fwd+bwd at B=32, T=512, nh=4, hs=32).
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                               is_causal=True).to(q.dtype)
        else:  # one row
            r, start = rows[0], starts[0]
            cache.k[layer, r, :, start:start + T] = k[0]
            cache.v[layer, r, :, start:start + T] = v[0]
            kk = cache.k[layer, r:r + 1, :, :start + T]  # (1, nh, start+T, hs)
            vv = cache.v[layer, r:r + 1, :, :start + T]
            if T == 1:
                y = F.scaled_dot_product_attention(q, kk, vv)
            else:
                # query j sits at absolute position start+j and may see keys 0..start+j
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
                y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y)

    def _batched(self, x, cache: KVCache, layer: int, rot, b: "_Batch") -> torch.Tensor:
        """A decode step (drafted or not) or a prefill of several rows, as their N real tokens
        x (N, C): the projections see only real tokens; attention runs per group of rows
        (_Batch), each group's queries right-padded to its widest row (a padding query is
        zero) and its keys read up to its longest row."""
        N, C = x.size()
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=1)
        q, k, v = q.view(N, nh, hs), k.view(N, nh, hs), v.view(N, nh, hs)
        if rot is not None:
            q, k = _rotate(q, *rot), _rotate(k, *rot)
        if b.kernel is not None:  # ragged, unpadded: writes the cache and attends in one call
            return self.c_proj(b.kernel(b.meta, q, k, v, cache, layer))
        cache.k[layer, b.ridx_real, :, b.pos_real] = k  # (N, nh, hs)
        cache.v[layer, b.ridx_real, :, b.pos_real] = v
        ys = []
        for g in b.groups:
            qg = q[g.lo:g.hi]
            if g.keep is not None:
                qq = qg.new_zeros(g.rows * g.width, nh, hs)
                qq[g.keep] = qg
                qg = qq
            qg = qg.view(g.rows, g.width, nh, hs).transpose(1, 2)  # (rows, nh, width, hs)
            y = F.scaled_dot_product_attention(qg, *g.cached(cache, layer), attn_mask=g.mask)
            y = y.transpose(1, 2).reshape(g.rows * g.width, C)
            ys.append(y if g.keep is None else y[g.keep])
        return self.c_proj(ys[0] if len(ys) == 1 else torch.cat(ys))


class _Group:
    """Consecutive rows of a batch whose attention runs as one SDPA call: their tokens are
    lo:hi of the batch's real tokens; `width` is the widest row's token count and `keep`
    indexes the real ones among the (rows * width) padded positions (None: none padded); keys
    are read up to the longest row (n), as a view of the cache when the rows are contiguous
    (r0), else gathered (ridx); `mask` is the additive (rows, 1, width, n) mask (query j of
    row b sits at starts[b] + j and sees keys 0..starts[b] + j), None when every query sees
    every key."""

    __slots__ = ("lo", "hi", "rows", "width", "keep", "n", "r0", "ridx", "mask")

    def __init__(self, rows: list[int], starts: list[int], n_new: list[int], lo: int,
                 ridx: torch.Tensor, starts_t: torch.Tensor, counts: torch.Tensor):
        """ridx, starts_t, counts: the group's slices of the batch's tensors of its lists."""
        device = ridx.device
        self.lo, self.hi = lo, lo + sum(n_new)
        self.rows, self.width = len(rows), max(n_new)
        self.n = max(s + w for s, w in zip(starts, n_new))
        self.r0 = _first_if_contiguous(rows)
        self.ridx = None if self.r0 is not None else ridx
        self.keep = None
        if min(n_new) < self.width:
            real = (torch.arange(self.width, device=device)[None, :] < counts[:, None]).view(-1)
            self.keep = real.nonzero().squeeze(1)
        self.mask = None
        if self.width > 1 or min(starts) + 1 < self.n:
            pos = starts_t[:, None] + torch.arange(self.width, device=device)[None, :]
            seen = torch.arange(self.n, device=device)[None, None, :] <= pos[:, :, None]
            self.mask = torch.zeros(seen.shape, device=device).masked_fill_(
                ~seen, float("-inf"))[:, None]  # (rows, 1, width, n)

    def cached(self, cache: KVCache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The group's cached keys and values of one layer, (rows, nh, n, hs) each."""
        if self.r0 is not None:
            rs = slice(self.r0, self.r0 + self.rows)
            return cache.k[layer, rs, :, :self.n], cache.v[layer, rs, :, :self.n]
        return cache.k[layer, self.ridx, :, :self.n], cache.v[layer, self.ridx, :, :self.n]


class _Batch:
    """What every layer of one forward of several cached rows shares: each real token's row
    and position (ridx_real, None under the kernel, and pos_real, (N,)), `keep` indexing the
    real tokens among the (B * T) positions of the padded input (None when no row is
    padded), and how attention runs: the ragged CPU kernel (reference/attention.py) over `meta`,
    the rows' C arrays, or else SDPA per attention group, runs of consecutive rows
    (_partition), so that a short row is not padded to the batch's longest, nor a narrow one to
    its widest (the engine orders rows by length)."""

    __slots__ = ("ridx_real", "pos_real", "keep", "groups", "kernel", "meta")

    def __init__(self, rows: list[int], starts: list[int], n_new: list[int], T: int, device,
                 kernel: "_attention.Kernel | None" = None):
        self.kernel, self.meta, self.groups = kernel, None, []
        if kernel is not None:
            self.meta = _attention.RowMeta(rows, starts, n_new)
        counts = torch.tensor(n_new, device=device)
        ridx, starts_t = torch.tensor(rows, device=device), torch.tensor(starts, device=device)
        # the SDPA path writes the cache by (row, position); the kernel writes it itself
        self.ridx_real = None if kernel is not None else ridx.repeat_interleave(counts)
        self.keep = None
        pos = (starts_t[:, None] + torch.arange(T, device=device)[None, :]).view(-1)  # (B * T)
        if sum(n_new) < len(rows) * T:
            self.keep = (torch.arange(T, device=device)[None, :] < counts[:, None]) \
                .view(-1).nonzero().squeeze(1)  # (N,)
            pos = pos[self.keep]
        self.pos_real = pos
        if kernel is not None:
            return
        lo = 0
        for i, j in _partition(starts, n_new):
            g = _Group(rows[i:j], starts[i:j], n_new[i:j], lo, ridx[i:j], starts_t[i:j],
                       counts[i:j])
            self.groups.append(g)
            lo = g.hi


def _partition(starts: list[int], n_new: list[int]) -> list[tuple[int, int]]:
    """Cut the rows, in their order, into attention groups: runs of GROUP_ROWS, or the runs
    a greedy pass forms (a row joins the current group when that costs less than a group of
    its own), whichever costs less. The first suits decode steps (widths alike, GROUP_ROWS
    measured best); the second prefills, whose prompts and observations differ 10x in width."""
    def cost(rows: int, n: int, width: int) -> float:
        return rows * n * (KEY_COST + QUERY_COST * width) + CALL_COST

    ends = [s + w for s, w in zip(starts, n_new)]
    B = len(ends)
    fixed = [(i, min(i + GROUP_ROWS, B)) for i in range(0, B, GROUP_ROWS)]
    fixed_cost = sum(cost(j - i, max(ends[i:j]), max(n_new[i:j])) for i, j in fixed)
    greedy, greedy_cost = [], 0.0
    i, n, width = 0, ends[0], n_new[0]  # the current group: rows i.., longest n, widest width
    for j in range(1, B):
        n2, width2 = max(n, ends[j]), max(width, n_new[j])
        if cost(j + 1 - i, n2, width2) - cost(j - i, n, width) > cost(1, ends[j], n_new[j]):
            greedy.append((i, j))
            greedy_cost += cost(j - i, n, width)
            i, n, width = j, ends[j], n_new[j]
        else:
            n, width = n2, width2
    greedy.append((i, B))
    greedy_cost += cost(B - i, n, width)
    return fixed if fixed_cost <= greedy_cost else greedy


def _first_if_contiguous(rows: list[int]) -> int | None:
    """rows[0] when the rows are rows[0], rows[0] + 1, ... (the cache is then read as a view)."""
    r0 = rows[0]
    return r0 if rows == list(range(r0, r0 + len(rows))) else None


def _rotary_tables(pos: torch.Tensor, hs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of rotary embeddings (RoFormer) at positions `pos` (T,) or (B, T), shaped
    to broadcast over (B, nh, T, hs // 2)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, hs, 2, device=pos.device, dtype=torch.float32)
                                / hs))
    ang = pos.to(torch.float32)[..., None] * inv_freq  # (..., T, hs/2)
    if ang.dim() == 3:
        ang = ang[:, None]  # (B, 1, T, hs/2)
    return ang.cos(), ang.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + hs/2]) of each head by its position's angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, cache, layer, rows=None, starts=None, rot=None, batch=None):
        x = x + self.attn(self.ln_1(x), cache, layer, rows, starts, rot, batch)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if not config.rope:
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.config, batch_size, p.device, p.dtype)

    def ragged(self, cache: KVCache) -> bool:
        """Whether inference over this cache runs the ragged attention kernel (rows in any
        order, nothing padded; reference/attention.py), else SDPA per group of consecutive
        rows (whose order then matters: the engine keeps them grouped by length)."""
        return self._kernel(cache) is not None

    def _kernel(self, cache: KVCache) -> _attention.Kernel | None:
        if not _attention.usable(cache, self.lm_head.weight):
            return None
        return _attention.kernel(self.config.n_embd // self.config.n_head)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                last_only: bool = False, rows: list[int] | None = None,
                n_new: list[int] | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, vocab), or (B, 1, vocab) with last_only.

        With a cache, row `rows[b]` of the cache (default: rows 0..B-1) is continued by
        idx[b] and grows by T: one row's prefill or decode step (B == 1), one decode step of
        many rows, each at its own position (T == 1), or a prefill of many rows (B > 1, T > 1)
        where row b's tokens are idx[b, :n_new[b]], right-padded to T; every row's start + T
        must fit block_size, and last_only then gives each row's last real position."""
        B, T = idx.size()
        if n_new is not None and (cache is None or len(n_new) != B or min(n_new) < 1
                                  or max(n_new) > T):
            raise ValueError("n_new needs a cache and one count in 1..T per row")
        if cache is None:
            pos = torch.arange(T, device=idx.device)
            if T > self.config.block_size:
                raise ValueError(f"context of {T} tokens exceeds "
                                 f"block_size {self.config.block_size}")
            rows = starts = None
        else:
            rows = list(range(B)) if rows is None else list(rows)
            starts = [cache.lengths[r] for r in rows]
            if max(starts) + T > self.config.block_size:
                raise ValueError(f"context of {max(starts) + T} tokens exceeds block_size "
                                 f"{self.config.block_size}")
        counts = n_new if n_new is not None else [T] * B
        batch = None
        if cache is not None and B > 1:  # only the real tokens go through the model
            kernel = None
            if not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
                kernel = self._kernel(cache)
            batch = _Batch(rows, starts, counts, T, idx.device, kernel)
            idx = idx.reshape(-1) if batch.keep is None else idx.reshape(-1)[batch.keep]
            pos = batch.pos_real  # (N,)
        elif cache is not None:
            pos = torch.arange(starts[0], starts[0] + T, device=idx.device)[None, :]  # (1, T)
        if self.config.rope:
            x, rot = self.wte(idx), _rotary_tables(pos, self.config.n_embd // self.config.n_head)
            if batch is not None:
                rot = (rot[0][:, None], rot[1][:, None])  # (N, 1, hs/2): over the heads
        else:
            x, rot = self.wte(idx) + self.wpe(pos), None  # (B, T, C); batched: (N, C)
        for layer, block in enumerate(self.h):
            x = block(x, cache, layer, rows, starts, rot, batch)
        if cache is not None:
            for r, n in zip(rows, counts):
                cache.lengths[r] += n
        if batch is not None:
            if last_only:  # each row's last real token
                last = torch.tensor(counts, device=x.device).cumsum(0) - 1
                return self.lm_head(self.ln_f(x[last]))[:, None]  # (B, 1, vocab)
            logits = self.lm_head(self.ln_f(x))  # (N, vocab)
            if batch.keep is None:
                return logits.view(B, T, -1)
            out = logits.new_zeros(B * T, logits.shape[-1])
            out[batch.keep] = logits
            return out.view(B, T, -1)  # a padding position's logits are zero
        if last_only:
            x = (x[torch.arange(B, device=x.device),
                   torch.tensor(counts, device=x.device) - 1][:, None]
                 if n_new is not None else x[:, -1:])
        return self.lm_head(self.ln_f(x))
