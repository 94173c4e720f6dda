"""nano-planner's second executor: a small "function caller" model that turns the planner's
informal task into the tool's exact input (bot-with-plan's split: the planner decides what and
which tool, another model writes the call).

    python -m reference.planner.caller train --out build/train/caller      # about 15 min, 1 thread
    python -m reference.planner.caller eval                                # agreement, ms per call
    from reference.planner.caller import load_caller
    caller = load_caller()                                # the reference checkpoint
    caller.translate("calculator", "Multiply 11 by 10")   # -> Call("calculator", "11 * 10")

The model reads `Tool: <tool>\\nTask: <task>\\n` and writes `Call: <input>\\n`, or `No call\\n`
when the tool cannot do the task (a bad task, as the deterministic translator's `BadTask`). It
is the planner's architecture (byte-level, rotary positions, d=128, 4 layers) started from the
nano-react weights, which already copy numbers and words, and fine-tuned by masked SFT on the
(tool, task) -> call pairs of the planner's oracle plans (ground truth: the deterministic
translator, reference/planner/executor.py) and on the detours' bad tasks. Frozen-set and
generalisation-split requests are never trained on.

`translate` raises `BadTask` like the translator's (kind `caller_refused` for `No call`,
`caller_garbled` for anything else that is not a call), so `execute_with` is a drop-in for
`executor.execute`: the environment, the traces and the metrics are the same; only who writes
the call, and what it costs, change. Each call is one greedy decode (a prefill and about 15
decode steps); the planner's engine waits for it like for a tool.

Limits: greedy, one call at a time (calls of several rows are not batched yet); CPU-trained.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from reference.planner.executor import BadTask, Call, Outcome, execute
from reference.planner.executor import translate as rule_translate

CALLER_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "nano-planner" / "caller"
REFUSAL = "No call"
MAX_CALL_TOKENS = 160        # the longest exact input (a 120-byte task's text) and spare
REFUSED, GARBLED = "caller_refused", "caller_garbled"


def prompt_text(tool: str, task: str) -> str:
    return f"Tool: {tool}\nTask: {task}\n"


def target_text(tool: str, task: str) -> str:
    """What the caller should write: the translator's exact input, or the refusal."""
    try:
        return f"Call: {rule_translate(tool, task).input}\n"
    except BadTask:
        return f"{REFUSAL}\n"


def trajectories(seed: int, exclude: set[str]):
    """Endless planner oracle trajectories whose requests are not in `exclude`, with detours:
    every planner step gives a (tool, task) pair, and each detour a bad one (the right task
    sent to the wrong tool, or a task no tool can do). Half the trajectories come from the
    planner's own distribution, half from nano-react's broadened one (random words of 1-12
    letters, never held out; operands of 1-6 digits), so the caller copies what it has not
    seen."""
    from reference.planner.tasks import generate
    from reference.react.tasks import TRAIN_DIST
    own = generate(seed, sys.maxsize, exclude=exclude, p_detour=0.5, unique=False,
                   prefix="caller-")
    broad = generate(seed + 1, sys.maxsize, exclude=exclude, p_detour=0.5, unique=False,
                     prefix="caller-b-", dist=TRAIN_DIST)
    rng = random.Random(seed)
    while True:
        yield next(broad if rng.random() < 0.5 else own)


def examples(seed: int, exclude: set[str]):
    """Endless (tool, task) pairs: each planner step of `trajectories`, bad ones included."""
    from reference.planner.schema import parse_step
    for traj in trajectories(seed, exclude):
        for role, text in traj.segments:
            if role in ("agent", "agent_masked"):
                step, _ = parse_step(text)
                if step is not None and "task" in step:
                    yield step["tool"], step["task"]


def segments_stream(seed: int, exclude: set[str]):
    """Training rows as (role, text) segments: the prompt masked, the call learned."""
    for tool, task in examples(seed, exclude):
        yield [("prompt", prompt_text(tool, task)), ("agent", target_text(tool, task))]


@dataclass
class FunctionCaller:
    model: object
    max_tokens: int = MAX_CALL_TOKENS

    @torch.no_grad()
    def write(self, tool: str, task: str) -> str:
        """The model's line for this (tool, task), greedy, without its newline."""
        from reference.model import decode, encode
        model = self.model
        cache = model.new_cache(1)
        device = next(model.parameters()).device
        ids = encode(prompt_text(tool, task))
        logits = model(torch.tensor([ids], device=device), cache=cache, last_only=True)[0, -1]
        out: list[int] = []
        for _ in range(self.max_tokens):
            nxt = int(torch.argmax(logits))
            if nxt == 10:  # newline ends the call
                break
            out.append(nxt)
            if cache.length + 1 >= model.config.block_size:
                break
            logits = model(torch.tensor([[nxt]], device=device), cache=cache,
                           last_only=True)[0, -1]
        return decode(out)

    def translate(self, tool: str, task: str) -> Call:
        line = self.write(tool, task)
        if line.startswith("Call: ") and len(line) > len("Call: "):
            return Call(tool, line[len("Call: "):])
        if line == REFUSAL:
            raise BadTask(REFUSED, f"the function caller found no {tool} call for {task[:60]!r}")
        raise BadTask(GARBLED, f"the function caller wrote no call ({line[:40]!r})")

    def execute(self, tool: str, task: str) -> Outcome:
        """As executor.execute, with this model writing the call."""
        return execute(tool, task, self.translate)


