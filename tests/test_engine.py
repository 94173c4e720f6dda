"""The batched engine and the naive baseline agree with the one-episode KV-cache loop."""
import pytest
import torch

from reference.engine import DRAFT, Engine
from reference.checkpoint import load_model
from reference.model import GPT, GPTConfig
from reference.react.agent import ReactEnv, run_episode
from reference.react.tasks import load_eval_set
from reference.workloads import get_workload


@pytest.fixture(scope="module")
def model():
    return load_model(get_workload("nano-react").default_checkpoint)


def test_engine_matches_single_episode_loop_on_trained_model(model):
    tasks = load_eval_set()[:40]
    single = [run_episode(model, t.question) for t in tasks]
    engine = Engine(model, lambda t: ReactEnv(t.question), max_batch=7)
    batched = engine.run_all(tasks)
    assert [r.transcript for r in batched] == [r.transcript for r in single]
    # prompts and observations waiting together were prefilled in one forward
    assert engine.stats["prefills"] > engine.stats["prefill_forwards"] > 0


class _Checked(Engine):
    """An engine whose drafts come from `drafter` and which checks, after every decode step,
    that each row's token history mirrors its cache row."""

    def __init__(self, *a, drafter=None, **kw):
        super().__init__(*a, **kw)
        self.drafter = drafter

    def _propose(self, slot, tok):
        return self.drafter(slot, tok) if self.drafter else super()._propose(slot, tok)

    def step(self):
        out = super().step()
        queued = {id(s) for s, _ in self.queued}
        for s in self.active:
            if s.pending is None and id(s) not in queued:
                assert len(s.hist) == self.cache.lengths[s.row]
        return out


@pytest.fixture(scope="module")
def reference_episodes(model):
    return {t.question: run_episode(model, t.question) for t in load_eval_set()[40:64]}


@pytest.mark.parametrize("drafter", ["table", "random", "ahead"])
def test_drafts_never_change_an_episode(model, reference_episodes, drafter):
    """Whatever is drafted (the engine's own table, random bytes, or the true continuation
    read from the one-episode loop's transcript, so whole steps are accepted and a step can end
    inside a draft), the engine writes exactly the one-episode loop's episodes."""
    tasks = load_eval_set()[40:64]
    single = reference_episodes
    gen = torch.Generator().manual_seed(1)

    def random_bytes(slot, tok):
        return torch.randint(0, 256, (int(torch.randint(0, 9, (1,), generator=gen)),),
                             generator=gen).tolist()

    def ahead(slot, tok):  # the next tokens of this step in the reference transcript
        from reference.model import encode
        text = encode(single[slot.env.result.question].transcript)
        done = encode(slot.env.result.transcript) + slot.out + [tok]
        return text[len(done):len(done) + 12] if text[:len(done)] == done else []

    chosen = {"table": None, "random": random_bytes, "ahead": ahead}[drafter]
    engine = _Checked(model, lambda t: ReactEnv(t.question), max_batch=6, drafter=chosen,
                      draft=DRAFT)
    batched = engine.run_all(tasks)
    assert [r.transcript for r in batched] == [single[t.question].transcript for t in tasks]
    assert [r.answer for r in batched] == [single[t.question].answer for t in tasks]
    if drafter == "ahead":
        assert engine.stats["accepted"] > 0.9 * engine.stats["drafted"] > 0
    if drafter == "table":  # most of what the model agreed with saved a decode step
        assert engine.stats["drafted"] > engine.stats["accepted"] > 0
        assert engine.stats["tokens_decoded"] > 2 * engine.stats["rows_decoded"]


def test_rows_regrouped_by_length_never_change_an_episode(model, reference_episodes,
                                                         monkeypatch):
    """With attention groups of 2 rows, the engine moves episodes between rows to group them
    by length; each row's tokens move with it, and the episodes stay the one-episode loop's."""
    import reference.model as gpt
    monkeypatch.setattr(gpt._attention, "kernel", lambda hs: None)  # SDPA groups, ordered rows
    monkeypatch.setattr(gpt, "GROUP_ROWS", 2)
    tasks = load_eval_set()[40:64]
    engine = _Checked(model, lambda t: ReactEnv(t.question), max_batch=6, draft=DRAFT)
    got = engine.run_all(tasks)
    assert [r.transcript for r in got] == [reference_episodes[t.question].transcript
                                          for t in tasks]
    assert engine.stats["rows_moved"] > 0


def test_no_drafts_is_one_token_per_row_and_step(model):
    tasks = load_eval_set()[:12]
    plain = Engine(model, lambda t: ReactEnv(t.question), max_batch=4)  # the default
    drafted = Engine(model, lambda t: ReactEnv(t.question), max_batch=4, draft=DRAFT)
    assert ([r.transcript for r in plain.run_all(tasks)]
            == [r.transcript for r in drafted.run_all(tasks)])
    assert plain.stats["drafted"] == 0
    assert plain.stats["tokens_decoded"] == plain.stats["rows_decoded"]
    assert drafted.stats["decode_steps"] < plain.stats["decode_steps"]


def test_naive_baseline_gives_the_same_episodes(model):
    for t in load_eval_set()[:3]:
        a = run_episode(model, t.question)
        b = run_episode(model, t.question, naive=True)
        assert a.transcript == b.transcript and b.answer == t.answer
        assert all(s.kv_cache_bytes == 0 for s in b.steps)


@pytest.mark.parametrize("rope", [False, True], ids=["learned-positions", "rope"])
@torch.no_grad()
def test_batched_decode_rows_at_different_positions_match_one_row_decode(rope):
    torch.manual_seed(3)
    m = GPT(GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=32, rope=rope)).eval()
    prompts = [[5, 6, 7], [9] * 11, [1, 2, 3, 4, 5, 6, 7]]
    cache = m.new_cache(4)
    rows = [3, 0, 2]  # rows need not be contiguous or ordered
    last = []
    for r, p in zip(rows, prompts):
        last.append(m(torch.tensor([p]), cache=cache, last_only=True, rows=[r])[0, -1])
    toks = torch.stack(last).argmax(-1)
    batched = m(toks[:, None], cache=cache, last_only=True, rows=rows)[:, -1]
    for i, p in enumerate(prompts):
        full = m(torch.tensor([p + [int(toks[i])]]))[0, -1]
        assert torch.allclose(batched[i], full, atol=1e-5)
    # contiguous rows take the view path; same numbers
    cache2 = m.new_cache(3)
    for r, p in enumerate(prompts):
        m(torch.tensor([p]), cache=cache2, rows=[r])
    out2 = m(toks[:, None], cache=cache2, last_only=True, rows=[0, 1, 2])[:, -1]
    assert torch.allclose(out2, batched, atol=1e-5)


def test_engine_reuses_rows_when_episodes_finish():
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=96, n_layer=1, n_head=2, n_embd=32)).eval()
    qs = load_eval_set()[:9]
    eng = Engine(m, lambda t: ReactEnv(t.question), max_batch=2)
    results = eng.run_all(qs)
    assert len(results) == 9 and all(r.stop_reason != "running" for r in results)
    assert sorted(eng.free) == [0, 1] and not eng.active
