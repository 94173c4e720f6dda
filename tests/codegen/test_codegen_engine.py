"""nano-codegen driven by the one-episode loop, the batched engine and the real LoadGen."""
import json
from pathlib import Path

import pytest

from loadgen_harness.logs import accuracy_from_log, read_accuracy_log
from loadgen_harness.runner import run_test
from loadgen_harness.trace import trace_validator
from reference.codegen.agent import CodegenEnv
from reference.codegen.sandbox import Verifier
from reference.codegen.tasks import load_eval_set
from reference.engine import DRAFT, Engine
from reference.checkpoint import load_model
from reference.grading import Grader
from reference.episode import run_env
from reference.workloads import get_workload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return load_model(get_workload("nano-codegen").default_checkpoint)


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as v:
        yield v


def _summary(res):
    return (res.answer, res.stop_reason, [a.program for a in res.attempts],
            [a.result.kind for a in res.attempts])


def test_the_committed_checkpoint_solves_the_seed_tasks(model, verifier):
    for task in load_eval_set()[:8]:
        res = run_env(model, CodegenEnv(task, verifier))
        assert res.solved and res.output == task.answer, (task.prompt, _summary(res))


def test_engine_gives_the_one_episode_results_with_retries_in_the_batch(model, verifier):
    tasks = load_eval_set()[:24]
    engine = Engine(model, lambda t: CodegenEnv(t, verifier), max_batch=8)
    batched = engine.run_all(tasks)
    single = [run_env(model, CodegenEnv(t, verifier)) for t in tasks]
    assert [_summary(r) for r in batched] == [_summary(r) for r in single]


def test_a_failed_attempt_is_retried_with_its_feedback_in_context(model, verifier):
    """Force a first failure (a wrong program written for the agent), then let the model go on
    from the feedback: the context grows by the failed attempt and the feedback line."""
    task = load_eval_set()[3]  # Return 2 to the power of 10
    env = CodegenEnv(task, verifier)
    env.step("Program:\nresult = 2 ** 9\nEnd\n")
    assert env.prompt().endswith("End\nFeedback: Wrong output: 512\n")
    res = run_env(model, env)
    assert len(res.attempts) >= 2 and res.attempts[0].result.kind == "wrong_output"
    assert (res.steps[1].context_tokens > res.steps[0].context_tokens
            or res.steps[0].context_tokens == 0)


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_codegen_through_loadgen_logs_programs_the_checker_can_rerun(tmp_path, scenario):
    lines = (ROOT / "reference/codegen/data/eval.jsonl").read_text().splitlines()[:16]
    eval_set = tmp_path / "eval16.jsonl"
    eval_set.write_text("\n".join(lines) + "\n")
    settings = {"server_target_qps": 50.0, "server_target_latency_ns": 10**10} \
        if scenario == "Server" else {}
    spec = {"benchmark": "nano-codegen", "scenario": scenario, "mode": "AccuracyOnly",
            "out_dir": str(tmp_path / scenario),
            "checkpoint": str(get_workload("nano-codegen").default_checkpoint),
            "eval_set": str(eval_set), "settings": settings, "workers": 1, "threads": 1}
    status = run_test(spec, timeout_s=180)
    out = Path(spec["out_dir"])
    assert status["ok"] and status["completed"] == 16
    entries = read_accuracy_log(out / "mlperf_log_accuracy.json")
    trace = [json.loads(l) for l in (out / "agent_trace.jsonl").read_text().splitlines()]
    assert sorted(e["qsl_idx"] for e in entries) == list(range(16)) and len(trace) == 16
    for rec in trace:
        assert not list(trace_validator().iter_errors(rec))
        assert all(s["tool"] == "python" for s in rec["steps"]) and 1 <= len(rec["steps"]) <= 3
    programs = {r["qsl_idx"]: r["answer"] for r in trace}
    assert all(e["answer"] == programs[e["qsl_idx"]] for e in entries)
    tasks = load_eval_set(eval_set)
    with Grader() as g:
        acc = accuracy_from_log(out / "mlperf_log_accuracy.json", tasks,
                                benchmark="nano-codegen", grader=g, metric="pass_within_bound")
        assert acc["pass_within_bound"] >= 0.75, acc
        # every logged attempt re-verifies to its logged feedback
        for rec in trace:
            for s in rec["steps"]:
                assert g.observation_matches("nano-codegen", tasks[rec["qsl_idx"]], s["tool"],
                                             s["tool_input"], s["observation"])[0]


