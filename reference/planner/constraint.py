"""Constrained decoding for nano-planner: the step schema as a byte-level automaton, one
matcher per episode, and the per-row token mask over the model's 256-byte vocabulary.

    from reference.planner.constraint import StepConstraint
    sc = StepConstraint()                  # compile once (about 0.1 s), share between episodes
    m = sc.matcher()                       # one per planner step of one episode
    logits[~m.allowed_mask()] = -inf; b = int(logits.argmax()); m.advance(b); m.is_done()
    masks = sc.batch_mask(torch.tensor([m.state for m in row_matchers]))   # (B, 256) at once

The schema (reference/planner/schema.py) is compiled by **outlines-core** (0.2.14): its
`build_regex_from_schema` turns the JSON Schema into a regex, and its `Index` compiles that
regex against a vocabulary of the 256 single bytes (every byte a token, non-UTF-8 bytes
included; the end-of-sequence id 256 is virtual and never sampled). The Index is a DFA over
tokens; its whole transition table is read once into a dense (states, 256) table, so that
- one row's mask is a row of a precomputed BoolTensor (no work per token beyond an index),
- a batch's masks are one gather, `allowed[states]`, however many rows,
- `advance` is a list lookup,
and the automaton is checked exhaustively when it is built: every reachable state that is not
final has at least one allowed byte, and a final state has none (the step is complete exactly
when the JSON object is), so a decoder can never be stuck and never has to choose to stop.

Measured with `python -m reference.planner.bench_constraint --walks 60` (2-core CPU shared
with a training run, one thread, medians; two runs, both shown where they differ). Per token:
the mask applied to a (1, 256) logits row and the chosen byte advanced; batch 64: the masks of
64 rows built and applied to a (64, 256) logits tensor.

| candidate | 256 bytes | compile | per token | mask alone | batch 64 | install |
|---|---|---|---|---|---|---|
| outlines-core Index as a table (chosen) | yes | 90-150 ms (1) | 4.7 us | 0.9 us | 18 us | 5 MB |
| outlines-core `get_allowed_tokens` per token | yes | 4-10 ms | 22 us | - | 340 us | same |
| xgrammar GrammarMatcher (3) | yes (2) | 7-15 ms | 9.6-10.5 us | 2.0 us | 88-111 us | 1.1 GB (4) |

outlines-core 0.2.14, its Index read into a dense table; xgrammar 0.2.9. The install column:
outlines-core has no dependencies; xgrammar pulls torch, transformers and triton.
(1) the Index itself takes 4-10 ms; the rest is reading it into the table and the exhaustive
check below, once per process. (2) with `VocabType.RAW`, the 256 bytes as tokens and a virtual
stop id 256; it accepts a UTF-8 character split over two byte tokens and refuses a stray 0xFF
inside a string. On the same 60 random walks the two libraries' allowed sets agree at every
position (the bench checks it): both compile exactly the schema's language. (3) a
GrammarMatcher per row; batch 64 with a BatchGrammarMatcher. (4) with torch, transformers and
triton.

outlines-core is chosen: half xgrammar's cost per token on one row, five times less for a
batch (a DFA can be tabulated, so a batch's masks are one gather instead of a call per row),
and it installs without pulling a GPU compiler stack into a CPU suite. xgrammar's strength, a
pushdown automaton for recursive grammars with a cached token mask, buys nothing for a flat
bounded schema. Either is far below the model's own cost per token (milliseconds), so the
choice matters for the dependency more than for the time. One outlines-core finding shaped the
schema: a string given both a `pattern` and min/maxLength is compiled from the lengths alone
(the pattern is dropped), so the step schema bounds its strings by the pattern only.

Limits: the schema must compile to a DFA (no recursion); masks are for a 256-byte vocabulary.
"""
from __future__ import annotations

import json

import torch

from reference.planner.schema import MAX_STEP_BYTES, STEP_SCHEMA

VOCAB = 256
EOS_ID = VOCAB  # virtual end-of-sequence id outlines-core needs; never a model token


class ConstraintViolation(ValueError):
    """A byte the schema does not allow at this point was fed to `advance` (a driver bug)."""


def schema_regex(schema: dict = STEP_SCHEMA) -> str:
    from outlines_core.json_schema import build_regex_from_schema
    return build_regex_from_schema(json.dumps(schema), whitespace_pattern="")


