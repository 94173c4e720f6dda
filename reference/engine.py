"""The batched generation engine: many episodes decoded together, KV caches kept across steps.

    from reference.engine import Engine
    with get_workload("nano-react").episodes(max_steps=8) as make_env:
        engine = Engine(model, make_env, max_batch=32)
        results = engine.run_all(tasks)                          # Offline-style
    engine.serve(pull, on_done)                                  # Server-style, on a thread

Each episode owns one row of a shared KV cache. A decode step feeds one token to every active
row at once, each row at its own position (continuous batching): when an episode's step is
actionable, its tool runs and the observation is prefilled into its row (new tokens only);
when an episode ends its row is freed and the next waiting episode is admitted at once. The
prompts and observations waiting at the start of a decode step are prefilled together, in one
forward (only the real tokens go through the projections).

Attention, on a CPU, runs the ragged kernel (reference/attention.py): each row reads only its
own keys, in any row order, so the engine never moves rows (`self.ragged`). Measured against
SDPA groups (one thread, batch 64, drafts on, the whole frozen set and generalisation split of
each benchmark): 3,700 of 3,700 transcripts identical; nano-react 1.71x / 1.65x the episodes/s,
nano-planner 1.59x / 1.59x. Where the kernel is not used (a GPU, no C compiler), attention
runs per group of rows, each padded to its own longest and widest row (reference/model.py
`_Batch`), and active episodes are kept in rows 0..n-1, grouped by context length
(`_arrange`: an episode moves only when it changes group), so that each group's attention
reads a view of the cache up to its own longest row. Measured against one attention call over
the whole batch: 3,700 of 3,700 transcripts identical, nano-react 1.30x the episodes/s.
Under greedy decoding the engine gives the same answers as `run_episode` (the one-episode loop)
and as the naive baseline, up to float rounding ties; the harness benchmark reports agreement.

Drafts (speculative decoding without a second model): a row whose next token is known also
feeds up to `draft` tokens guessed to follow it, in the same forward, and keeps the guesses the
model's own argmax agrees with, in order, plus the model's next token after them: one forward
decodes several tokens per row, and the answers stay the greedy ones (a wrong guess costs a
padded position, never a different token). Guesses come from what the agent wrote after the
same GRAM tokens in earlier steps of this engine's episodes (its table), else from what
followed them earlier in the row's own context (copying a word from the question or an
observation). Rows under a constraint draft only bytes their automaton allows, up to where it
accepts the step, and a guess is checked against the constrained choice (the argmax among the
allowed bytes). The engines of one WorkerPool share one table. Measured (one thread, batch
64, draft=DRAFT with ragged batches against draft=0 without them, the whole frozen set and
generalisation split of each benchmark): 3,700 of 3,700 transcripts identical; nano-react
1.95x / 1.83x the episodes/s, nano-planner 1.79x / 1.78x, nano-codegen 1.43x / 1.56x; about 4
tokens per row and forward on nano-react and nano-planner.
`Engine`'s own default is draft=0 (the plain loop); a system file asks for drafts
(`tuning.draft`, systems/cpu.yaml: DRAFT), and the checker's replay runs without them.

nano-codegen's verifier runs off the engine's thread (env.submit_step): the row whose program
is being verified is parked (it sits decode steps out; under SDPA groups it rides along as a
filler whose output is thrown away, keeping rows contiguous) and resumes when its verdict
arrives, so a slow program stalls its own episode, not the batch.

An environment with a `constraint` (nano-planner's step schema as a byte automaton, see
reference.episode) gets it per row: before a decode step's argmax, the rows under a constraint
add their automaton state's row of the bias table (0 allowed, -inf not; one gather and one add
for all of them), then advance their matcher by the chosen byte; such a row's step ends exactly
when its automaton accepts. Other rows in the same batch are untouched.

Limits: one engine per thread (it owns its cache); greedy only.
Per-step generation_ms is wall time of the step inside the batch, shared with its neighbours.
"""
from __future__ import annotations

import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from reference import model as gpt
from reference.model import GPT, decode, encode
from reference.episode import NEWLINE, EpisodeResult, finish_step