class _Hijacked(CodegenEnv):
    """An episode whose first program is replaced by a hostile one, as if the model wrote it."""

    def __init__(self, task, verifier, program):
        super().__init__(task, verifier)
        self.program = program

    def _text(self, agent_text):
        return f"Program:\n{self.program}\nEnd\n" if not self.result.attempts else agent_text

    def submit_step(self, agent_text):
        return super().submit_step(self._text(agent_text))

    def step(self, agent_text, pending=None):
        return super().step(self._text(agent_text), pending=pending)


class _BrokenVerifier:
    def verify(self, program, expected):
        raise RuntimeError("the sandbox could not start")

    def submit(self, program, expected):
        raise RuntimeError("the sandbox could not start")


@pytest.mark.parametrize("draft", [0, DRAFT])
def test_one_hostile_episode_does_not_change_the_others_in_a_batch_of_64(model, verifier, draft):
    tasks = load_eval_set()[:64]
    clean = Engine(model, lambda t: CodegenEnv(t, verifier), max_batch=64).run_all(tasks)
    hostile = {
        5: lambda t: _Hijacked(t, verifier, "result = chr(55296)"),  # a lone surrogate
        20: lambda t: _Hijacked(t, verifier, "x = []\nfor i in range(10**5):\n    x = [x]\n"
                                            "raise ValueError(x)"),  # an unprintable exception
        40: lambda t: CodegenEnv(t, _BrokenVerifier()),  # the environment itself raises
    }
    items = [(i, t) for i, t in enumerate(tasks)]
    engine = Engine(model, max_batch=64, draft=draft,
                    make_env=lambda it: hostile.get(it[0],
                                                    lambda t: CodegenEnv(t, verifier))(it[1]))
    mixed = engine.run_all(items)
    for i, (a, b) in enumerate(zip(clean, mixed)):
        if i not in hostile:
            # the message names the episode and how its last step ended (an exception's name)
            assert _summary(a) == _summary(b), (i, b.steps[-1].observation if b.steps else None,
                                                verifier.replaced)
    assert mixed[5].attempts[0].result.kind == "wrong_output"
    assert "\\ud800" in mixed[5].steps[0].observation
    assert mixed[20].attempts[0].result.kind == "runtime"
    assert mixed[40].stop_reason == "env_error" and "RuntimeError" in mixed[40].steps[0].observation


def test_a_slow_program_stalls_only_its_own_row(model):
    """Verification runs off the engine's thread: while one row's program burns its (here
    raised) CPU limit, the other episodes of the batch go on decoding and finish first."""
    tasks = load_eval_set()[:8]
    with Verifier(workers=2, limits={"cpu_s": 6, "wall_s": 6.0}) as verifier:
        slow = lambda t: _Hijacked(t, verifier, "while True:\n    pass")  # noqa: E731
        engine = Engine(model, max_batch=8, make_env=lambda it: (
            slow if it[0] == 0 else lambda t: CodegenEnv(t, verifier))(it[1]))
        results = engine.run_all(list(enumerate(tasks)))
    assert results[0].attempts[0].result.kind == "timeout"
    stall_ms = results[0].attempts[0].verify_ms
    assert all(r.latency_ms < stall_ms for r in results[1:]), \
        ([round(r.latency_ms) for r in results[1:]], round(stall_ms))
