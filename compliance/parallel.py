"""The rules of one check on both cores: the shared evidence (every trace, task set, log) is
parsed once, then the process forks and a child runs the heavy trace rules (FORKED_RULES)
while the parent runs the rest; the child's findings come back over a pipe.

    python -m compliance check results/closed/reference    # forks when it pays (auto)

Why a fork and not a pool: the parsed traces (about 1 GB of Python objects for the reference)
are shared copy-on-write; shipping them to another process costs as much as parsing them.
What it does not do: run a rule that needs the sandbox (ctx.grader, a process pool of the
parent's) in the child: such a rule there stops at its first use of the grader and is run again
in the parent. A child that dies, or whose answer cannot be read, changes nothing either: the
parent runs all of its rules itself. So the verdict never depends on the fork, only the time.
"""
from __future__ import annotations

import os
import pickle
import signal

from compliance.context import Ctx

# The trace rules that need no sandbox and cost the most after the parse (reference, CPU s:
# T607 0.3, T606 0.2, Q409 0.2, T610 0.07, A501/A502 0.05 each) and the system rules (S20x:
# they import jsonschema, 0.1 s); the parent keeps the sandbox rules (Q407, Q408, T605, the
# quality recomputation) and T603, T604, T612 (0.1 each).
FORKED_RULES = frozenset(("T607", "Q409", "T606", "T610", "A501", "A502", "T608", "T611",
                          "S201", "S202", "S203"))
# Below this many bytes of traces (as stored) a fork costs more than it saves.
MIN_TRACE_BYTES = 1 << 20


class ParentOnly(Exception):
    """A forked rule reached for the sandbox: the parent runs it instead."""


class _NoGrader:
    def __getattr__(self, name):
        raise ParentOnly(name)


def _trace_paths(ctx: Ctx) -> list[str]:
    out = []
    for r in ctx.results:
        splits = ctx.rules.benchmark(r.benchmark).splits or {}
        out += [f"{base}/agent_trace.jsonl" for base, _ in r.runs]
        out += [f"{r.acc}/{name}/agent_trace.jsonl" for name in sorted(splits)]
    return out


def worth_forking(ctx: Ctx) -> bool:
    """Two cores are free to this process and the traces are big enough to pay for a fork."""
    if not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2:
        return False
    total = 0
    for rel in _trace_paths(ctx):
        try:
            total += os.lstat(ctx.tree.root / ctx.tree.stored_as(rel)).st_size
        except OSError:
            pass
    return total >= MIN_TRACE_BYTES


def share_evidence(ctx: Ctx, split: bool = True) -> None:
    """Parse what both halves read (traces, accuracy logs, detail logs, task sets), once,
    before the rules fork. The traces are parsed on both cores when `split`: a child parses
    the larger share (CHILD_SHARE of the bytes) and sends its rows back marshalled (plain
    lists, dicts and scalars; reading them costs about 0.4 of parsing them); whatever it does
    not send, this process parses. A checker bug here raises: the caller then runs the rules
    serially, and the rule that meets the bug reports it as usual (X901)."""
    from compliance.evidence import parse_accuracy_log
    from compliance.checks.traces import _trace_budget, checked_trace_rows
    _trace_budget(ctx)  # reads (and inflates) every trace once, before the fork: both share it
    paths = _trace_paths(ctx)
    theirs = _child_share(ctx, paths) if split else []
    child = _parse_in_child(ctx, theirs) if theirs else None
    try:
        for r in ctx.results:  # while the child parses
            ctx.tasks(r.benchmark)
            for name in sorted(ctx.rules.benchmark(r.benchmark).splits or {}):
                ctx.split_tasks(r.benchmark, name)
            parse_accuracy_log(ctx, r)
            for base, _ in r.runs:
                ctx.tree.mllog(f"{base}/mlperf_log_detail.txt")
        for rel in paths:
            if rel not in theirs:
                checked_trace_rows(ctx, rel)
    except BaseException:
        if child is not None:
            child[1].close()
            _kill(child[0])
        raise
    if child is not None:
        _adopt(ctx, child)
    for rel in paths:  # what the child could not send
        checked_trace_rows(ctx, rel)