DRAFT = 8                # tokens drafted per row and decode step, where drafts are asked for
GRAM = 4                 # a draft follows the last GRAM tokens
TABLE_LIMIT = 200_000    # drafts remembered per engine before the table starts over
# Rows are regrouped by length when the keys attention would no longer read in this many decode
# steps outnumber the keys the move copies (a key read by attention and a key copied cost about
# the same, measured).
REGROUP_STEPS = 4


def _keys_read(slots: list, lengths: list[int]) -> int:
    """Keys attention reads for rows in this order: each group of GROUP_ROWS consecutive
    rows (reference/model.py) reads up to its longest."""
    k = gpt.GROUP_ROWS
    return sum(len(g) * max(lengths[s.row] for s in g)
               for g in (slots[i:i + k] for i in range(0, len(slots), k)))


@dataclass
class _Slot:
    key: Any
    env: Any                                 # ReactEnv, CodegenEnv: the driver interface
    row: int
    logits: torch.Tensor | None              # next-token logits (None: prefill queued)
    t_start: float
    out: list[int] = field(default_factory=list)
    ctx0: int = 0
    kv0: int = 0
    t_step: float = 0.0
    pending: Any = None                      # (Future, gen_ms): the environment is working
    matcher: Any = None                      # this step's automaton state (constrained rows)
    mask_s: float = 0.0                      # this step's constrained-decoding time
    hist: list[int] = field(default_factory=list)    # the row's cached tokens (with drafts)
    index: dict = field(default_factory=dict)        # GRAM tokens -> the position after them
    indexed: int = 0                                 # hist positions already in `index`
    draft_states: list[int] = field(default_factory=list)  # constrained rows: see _within