class StepConstraint:
    """The compiled automaton of one schema: dense tables shared by every matcher."""

    def __init__(self, schema: dict = STEP_SCHEMA, max_bytes: int = MAX_STEP_BYTES):
        from outlines_core import Index, Vocabulary  # imported here: only decoding needs it
        vocab = Vocabulary(EOS_ID, {bytes([b]): [b] for b in range(VOCAB)})
        index = Index(schema_regex(schema), vocab)
        trans = index.get_transitions()  # {state: {token: next_state}}
        finals = set(index.get_final_states())
        order = sorted(set(trans) | finals | {s for t in trans.values() for s in t.values()})
        dense = {s: i for i, s in enumerate(order)}
        self.n_states = len(order)
        self.initial = dense[index.get_initial_state()]
        self.next: list[list[int]] = [[-1] * VOCAB for _ in order]  # -1: byte not allowed
        for s, row in trans.items():
            for tok, t in row.items():
                if tok < VOCAB:
                    self.next[dense[s]][tok] = dense[t]
        self.final = [s in finals for s in order]
        self.allowed = torch.tensor([[t >= 0 for t in row] for row in self.next])  # (S, 256)
        # The same table as an additive logit bias (0 allowed, -inf not), per device: a row's
        # constrained greedy pick is then one add and the argmax the unconstrained path does.
        self._bias: dict[str, torch.Tensor] = {}
        self.max_bytes = max_bytes
        self._check()

    def _check(self) -> None:
        """Every reachable state: final with no way on, or not final with a way on; and every
        path to a final state is at most max_bytes long (the schema is finite)."""
        depth = {self.initial: 0}
        frontier = [self.initial]
        while frontier:
            nxt = []
            for s in frontier:
                ways = [t for t in self.next[s] if t >= 0]
                if self.final[s] == bool(ways):
                    raise AssertionError(f"state {s}: final={self.final[s]} with {len(ways)} "
                                         "allowed bytes (a stuck or ambiguous decoder)")
                for t in ways:
                    if t not in depth:
                        depth[t] = depth[s] + 1
                        nxt.append(t)
            frontier = nxt
        longest = self._longest_path()
        if longest > self.max_bytes:
            raise AssertionError(f"the schema allows {longest} bytes > {self.max_bytes}")
        self.longest = longest

    def _longest_path(self) -> int:
        # The automaton of a bounded schema is acyclic; a cycle would be an unbounded string.
        memo: dict[int, int] = {}
        on_path: set[int] = set()

        def walk(s: int) -> int:
            if s in memo:
                return memo[s]
            if s in on_path:
                raise AssertionError("the schema's automaton has a cycle (unbounded output)")
            on_path.add(s)
            best = max((1 + walk(t) for t in set(self.next[s]) if t >= 0), default=0)
            on_path.discard(s)
            memo[s] = best
            return best
        return walk(self.initial)  # recursion depth <= the longest step (263 here)

    def bias(self, device) -> torch.Tensor:
        """(S, 256) float: 0 where a byte is allowed, -inf where not, on `device` (cached)."""
        key = str(device)
        if key not in self._bias:
            b = torch.zeros(self.allowed.shape).masked_fill(~self.allowed, float("-inf"))
            self._bias[key] = b.to(device)
        return self._bias[key]

    def matcher(self) -> "StepMatcher":
        return StepMatcher(self)

    def batch_mask(self, states: torch.Tensor) -> torch.Tensor:
        """states (B,) long -> allowed bytes (B, 256) bool, one gather for the whole batch."""
        return self.allowed[states]


class StepMatcher:
    """One planner step being decoded: where it is in the automaton, and what it wrote."""

    __slots__ = ("c", "state", "bytes")

    def __init__(self, constraint: StepConstraint):
        self.c = constraint
        self.state = constraint.initial
        self.bytes = bytearray()

    def allowed_mask(self) -> torch.Tensor:
        """BoolTensor[256]: True where the byte keeps the step inside the schema (a view of
        the shared table: read it, fill a batch row from it, never write to it)."""
        return self.c.allowed[self.state]

    def fill(self, mask: torch.Tensor, row: int) -> None:
        """Write this step's allowed bytes into row `row` of a (B, 256) bool mask."""
        mask[row] = self.c.allowed[self.state]

    def advance(self, byte: int) -> None:
        t = self.c.next[self.state][byte] if 0 <= byte < VOCAB else -1
        if t < 0:
            raise ConstraintViolation(f"byte {byte} not allowed after {bytes(self.bytes)[-40:]!r}")
        self.state = t
        self.bytes.append(byte)

    def is_done(self) -> bool:
        return self.c.final[self.state]

    def text(self) -> str:
        return self.bytes.decode("utf-8", "replace")


def constrained_pick(logits: torch.Tensor, matcher: StepMatcher) -> int:
    """Greedy choice among the allowed bytes of one row (logits (256,))."""
    return int(logits.masked_fill(~matcher.allowed_mask(), float("-inf")).argmax())
