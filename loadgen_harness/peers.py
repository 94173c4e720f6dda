"""Peers on the same weights: the reference checkpoint as a Hugging Face GPT-NeoX model, and
the same episodes run through it the way a researcher would write the agent loop.

    make bench-peers   # its own venv (build/peers-venv) with transformers; then bench --peers
    from loadgen_harness.peers import to_gpt_neox, hf_episodes
    hf = to_gpt_neox(model)                       # a transformers GPTNeoXForCausalLM
    rate, results = hf_episodes(hf, tasks, make_env, block_size)

Export (`to_gpt_neox`): our blocks are GPT-NeoX blocks with sequential residuals
(use_parallel_residual=False), exact GELU, LayerNorm eps 1e-5, no biases (NeoX's are set to
zero) and full rotary (rotary_pct=1, base 10000). Two layouts differ and are converted:
- the fused QKV projection: ours is [q of every head | k | v] (3C rows), NeoX's is per head
  [q_h | k_h | v_h] (its output is viewed as (nh, 3 hs));
- rotary: both rotate the pairs (x[i], x[i + hs/2]) (NeoX's rotate_half), so no permutation.
The output head is tied to the embedding in ours; NeoX's output head gets a copy.
tests/test_peers.py checks that the exported model's logits equal ours (it skips where
transformers is not installed: the test venv never has it).

The HF agent loop (`hf_episodes`) is `reference.episode.run_env` itself, the one-episode loop
with a KV cache kept across tool calls, driving the HF model through a thin adapter
(`_HFModel`: forward with `past_key_values`, `DynamicCache.crop` where a step's text is cut):
the same tools, parser and stopping rules, greedy, one episode at a time on every core.

Limits: only rotary checkpoints export (a learned-position model has no NeoX equivalent);
llama.cpp and vLLM are not run here (see the README's performance section for why).
"""
from __future__ import annotations

import inspect
import time

import torch

from reference.episode import run_env
from reference.model import GPT


def to_gpt_neox(model: GPT):
    """The model as a transformers GPTNeoXForCausalLM with the same weights (float32, eval)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # only in the peers' venv
    cfg = model.config
    if not cfg.rope:
        raise ValueError("only a rotary model (GPTConfig(rope=True)) exports to GPT-NeoX")
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    hf_cfg = GPTNeoXConfig(
        vocab_size=cfg.vocab_size, hidden_size=C, num_hidden_layers=cfg.n_layer,
        num_attention_heads=nh, intermediate_size=4 * C, hidden_act="gelu",
        rotary_pct=1.0, rotary_emb_base=10000, max_position_embeddings=cfg.block_size,
        layer_norm_eps=1e-5, use_parallel_residual=False, tie_word_embeddings=False,
        attention_bias=False, attention_dropout=0.0, hidden_dropout=0.0, use_cache=True,
        bos_token_id=0, eos_token_id=0)
    hf = GPTNeoXForCausalLM(hf_cfg).eval()
    sd = model.state_dict()
    with torch.no_grad():
        for p in hf.parameters():  # NeoX's biases (ours has none) and anything left: zero
            p.zero_()
        net = hf.gpt_neox
        net.embed_in.weight.copy_(sd["wte.weight"])
        hf.get_output_embeddings().weight.copy_(sd["lm_head.weight"])  # embed_out or lm_head
        net.final_layer_norm.weight.copy_(sd["ln_f.weight"])
        net.final_layer_norm.bias.copy_(sd["ln_f.bias"])
        for i, layer in enumerate(net.layers):
            pre = f"h.{i}."
            layer.input_layernorm.weight.copy_(sd[pre + "ln_1.weight"])
            layer.input_layernorm.bias.copy_(sd[pre + "ln_1.bias"])
            layer.post_attention_layernorm.weight.copy_(sd[pre + "ln_2.weight"])
            layer.post_attention_layernorm.bias.copy_(sd[pre + "ln_2.bias"])
            w = sd[pre + "attn.c_attn.weight"]  # (3C, C): q rows, k rows, v rows
            per_head = w.view(3, nh, hs, C).transpose(0, 1).reshape(3 * C, C)  # (nh, q|k|v)
            layer.attention.query_key_value.weight.copy_(per_head)
            layer.attention.dense.weight.copy_(sd[pre + "attn.c_proj.weight"])
            layer.mlp.dense_h_to_4h.weight.copy_(sd[pre + "mlp.c_fc.weight"])
            layer.mlp.dense_4h_to_h.weight.copy_(sd[pre + "mlp.c_proj.weight"])
    return hf


class _HFCache:
    """An HF DynamicCache with the KVCache interface run_env's cached context uses."""

    def __init__(self, bytes_per_token: int):
        from transformers import DynamicCache
        self.kv, self.length, self._bpt = DynamicCache(), 0, bytes_per_token

    def truncate(self, length: int) -> None:
        if length < self.length:
            self.kv.crop(length)
            self.length = length

    def nbytes_used(self) -> int:
        return self._bpt * self.length


class _HFModel:
    """The HF model behind the calls run_env makes of a GPT: new_cache(1), parameters(),
    config.block_size, and model(idx, cache=..., last_only=True) -> (1, 1, vocab) logits."""

    def __init__(self, hf, config):
        self.hf, self.config = hf, config
        self._bpt = 2 * config.n_layer * config.n_embd * 4
        # transformers 5.x renames past_key_values to cache (the old name warns, then goes)
        params = inspect.signature(hf.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def parameters(self):
        return self.hf.parameters()

    def new_cache(self, batch_size: int = 1) -> _HFCache:
        return _HFCache(self._bpt)

    def __call__(self, idx: torch.Tensor, cache: _HFCache, last_only: bool = True):
        out = self.hf(input_ids=idx, use_cache=True, logits_to_keep=1,
                      **{self._cache_arg: cache.kv})
        cache.length += idx.shape[1]
        return out.logits[:, -1:]


def hf_episodes(hf, config, tasks, make_env) -> tuple[float, list]:
    """Every task through run_env on the HF model, one episode at a time: (episodes/s, results
    in task order)."""
    model = _HFModel(hf, config)
    t0 = time.perf_counter()
    results = [run_env(model, make_env(t)) for t in tasks]
    return len(tasks) / (time.perf_counter() - t0), results