class Engine:
    """Continuous-batching greedy decoder for agent episodes.

    `make_env(item)` turns a work item into an environment (a workload's `episodes` gives one,
    reference/workloads.py)."""

    def __init__(self, model: GPT, make_env: Callable[[Any], Any], max_batch: int = 32,
                 draft: int = 0, table: dict | None = None):
        self.model = model.eval()
        self.max_batch = max_batch
        self.draft = draft               # tokens proposed per row and decode step (0: none)
        # GRAM tokens -> what the agent wrote next. Engines of one process may share one
        # (WorkerPool does): entries are only added or the table cleared, each one dict
        # operation, and a value is never changed after it is stored.
        self.table: dict[tuple, list[int]] = {} if table is None else table
        self.make_env = make_env
        self.block = model.config.block_size
        self.device = next(model.parameters()).device
        self.cache = model.new_cache(max_batch)
        # the ragged attention kernel reads any rows in any order: no arranging, no fillers
        self.ragged = model.ragged(self.cache)
        self.free = list(range(max_batch - 1, -1, -1))
        self.active: list[_Slot] = []
        # Where the time goes (seconds, summed): forward passes that decode one token per row,
        # prefills (prompts and observations), the environment (parsing, tools, verifier),
        # and decode steps taken; the rest of wall time is Python bookkeeping.
        self.stats = {"decode_forward_s": 0.0, "prefill_s": 0.0, "env_s": 0.0,
                      "mask_s": 0.0, "decode_steps": 0, "rows_decoded": 0, "prefills": 0,
                      "prefill_forwards": 0, "tokens_decoded": 0, "drafted": 0, "accepted": 0,
                      "rows_moved": 0}
        self.queued: list[tuple[_Slot, list[int]]] = []  # rows waiting for their prefill

    # -- row-level operations -------------------------------------------------------------
    @torch.no_grad()
    def _flush_prefills(self) -> None:
        """Prefill every queued prompt and observation, as few forwards as fit: rows whose
        new tokens all fit the block go together (right-padded to the longest), each row's
        step then begins. Measured: one forward per prefill was 17% of the engine's time."""
        if not self.queued:
            return
        t0 = time.perf_counter()
        queued, self.queued = self.queued, []
        longest = max(len(t) for _, t in queued)
        together = [(s, t) for s, t in queued if self.cache.lengths[s.row] + longest <= self.block]
        alone = [(s, t) for s, t in queued if self.cache.lengths[s.row] + longest > self.block]
        if len(together) == 1:
            alone, together = together + alone, []
        # longest context first: the forward's attention groups (reference/model.py
        # _partition) read keys up to their own longest row
        together.sort(key=lambda st: -(self.cache.lengths[st[0].row] + len(st[1])))
        if together:
            idx = torch.zeros(len(together), longest, dtype=torch.long, device=self.device)
            for i, (_, t) in enumerate(together):
                idx[i, :len(t)] = torch.tensor(t, dtype=torch.long)
            logits = self.model(idx, cache=self.cache, last_only=True,
                                rows=[s.row for s, _ in together],
                                n_new=[len(t) for _, t in together])[:, 0]
            for i, (slot, _) in enumerate(together):
                slot.logits = logits[i]
        for slot, t in alone:
            idx = torch.tensor([t], dtype=torch.long, device=self.device)
            slot.logits = self.model(idx, cache=self.cache, last_only=True, rows=[slot.row])[0, -1]
        self.stats["prefill_s"] += time.perf_counter() - t0
        self.stats["prefills"] += len(queued)
        self.stats["prefill_forwards"] += bool(together) + len(alone)
        for slot, t in queued:
            if self.draft:
                slot.hist.extend(t)
            self._begin_step(slot)

    def _begin_step(self, slot: _Slot) -> None:
        slot.out = []
        slot.ctx0 = self.cache.lengths[slot.row]
        slot.kv0 = self.cache.nbytes_used(slot.row)
        constraint = getattr(slot.env, "constraint", None)
        slot.matcher = constraint.matcher() if constraint is not None else None
        slot.mask_s = 0.0
        slot.t_step = time.perf_counter()

    def _admit(self, key, item) -> EpisodeResult | None:
        """Start an episode; returns its result at once if its prompt cannot fit."""
        env = self.make_env(item)
        prompt = encode(env.prompt())
        if len(prompt) >= self.block:
            env.result.stop_reason = "context_full"
            return env.result
        row = self.free.pop()
        self.cache.reset(row)
        slot = _Slot(key, env, row, None, time.perf_counter())
        self.queued.append((slot, prompt))
        self.active.append(slot)
        return None

    def _end_step(self, slot: _Slot, full: bool) -> bool:
        """Close the slot's agent step; True when its episode has ended. An environment that
        can work off this thread (env.submit_step: nano-codegen's verifier) parks the row
        instead, and `_settle` closes the step when the work is done."""
        t0 = time.perf_counter()
        gen_ms = (t0 - slot.t_step) * 1e3
        submit = getattr(slot.env, "submit_step", None)
        if not full and submit is not None:
            text, _ = slot.env.cut(slot.out)
            try:
                future = submit(text)
            except Exception as err:  # noqa: BLE001  settled as this episode's env_error
                future = futures.Future()
                future.set_exception(err)
            slot.pending = (future, gen_ms)
            self.stats["env_s"] += time.perf_counter() - t0
            return False
        n_keep, inject = finish_step(slot.env, slot.out, slot.ctx0, slot.kv0, gen_ms, full,
                                     self.block, mask_ms=slot.mask_s * 1e3)
        self.stats["env_s"] += time.perf_counter() - t0
        return self._continue(slot, n_keep, inject)

    def _settle(self, slot: _Slot) -> bool:
        """Close a parked step whose environment work is done; True when the episode ended."""
        t0 = time.perf_counter()
        future, gen_ms = slot.pending
        slot.pending = None
        n_keep, inject = finish_step(slot.env, slot.out, slot.ctx0, slot.kv0, gen_ms, False,
                                     self.block, pending=future)
        self.stats["env_s"] += time.perf_counter() - t0
        return self._continue(slot, n_keep, inject)

    def _continue(self, slot: _Slot, n_keep: int, inject: list[int] | None) -> bool:
        end = slot.ctx0 + n_keep
        self.cache.truncate(end, slot.row)
        if self.draft:
            self._learn(slot.hist, slot.ctx0, end)
            del slot.hist[end:]
            slot.indexed = min(slot.indexed, end)
        if inject is None:
            return True
        self.queued.append((slot, inject))
        return False

    # -- the decode loop ------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> list[tuple[Any, EpisodeResult]]:
        """One decode step for every active episode; returns the episodes that ended."""
        self._flush_prefills()
        if not self.ragged:
            self._arrange()
        finished: list[_Slot] = []
        decoding: list[_Slot] = []
        parked = [s for s in self.active if s.pending is not None]
        if parked and len(parked) == len(self.active):  # nothing to decode: wait for one
            futures.wait([s.pending[0] for s in parked], return_when=futures.FIRST_COMPLETED)
        for slot in self.active:
            if slot.pending is not None:
                if slot.pending[0].done() and self._settle(slot):
                    finished.append(slot)
                continue
            if self.cache.lengths[slot.row] >= self.block:
                if self._end_step(slot, full=True):
                    finished.append(slot)
            else:
                decoding.append(slot)
        if decoding:
            # Parked rows ride along as fillers so the rows stay contiguous (SDPA groups then
            # read a view, not a gather); their token and cache entry are thrown away.
            fillers = [] if self.ragged else [
                s for s in self.active if s.pending is not None
                and self.cache.lengths[s.row] < self.block - 1]
            batch = sorted(decoding + fillers, key=lambda s: s.row)
            scores = torch.stack([s.logits for s in batch])  # (B, vocab)
            constrained = [i for i, s in enumerate(batch) if s.matcher is not None
                           and s.pending is None]
            if constrained:
                t0 = time.perf_counter()
                self._constrain(scores, [batch[i] for i in constrained], constrained)
                spent = time.perf_counter() - t0
                self.stats["mask_s"] += spent
                share = spent / len(constrained)
                for i in constrained:
                    batch[i].mask_s += share
            toks = scores.argmax(dim=-1)  # (B,)
            rows = [s.row for s in batch]
            starts = [self.cache.lengths[r] for r in rows]
            kept = {s.row: self.cache.lengths[s.row] for s in fillers}
            drafts = self._drafts(batch, toks, starts, kept)
            t0 = time.perf_counter()
            if drafts is None:
                logits = self.model(toks[:, None], cache=self.cache, last_only=True,
                                    rows=rows)  # (B, 1, vocab)
                chosen = toks[:, None].tolist()
            else:
                width = 1 + max(len(d) for d in drafts)
                idx = torch.zeros(len(batch), width, dtype=torch.long, device=self.device)
                idx[:, 0] = toks
                for i, d in enumerate(drafts):
                    if d:
                        idx[i, 1:1 + len(d)] = torch.tensor(d, dtype=torch.long)
                logits = self.model(idx, cache=self.cache, rows=rows,
                                    n_new=[1 + len(d) for d in drafts])  # (B, width, vocab)
                chosen = idx.tolist()
                verdict = self._verdicts(logits, idx, batch, drafts)
            self.stats["decode_forward_s"] += time.perf_counter() - t0
            self.stats["decode_steps"] += 1
            self.stats["rows_decoded"] += len(decoding)
            for row, n in kept.items():
                self.cache.lengths[row] = n
            for i, slot in enumerate(batch):
                if slot.row in kept:
                    continue
                n_ok = 0  # drafted tokens the model agrees with, in order
                if drafts is not None:
                    d = drafts[i]
                    while n_ok < len(d) and verdict[i][n_ok]:
                        n_ok += 1
                    self.stats["drafted"] += len(d)
                    self.stats["accepted"] += n_ok
                slot.logits = logits[i, n_ok]
                for j, tok in enumerate(chosen[i][:1 + n_ok]):
                    slot.out.append(tok)
                    if self.draft:
                        slot.hist.append(tok)
                    self.stats["tokens_decoded"] += 1
                    if slot.matcher is not None:
                        t1 = time.perf_counter()
                        slot.matcher.advance(tok)
                        accepted = slot.matcher.is_done()
                        spent = time.perf_counter() - t1
                        slot.mask_s += spent
                        self.stats["mask_s"] += spent
                    else:
                        accepted = (tok == getattr(slot.env, "step_end", NEWLINE)
                                    and slot.env.step_complete(decode(slot.out)))
                    done_step = accepted or len(slot.out) >= slot.env.max_step_tokens
                    if done_step:
                        self.cache.lengths[slot.row] = starts[i] + j + 1
                        if self._end_step(slot, full=False):
                            finished.append(slot)
                        break
                else:
                    self.cache.lengths[slot.row] = starts[i] + 1 + n_ok
        out = []
        for slot in finished:
            self.active.remove(slot)
            self.free.append(slot.row)
            slot.env.result.latency_ms = (time.perf_counter() - slot.t_start) * 1e3
            out.append((slot.key, slot.env.result))
        if finished:
            self.free.sort(reverse=True)  # pop() hands out the lowest free row
        return out

    # -- drafts: tokens proposed for the model to check (speculative decoding) -------------
    def _drafts(self, batch: list[_Slot], toks: torch.Tensor, starts: list[int],
                kept: dict) -> list[list[int]] | None:
        """Each row's draft of the tokens after this step's token, or None when no row has
        one. Parked fillers and rows near the block draft nothing;
        the forward is right-padded to the longest draft, so every row must fit it."""
        if not self.draft:
            return None
        room = self.block - max(starts) - 1  # the padded width must fit every row
        if room < 1:
            return None
        limit = min(self.draft, room)
        drafts = []
        for slot, tok in zip(batch, toks.tolist()):
            if slot.row in kept:
                drafts.append([])
                continue
            d = self._propose(slot, tok)[:min(limit, slot.env.max_step_tokens - len(slot.out) - 1)]
            if slot.matcher is not None:
                d = self._within(slot, tok, d)
            else:
                end = getattr(slot.env, "step_end", NEWLINE)
                if end in d:  # a step's text ends at its step_end byte at the latest
                    d = d[:d.index(end) + 1]
            drafts.append(d)
        return drafts if any(drafts) else None

    @staticmethod
    def _within(slot: _Slot, tok: int, d: list[int]) -> list[int]:
        """A constrained row's draft, cut where its automaton would refuse a byte or accept
        the step; slot.draft_states[j] is the state in which draft byte j is chosen."""
        c = slot.env.constraint
        state = c.next[slot.matcher.state][tok]
        states, kept = [], []
        for b in d:
            if c.final[state]:  # the step ends before this byte
                break
            after = c.next[state][b]
            if after < 0:  # the automaton refuses it
                break
            states.append(state)
            kept.append(b)
            state = after
        slot.draft_states = states
        return kept

    def _verdicts(self, logits: torch.Tensor, idx: torch.Tensor, batch: list[_Slot],
                  drafts: list[list[int]]) -> list[list[bool]]:
        """Whether each drafted token is the model's greedy choice after the ones before it:
        (B, width - 1), read left to right until the first False. A constrained row's choice
        is among the bytes its automaton allows in the state after the preceding tokens."""
        scores = logits[:, :-1]  # a view: copied before constrained rows change it
        groups: dict[int, tuple[Any, list[int], list[list[int]]]] = {}
        for i, (slot, d) in enumerate(zip(batch, drafts)):
            if d and slot.matcher is not None:
                c = slot.env.constraint
                g = groups.setdefault(id(c), (c, [], []))
                states = slot.draft_states
                g[1].append(i)
                g[2].append(states + [states[-1]] * (scores.shape[1] - len(states)))
        if groups:
            scores = scores.clone()
        for c, rows, states in groups.values():
            r = torch.tensor(rows, device=scores.device)
            scores[r] = (scores[r]
                         + c.bias(scores.device)[torch.tensor(states, device=scores.device)])
        return (scores.argmax(dim=-1) == idx[:, 1:]).tolist()

    def _propose(self, slot: _Slot, tok: int) -> list[int]:
        """What may follow the row's context and `tok`: what the agent wrote after the same
        GRAM tokens in an earlier step of any episode (this engine's table), else what followed
        them earlier in this row's own context (prompt, observations, its own steps)."""
        h = slot.hist
        if len(h) < GRAM - 1:
            return []
        for q in range(max(slot.indexed, GRAM), len(h)):  # positions whose next token is known
            slot.index[tuple(h[q - GRAM:q])] = q
        slot.indexed = max(slot.indexed, len(h))
        key = (*h[len(h) - GRAM + 1:], tok)
        d = self.table.get(key)
        if d is not None:
            return d
        q = slot.index.get(key)
        return h[q:q + self.draft] if q is not None else []

    def _learn(self, hist: list[int], ctx0: int, end: int) -> None:
        """Remember what the agent wrote in the step hist[ctx0:end], for later drafts."""
        if len(self.table) > TABLE_LIMIT:  # a bound on memory; common steps come back fast
            self.table.clear()
        for q in range(max(ctx0, GRAM), end):
            self.table[tuple(hist[q - GRAM:q])] = hist[q:min(q + self.draft, end)]

    def _constrain(self, scores: torch.Tensor, slots: list[_Slot], idx: list[int]) -> None:
        """Add each constrained row's allowed-byte bias to its scores, in place (rows of one
        automaton in one gather; environments of different automata each get theirs)."""
        groups: dict[int, tuple[Any, list[int], list[int]]] = {}
        for i, slot in zip(idx, slots):
            c = slot.env.constraint
            g = groups.setdefault(id(c), (c, [], []))
            g[1].append(i)
            g[2].append(slot.matcher.state)
        for c, rows, states in groups.values():
            bias = c.bias(scores.device)
            if len(rows) == scores.shape[0]:
                scores += bias[torch.tensor(states, device=scores.device)]
            else:
                r = torch.tensor(rows, device=scores.device)
                scores[r] += bias[torch.tensor(states, device=scores.device)]

    def _arrange(self) -> None:
        """Keep the active episodes in rows 0..n-1, so that attention reads views of the cache,
        not gathered copies (measured: the gather was once the engine's largest cost), and,
        when it pays, grouped by length: attention runs per group of GROUP_ROWS consecutive
        rows (reference/model.py _Batch), each reading keys up to its own longest row. Only
        the episodes that change group move; order within a group does not matter."""
        n = len(self.active)
        if not n:
            return
        lengths = self.cache.lengths
        current = sorted(self.active, key=lambda s: s.row)
        where: dict[int, int] = {}  # row -> its new row
        if current[-1].row >= n:  # holes below n: the rows beyond n fill them (fewest moves)
            holes = sorted(set(range(n)) - {s.row for s in current})
            where = dict(zip((s.row for s in current if s.row >= n), holes))
            current = sorted(current, key=lambda s: where.get(s.row, s.row))
        best = sorted(current, key=lambda s: -lengths[s.row])  # stable: fewer moves
        saved = _keys_read(current, lengths) - _keys_read(best, lengths)
        if saved > 0:  # regroup: the episodes that are not in their group move into it
            regroup = {}
            for lo in range(0, n, gpt.GROUP_ROWS):
                hi = min(lo + gpt.GROUP_ROWS, n)
                group = best[lo:hi]
                taken = {s.row for s in group if lo <= s.row < hi}
                spare = iter(r for r in range(lo, hi) if r not in taken)
                regroup.update((s.row, next(spare)) for s in group if not lo <= s.row < hi)
            if saved * REGROUP_STEPS > sum(lengths[r] for r in regroup):
                where = regroup
        if where:
            self.cache.move_rows(list(where), list(where.values()))
            self.stats["rows_moved"] += len(where)
            for slot in current:
                slot.row = where.get(slot.row, slot.row)
        self.free = list(range(self.max_batch - 1, n - 1, -1))  # pop(): lowest first

    def serve(self, pull: Callable[[int, bool], list | None],
              on_done: Callable[[Any, EpisodeResult], None]) -> None:
        """Run until `pull` returns None with nothing in flight.

        pull(n_free, idle) returns up to n_free new (key, item) pairs (items go to make_env); it
        may block when idle is True (nothing is decoding), and returns None once no more work
        will come."""
        closed = False
        while True:
            if not closed and self.free:
                new = pull(len(self.free), not self.active)
                if new is None:
                    closed = True
                else:
                    for key, item in new:
                        early = self._admit(key, item)
                        if early is not None:
                            on_done(key, early)
            if not self.active:
                if closed:
                    return
                continue
            for key, result in self.step():
                on_done(key, result)

    def warm_up(self, items: list, steps: int) -> None:
        """Admit up to a batch of items, run `steps` decode steps and drop them. A thread's
        first decode steps pay one-off costs (its allocator arena growing to the batch's
        tensors, first calls), which a timed run should not. Call it on a throwaway engine
        (its own cache and draft table): what a warm-up learns must never reach the drafts of
        the engines whose answers count."""
        for i, item in enumerate(items[: len(self.free)]):
            self._admit(i, item)
        for _ in range(steps):
            if not self.active:
                break
            self.step()

    def run_all(self, questions: list) -> list[EpisodeResult]:
        """Offline convenience: every item (question) at once; results in input order."""
        pending = list(enumerate(questions))[::-1]
        results: list[EpisodeResult | None] = [None] * len(questions)

        def pull(n, idle):
            if not pending:
                return None
            return [pending.pop() for _ in range(min(n, len(pending)))]

        def on_done(key, result):
            results[key] = result

        self.serve(pull, on_done)
        return results
