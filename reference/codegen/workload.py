"""nano-codegen: the workload (reference.workloads.Workload) that rules.yaml names for it.
Nothing at module level imports torch: the checker grades through it."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from reference.workloads import Workload


@dataclass(frozen=True)
class CodegenWorkload(Workload):
    """nano-codegen: programs verified in the sandbox, retried with feedback; the payload is the
    last program, correct when the verifier runs it to the expected output."""
    name: str = "nano-codegen"
    answer: str = "program"
    report: str = "reference.codegen.report"
    tool: str = "python"        # the `tool` of an attempt's step in traces

    def load_tasks(self, path: Path | None = None) -> list:
        from reference.codegen.tasks import EVAL_PATH, load_eval_set
        return load_eval_set(Path(path) if path else EVAL_PATH)

    def question(self, task) -> str:
        return task.prompt

    @contextmanager
    def episodes(self, max_steps: int, verifier_workers: int = 2,
                 max_step_tokens: int | None = None, sandbox: dict | None = None
                 ) -> Iterator[Callable]:
        from reference.codegen.agent import MAX_STEP_TOKENS, CodegenEnv
        from reference.codegen.sandbox import Verifier
        tokens = max_step_tokens or MAX_STEP_TOKENS
        with Verifier(workers=verifier_workers, limits=sandbox) as verifier:
            yield lambda task: CodegenEnv(task, verifier, max_steps, tokens)

    def correct(self, grader, task, answer: str | None) -> bool:
        return answer is not None and grader.verify(answer, task.answer).ok

    def reexecute(self, grader, task, tool: str, tool_input: str) -> tuple[str | None, str]:
        if tool != self.tool:
            return None, f"(no tool {tool!r} in {self.name}; attempts use {self.tool!r})"
        return grader.verify(tool_input, task.answer).feedback, ""

    def step_problem(self, step: dict) -> str | None:
        from reference.codegen.format import parse_program
        if step["tool"] is not None and step["tool_input"] != parse_program(step["text"]):
            return "the program run is not the one the step's text wrote"
        return None

    def payload_problem(self, episode: dict) -> tuple[str, str | None] | None:
        """The payload is the episode's last attempt."""
        last = next((s["tool_input"] for s in reversed(episode["steps"])
                     if s["tool"] is not None), None)
        if episode["answer"] != last:
            return "the logged program is not the episode's last attempt", last
        return None

    def same_observation(self, logged: str | None, fresh: str | None) -> bool:
        from reference.grading import same_feedback
        return same_feedback(logged, fresh or "") if logged is not None else logged == fresh

    def uncomputed_answer(self, grader, task, episode: dict) -> dict | None:
        """The passing program computes (one that only assigns literals states the expected
        output instead of computing it)."""
        from reference.codegen.format import program_computes
        answer = episode["answer"]
        if answer is None or program_computes(answer) or not self.correct(grader, task, answer):
            return None
        return {"message": "the program assigns the expected output as a literal",
                "found": answer[:200], "hint": "a program must compute its result"}

    def seed_verdicts(self, scored_sets) -> None:
        """The reference checkpoint's passing programs (committed beside each evaluation set
        with their verdicts): a submitted program identical to one of them, for the same task,
        has the same deterministic verdict, so the sandbox need not run it again."""
        import json

        from reference.codegen.sandbox import VerifyResult
        from reference.grading import _SHARED
        for task_file, results_file in scored_sets:
            tasks = self.load_tasks(task_file)
            for line in Path(results_file).read_text().splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("correct") is True and 0 <= row["qsl_idx"] < len(tasks):
                    expected = tasks[row["qsl_idx"]].answer
                    _SHARED.setdefault((row["answer"], expected),
                                       VerifyResult("ok", output=expected))

    def training(self, config):
        from reference.codegen.training import codegen_training
        return codegen_training(config)

    def check_train_options(self, config) -> str | None:
        if config.mix:
            return "--mix applies to nano-react and nano-planner"
        if config.broad:
            return "--broad applies to nano-react only (nano-codegen: --variety)"
        return None


WORKLOAD = CodegenWorkload()