# The child's share of the trace bytes: it parses (1) and marshals (~0.1), the parent parses
# the rest and reads the child's rows (~0.4): h_parent + 0.4 h_child = 1.1 h_child gives 0.59;
# the parent also reads the task sets and logs meanwhile (measured on the reference).
CHILD_SHARE = 0.65


def _child_share(ctx: Ctx, paths: list[str]) -> list[str]:
    """The traces the child parses: the largest first, until CHILD_SHARE of the bytes."""
    sizes = {}
    for rel in paths:
        data, _ = ctx.tree.bytes(rel)
        sizes[rel] = len(data) if data else 0
    total, mine, out = sum(sizes.values()), 0, []
    for rel in sorted(paths, key=lambda p: -sizes[p]):
        if mine + sizes[rel] <= CHILD_SHARE * total:
            out.append(rel)
            mine += sizes[rel]
    return out


def _parse_in_child(ctx: Ctx, rels: list[str]):
    """(pid, reader) of a forked child that parses `rels` and writes {rel: rows} marshalled."""
    import marshal

    from compliance.checks.traces import checked_trace_rows

    def work() -> bytes:
        out = {rel: checked_trace_rows(ctx, rel) for rel in rels}
        try:
            return marshal.dumps(out)
        except ValueError:  # a record nested past marshal's depth: that trace stays home
            return marshal.dumps({rel: rows for rel, rows in out.items() if _marshals(rows)})
    return _fork(work)


def _fork(work):
    """(pid, reader) of a forked child that writes the bytes `work()` returns to a pipe and
    exits without unwinding the parent's stack (exit status 1 when work raised)."""
    r_fd, w_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            data = work()
            with os.fdopen(w_fd, "wb") as f:
                f.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(w_fd)
    return pid, os.fdopen(r_fd, "rb")


def _marshals(rows) -> bool:
    import marshal
    try:
        marshal.dumps(rows)
        return True
    except ValueError:
        return False


def _adopt(ctx: Ctx, child) -> None:
    """The child's rows, where it finished cleanly; else nothing (this process parses)."""
    import marshal

    from compliance.checks.traces import adopt_trace_rows
    pid, reader = child
    reaped = False
    try:
        data = reader.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            return
        try:
            got = marshal.loads(data)  # our own child's bytes, never the submission's
        except (ValueError, EOFError, TypeError):
            return
        for rel, rows in got.items():
            adopt_trace_rows(ctx, rel, rows)
    finally:
        reader.close()
        if not reaped:
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def run_split(ctx: Ctx, rules: list, run_one) -> list[list]:
    """[findings of rules[i]] for every i, FORKED_RULES run in a forked child and the rest
    here; run_one(ctx, rule) -> findings (it turns a crash into the rule's own finding)."""
    forked = [i for i, rule in enumerate(rules) if rule.id in FORKED_RULES]
    out: list = [None] * len(rules)

    def work() -> bytes:  # the child: its rules, its answer
        ctx.__dict__["grader"] = _NoGrader()  # the parent's sandbox pool is not ours
        answer = {}
        for i in forked:
            try:
                answer[i] = run_one(ctx, rules[i])
            except ParentOnly:
                pass  # not in the answer: the parent runs it
        return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)

    pid, reader = _fork(work)
    reaped = False
    try:
        for i, rule in enumerate(rules):
            if i not in forked:
                out[i] = run_one(ctx, rule)
        data = reader.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        answer = {}
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            try:
                answer = pickle.loads(data)  # our own child's bytes, never the submission's
            except Exception:
                answer = {}
        for i in forked:
            out[i] = answer[i] if i in answer else run_one(ctx, rules[i])
    finally:
        reader.close()
        if not reaped:  # Ctrl-C or a bug here: the child goes too
            _kill(pid)
    return out
