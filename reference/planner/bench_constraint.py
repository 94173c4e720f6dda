"""Measure the schema-to-mask candidates for nano-planner on a 256-byte vocabulary.

    python -m reference.planner.bench_constraint            # both libraries, about 20 s
    python -m reference.planner.bench_constraint --walks 50 --batch 64 --json out.json

For each candidate: does it compile the step schema against 256 single-byte tokens (every
byte a token, non-UTF-8 bytes included; a virtual end id 256), the compile time, the cost per
decoded token of one row (mask applied to a (1, 256) logits row, then the chosen byte
advanced; `mask_only_us`: the mask alone), and the cost of masking a (batch, 256) logits
tensor for a batch of rows at once (mask built and applied). Random walks choose uniformly
among the allowed bytes, so strings grow to their bounds; every walk's output is validated
with jsonschema, and the two libraries' allowed sets are compared byte for byte along the
same walks (they must agree: both claim to compile the same schema).

Candidates: outlines-core (its Index read once into a dense table: the path
reference/planner/constraint.py uses; and its own `get_allowed_tokens` per token) and xgrammar
(GrammarMatcher, bitmask, apply_token_bitmask_inplace; BatchGrammarMatcher for the batch).
A library that is not installed is reported as such: only outlines-core is a dependency; to
measure xgrammar too, `.venv/bin/pip install xgrammar==0.2.9` first (it pulls transformers
and triton, about 1.1 GB; the session that made this comparison removed it afterwards).

Limits: wall-clock timings on whatever else the machine is running (medians of many calls);
one thread (torch.set_num_threads(1)).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from reference.planner.constraint import EOS_ID, VOCAB, StepConstraint, schema_regex
from reference.planner.schema import STEP_SCHEMA


def _us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 2)


def _walks(sc: StepConstraint, n: int, seed: int) -> list[bytes]:
    """n random schema-valid steps (uniform over allowed bytes at every point)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        m = sc.matcher()
        while not m.is_done():
            m.advance(rng.choice([b for b in range(VOCAB) if sc.next[m.state][b] >= 0]))
        out.append(bytes(m.bytes))
    return out


def bench_outlines_table(walks, batch: int) -> dict:
    t0 = time.perf_counter()
    sc = StepConstraint()
    compile_s = time.perf_counter() - t0
    per_tok, mask_only = [], []
    logits = torch.zeros(1, VOCAB)
    for w in walks:
        m = sc.matcher()
        for b in w:
            t = time.perf_counter()
            m.allowed_mask()
            mask_only.append(time.perf_counter() - t)
            t = time.perf_counter()
            masked = logits.masked_fill(~m.allowed_mask(), float("-inf"))
            m.advance(b)
            per_tok.append(time.perf_counter() - t)
        assert m.is_done() and masked is not None
    states = torch.randint(0, sc.n_states, (batch,))
    lb = torch.zeros(batch, VOCAB)
    bt = []
    for _ in range(200):
        t = time.perf_counter()
        lb.masked_fill(~sc.batch_mask(states), float("-inf"))
        bt.append(time.perf_counter() - t)
    return {"library": "outlines-core (dense table)", "compiles_256_byte_vocab": True,
            "compile_ms": round(compile_s * 1e3, 1), "states": sc.n_states,
            "per_token_us": _us(per_tok), "mask_only_us": _us(mask_only),
            f"batch{batch}_mask_us": _us(bt)}


def bench_outlines_index(walks, batch: int) -> dict:
    from outlines_core import Index, Vocabulary
    t0 = time.perf_counter()
    index = Index(schema_regex(), Vocabulary(EOS_ID, {bytes([b]): [b] for b in range(VOCAB)}))
    compile_s = time.perf_counter() - t0
    per_tok = []
    logits = torch.zeros(1, VOCAB)
    for w in walks:
        s = index.get_initial_state()
        for b in w:
            t = time.perf_counter()
            mask = torch.zeros(VOCAB + 1, dtype=torch.bool)
            mask[index.get_allowed_tokens(s)] = True
            logits.masked_fill(~mask[:VOCAB], float("-inf"))
            s = index.get_next_state(s, b)
            per_tok.append(time.perf_counter() - t)
    s0 = index.get_initial_state()
    bt = []
    lb = torch.zeros(batch, VOCAB)
    for _ in range(50):
        t = time.perf_counter()
        mask = torch.zeros(batch, VOCAB + 1, dtype=torch.bool)
        for r in range(batch):
            mask[r, index.get_allowed_tokens(s0)] = True
        lb.masked_fill(~mask[:, :VOCAB], float("-inf"))
        bt.append(time.perf_counter() - t)
    return {"library": "outlines-core (get_allowed_tokens)", "compiles_256_byte_vocab": True,
            "compile_ms": round(compile_s * 1e3, 1), "per_token_us": _us(per_tok),
            f"batch{batch}_mask_us": _us(bt)}


