"""nano-planner through the shared drivers: the single-episode loop and the batched engine decode
every row under its schema, agree with each other and with the planner's own loop, and the
workload's checks refuse steps that disagree with themselves."""
import json

import pytest
import torch

from reference.checkpoint import load_model
from reference.engine import DRAFT, Engine
from reference.episode import run_env
from reference.model import GPT, GPTConfig
from reference.planner.agent import run_episode
from reference.planner.schema import parse_step
from reference.planner.env import PlannerEnv, step_constraint
from reference.planner.workload import WORKLOAD
from reference.react.agent import ReactEnv
from reference.workloads import get_workload

DEV = "reference/checkpoints/nano-planner/model.pt"  # the drivers agree on any checkpoint


def _texts(result):
    return [s.text for s in result.steps]


def test_engine_single_loop_and_planner_loop_write_the_same_steps():
    torch.set_num_threads(1)
    model = load_model(DEV)
    tasks = WORKLOAD.load_tasks()[:6]
    own = [run_episode(model, step_constraint(), t.request).steps for t in tasks]
    with WORKLOAD.episodes(max_steps=10) as make_env:
        single = [run_env(model, make_env(t)) for t in tasks]
        batched = Engine(model, make_env, max_batch=4).run_all(tasks)
    assert [_texts(r) for r in single] == own
    assert [_texts(r) for r in batched] == own
    for r in batched:
        assert r.stop_reason == "final_answer" and r.answer is not None
        assert all(s.mask_ms > 0 for s in r.steps)
        assert all(s.tool is not None for s in r.steps[:-1]) and r.steps[-1].tool is None


def test_drafts_under_the_schema_keep_the_constrained_greedy_steps():
    """Rows under the automaton draft only bytes it allows and check each guess against the
    constrained choice: the same steps as without drafts, with drafts kept."""
    torch.set_num_threads(1)
    model = load_model(DEV)
    tasks = WORKLOAD.load_tasks()[:8]
    with WORKLOAD.episodes(max_steps=10) as make_env:
        plain = Engine(model, make_env, max_batch=4).run_all(tasks)
        engine = Engine(model, make_env, max_batch=4, draft=DRAFT)
        drafted = engine.run_all(tasks)
    assert [_texts(r) for r in drafted] == [_texts(r) for r in plain]
    assert [r.answer for r in drafted] == [r.answer for r in plain]
    assert engine.stats["drafted"] > engine.stats["accepted"] > 0
    assert all(parse_step(s.text)[0] is not None for r in drafted for s in r.steps)


class _Hostile(GPT):
    """A real model whose every logit row prefers bytes no JSON step may hold where it is."""

    def forward(self, *a, **k):
        out = super().forward(*a, **k)
        push = torch.zeros(out.shape[-1])
        push[[0x0A, 0x5C, 0x22, 0x7B, 0x7D, 0x00, 0xFF]] = 50.0  # newline \ " { } NUL 0xFF
        return out + push


@pytest.mark.parametrize("draft", [0, DRAFT])
def test_engine_rows_stay_schema_valid_under_adversarial_logits_beside_free_rows(draft):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = _Hostile(GPTConfig(block_size=2048, n_layer=1, n_head=2, n_embd=32, rope=True)).eval()
    tasks = WORKLOAD.load_tasks()[:3]
    with WORKLOAD.episodes(max_steps=3) as make_env:
        def mixed(item):  # planner rows and an unconstrained ReAct row in one batch
            return ReactEnv("What is 2 plus 2?", 2, 40) if item is None else make_env(item)
        results = Engine(model, mixed, max_batch=4, draft=draft).run_all(tasks + [None])
    for r in results[:3]:
        assert r.steps and all(parse_step(s.text)[0] is not None for s in r.steps), _texts(r)
        assert r.stop_reason in ("final_answer", "max_steps", "context_full")
    react = results[3]  # the free row wrote what the hostile logits want: not JSON
    assert react.steps and parse_step(react.steps[0].text)[0] is None


def test_without_the_constraint_a_step_ends_at_the_first_closing_brace_of_a_valid_step():
    env = PlannerEnv("Look up pi.", 10, constrained=False)
    assert env.constraint is None
    assert not env.step_complete('{"thought":"a}')
    assert env.step_complete('{"final_answer":"3.14159"}')
    rec = env.step('{"thought":"x","task":"Look up the value of pi","tool":"lookup"}')
    assert (rec.tool, rec.tool_input, rec.observation) == ("lookup", "Look up the value of pi",
                                                           "3.14159")
    assert env.injection(rec) == "\nResult: 3.14159\n"
    rec = env.step('{"thought":"x", "task":"Look up pi","tool":"lookup"}')  # not canonical
    assert rec.tool is None and rec.observation.startswith("Error: not a valid step")
    env.step('{"final_answer":"3.14159"}')
    assert env.done and env.result.answer == "3.14159"


def test_workload_checks_refuse_steps_that_disagree_with_their_text():
    w = get_workload("nano-planner", "reference.planner.workload")
    text = '{"thought":"t","task":"Look up pi","tool":"lookup"}'
    good = {"text": text, "tool": "lookup", "tool_input": "Look up pi"}
    assert w.step_problem(good) is None
    assert "not the one" in w.step_problem({**good, "tool_input": "Look up e"})
    assert "not the one" in w.step_problem({**good, "tool": "calculator"})
    assert "schema-valid" in w.step_problem({**good, "text": text.replace('"t"', '"t\\n"')})
    final = '{"final_answer":"7"}'
    assert w.step_problem({"text": final, "tool": None, "tool_input": None}) is None
    assert "final-answer" in w.step_problem({"text": final, "tool": "lookup", "tool_input": "pi"})
    ep = {"stop_reason": "final_answer", "answer": "7", "steps": [{"text": final}]}
    assert w.answer_problem(ep) is None
    assert w.answer_problem({**ep, "answer": "8"})
    assert w.reexecute(None, None, "lookup", "Look up the value of pi")[0] == "3.14159"
    assert w.reexecute(None, None, "lookup", "Look up nothing at all")[0].startswith("Error")
    task = w.load_tasks()[0]
    assert w.correct(None, task, task.answer) and not w.correct(None, task, None)
    assert json.dumps(w.summarize([]))


def test_a_correct_answer_no_tool_call_produced_is_reported():
    task = WORKLOAD.load_tasks()[0]
    calls = [{"tool": c.tool, "observation": c.observation} for c in task.oracle]
    honest = {"answer": task.answer, "steps": calls + [{"tool": None, "observation": None}]}
    assert WORKLOAD.uncomputed_answer(None, task, honest) is None
    short = {"answer": task.answer, "steps": calls[-1:] + [{"tool": None, "observation": None}]}
    assert "no tool call" in WORKLOAD.uncomputed_answer(None, task, short)["message"]
    stated = {"answer": task.answer, "steps": [{**c, "observation": "1"} for c in calls]}
    assert WORKLOAD.uncomputed_answer(None, task, stated) is not None
    assert WORKLOAD.uncomputed_answer(None, task, {**stated, "answer": "wrong"}) is None