def load_caller(path: Path | None = None, device: str = "cpu") -> FunctionCaller:
    """A caller from `path`, or the reference one (rules.yaml's executors.caller), whose file
    must have the SHA-256 rules.yaml fixes (CheckpointError otherwise)."""
    from reference.checkpoint import CheckpointError, load_model
    if path is None:
        from reference.hashing import file_sha256
        from reference.rules import load_rules
        fixed = load_rules().benchmark("nano-planner").executors["caller"]
        path = fixed.checkpoint
        if Path(path).is_file() and file_sha256(path) != fixed.checkpoint_sha256:
            raise CheckpointError(f"{path} is not the function caller rules.yaml fixes "
                                  f"(SHA-256 {fixed.checkpoint_sha256[:12]}...)")
    model = load_model(Path(path), device)
    model.eval()
    return FunctionCaller(model)


def frozen_pairs(split: str) -> list[tuple[str, str]]:
    """Every oracle step's (tool, task) of a frozen planner set (regenerated: the frozen file
    keeps the exact calls, not the tasks' texts), and one bad variant of each."""
    from reference.planner.schema import parse_step
    from reference.planner.tasks import (EVAL_SEED, EVAL_SIZE, GEN_SEED, GEN_SIZE, HELDOUT_DIST,
                                         _bad_step, generate)
    trajs = generate(EVAL_SEED, EVAL_SIZE, prefix="planner-") if split == "frozen" else \
        generate(GEN_SEED, GEN_SIZE, prefix="planner-gen-", dist=HELDOUT_DIST)
    rng, pairs = random.Random(0), []
    for traj in trajs:
        for role, text in traj.segments:
            step, _ = parse_step(text) if role == "agent" else (None, "")
            if step is not None and "task" in step:
                pairs.append((step["tool"], step["task"]))
                pairs.append(_bad_step(rng, step["tool"], step["task"]))
    return pairs


def agreement(caller: FunctionCaller, pairs: list[tuple[str, str]]) -> dict:
    """How often the caller writes exactly what the deterministic translator writes."""
    same = refused_ok = n_bad = 0
    misses, t0 = [], time.perf_counter()
    for tool, task in pairs:
        want, got = target_text(tool, task).rstrip("\n"), caller.write(tool, task)
        n_bad += want == REFUSAL
        if got == want:
            same += 1
            refused_ok += want == REFUSAL
        elif len(misses) < 8:
            misses.append({"tool": tool, "task": task, "want": want, "got": got})
    wall = time.perf_counter() - t0
    return {"pairs": len(pairs), "exact": round(same / len(pairs), 4),
            "valid_calls_exact": round((same - refused_ok) / (len(pairs) - n_bad), 4)
            if len(pairs) > n_bad else None,
            "bad_tasks_refused": round(refused_ok / n_bad, 4) if n_bad else None,
            "ms_per_call": round(1e3 * wall / len(pairs), 2), "misses": misses}


def train(args) -> dict:
    from reference.checkpoint import load_model
    from reference.hashing import file_sha256
    from reference.planner.tasks import load_eval_set, load_generalisation_set
    from reference.train import batches, lr_at, prefetch, train_step
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.init_from, "cpu")
    model.train()
    exclude = {t.request for t in load_eval_set()} | {t.request for t in load_generalisation_set()}
    data = prefetch(batches(segments_stream(args.seed, exclude), args.seed, args.batch_size,
                            model.config.block_size, True))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr,
                            betas=(0.9, 0.99))
    args.out.mkdir(parents=True, exist_ok=True)
    t0, tokens = time.time(), 0
    with open(args.out / "progress.jsonl", "w") as progress:
        for step in range(args.steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, args)
            ids, labels = next(data)
            loss = train_step(model, opt, ids, labels)
            tokens += int((ids != 0).sum())
            if (step + 1) % 50 == 0:
                rec = {"step": step + 1, "loss": round(loss.item(), 4),
                       "elapsed_s": round(time.time() - t0, 1), "tokens": tokens}
                print(json.dumps(rec), flush=True)
                progress.write(json.dumps(rec) + "\n")
    model.eval()
    torch.save({"config": model.config.to_dict(), "model": model.state_dict()},
               args.out / "model.pt")
    digest = file_sha256(args.out / "model.pt")
    (args.out / "model.sha256").write_text(f"{digest}  model.pt\n")
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
              if k != "func"}
    (args.out / "train_config.json").write_text(json.dumps(
        {"args": config, "train_wall_s": round(time.time() - t0, 1), "tokens": tokens,
         "sha256": digest}, indent=2) + "\n")
    return {"sha256": digest, "train_wall_s": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="fine-tune the caller from the nano-react weights")
    tr.add_argument("--init-from", type=Path,
                    default=Path("reference/checkpoints/nano-react/model.pt"))
    tr.add_argument("--steps", type=int, default=1500)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--min-lr-frac", type=float, default=0.05)
    tr.add_argument("--warmup", type=int, default=30)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--out", type=Path, default=CALLER_DIR)
    ev = sub.add_parser("eval", help="agreement with the deterministic translator")
    ev.add_argument("--checkpoint", type=Path, default=None)
    ev.add_argument("--limit", type=int, default=0, help="first N pairs of each split")
    ev.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        if not args.init_from.is_file():
            ap.error(f"--init-from {args.init_from}: no such file")
        print(json.dumps(train(args)))
        return 0
    torch.set_num_threads(args.threads)
    caller = load_caller(args.checkpoint)
    for split in ("frozen", "generalisation"):
        pairs = frozen_pairs(split)
        report = agreement(caller, pairs[:args.limit] if args.limit else pairs)
        print(json.dumps({"split": split, **report}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