def bench_xgrammar(walks, batch: int, sc: StepConstraint) -> dict:
    import xgrammar as xgr
    vocab = [bytes([b]) for b in range(VOCAB)] + [b"<eos>"]
    info = xgr.TokenizerInfo(vocab, vocab_type=xgr.VocabType.RAW, vocab_size=VOCAB + 1,
                             stop_token_ids=[EOS_ID])
    t0 = time.perf_counter()
    compiler = xgr.GrammarCompiler(info, max_threads=1)
    grammar = compiler.compile_json_schema(json.dumps(STEP_SCHEMA), any_whitespace=False,
                                           separators=(",", ":"), strict_mode=True)
    compile_s = time.perf_counter() - t0
    bitmask = xgr.allocate_token_bitmask(1, VOCAB + 1)
    shifts = torch.arange(32, dtype=torch.int32)
    per_tok, mask_only, disagree = [], [], 0
    logits = torch.zeros(1, VOCAB + 1)
    for w in walks:
        m = xgr.GrammarMatcher(grammar)
        s = sc.matcher()
        for b in w:
            t = time.perf_counter()
            m.fill_next_token_bitmask(bitmask, 0)
            mask_only.append(time.perf_counter() - t)
            xgr.apply_token_bitmask_inplace(logits, bitmask)
            ok = m.accept_token(b)
            per_tok.append(time.perf_counter() - t)
            allowed = ((bitmask[0].unsqueeze(1) >> shifts) & 1).flatten()[:VOCAB].bool()
            disagree += int(not torch.equal(allowed, s.allowed_mask()))
            assert ok
            s.advance(b)
    mats = [xgr.GrammarMatcher(grammar) for _ in range(batch)]
    bm = xgr.allocate_token_bitmask(batch, VOCAB + 1)
    bmatcher = xgr.BatchGrammarMatcher(max_threads=1)
    lb = torch.zeros(batch, VOCAB + 1)
    bt, bt_loop = [], []
    for _ in range(200):
        t = time.perf_counter()
        bmatcher.batch_fill_next_token_bitmask(mats, bm)
        xgr.apply_token_bitmask_inplace(lb, bm)
        bt.append(time.perf_counter() - t)
        t = time.perf_counter()
        for r, mm in enumerate(mats):
            mm.fill_next_token_bitmask(bm, r)
        xgr.apply_token_bitmask_inplace(lb, bm)
        bt_loop.append(time.perf_counter() - t)
    # non-UTF-8 bytes: a lone continuation byte or 0xFF must be refused inside a string
    raw = compiler.compile_json_schema(json.dumps({"type": "string"}), strict_mode=True)
    m = xgr.GrammarMatcher(raw)
    utf8_split = all(m.accept_token(b) for b in '"é"'.encode())
    m = xgr.GrammarMatcher(raw)
    m.accept_token(ord('"'))
    refuses_ff = not m.accept_token(0xFF)
    return {"library": "xgrammar", "compiles_256_byte_vocab": True,
            "compile_ms": round(compile_s * 1e3, 1), "per_token_us": _us(per_tok),
            "mask_only_us": _us(mask_only),
            f"batch{batch}_mask_us": _us(bt), f"batch{batch}_mask_loop_us": _us(bt_loop),
            "utf8_char_as_two_byte_tokens": utf8_split, "refuses_0xff_in_string": refuses_ff,
            "positions_disagreeing_with_outlines": disagree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--walks", type=int, default=30, help="random schema-valid steps to decode")
    ap.add_argument("--batch", type=int, default=64, help="rows in the batched mask")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random walks")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import jsonschema
    sc = StepConstraint()
    walks = _walks(sc, args.walks, args.seed)
    for w in walks:
        jsonschema.validate(json.loads(w), STEP_SCHEMA)
    print(f"{len(walks)} random steps, {sum(map(len, walks))} bytes, all valid against the schema")
    rows = [bench_outlines_table(walks, args.batch), bench_outlines_index(walks, args.batch)]
    try:
        rows.append(bench_xgrammar(walks, args.batch, sc))
    except ImportError as err:
        rows.append({"library": "xgrammar", "error": f"not installed: {err}"})
    for r in rows:
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
