"""The batched engine and the naive baseline agree with the one-episode KV-cache loop."""
import pytest
import torch

from reference.engine import Engine
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
