"""Masked SFT of the nano-planner on oracle trajectories, and a constrained greedy evaluation.

    nice -n 10 python -m reference.planner.train --minutes 14 --threads 1 --out /tmp/planner
    python -m reference.planner.train --init-from reference/checkpoints/nano-react/model.pt
    python -m reference.planner.train --eval-only /tmp/planner/model.pt --eval-n 100

The planner's JSON steps are learned; the request and the executor's `Result:` lines are
masked (`--no-mask` learns every token: the bot-with-plan masking study). Reuses
reference/model.py (GPT), reference/sft.py (labels, masked cross-entropy) and
reference/train.py's length-grouped batching and schedule by import. The schedule (warmup +
cosine) is fitted to `--steps`; `--minutes` stops earlier on the wall clock and says so.
After training, the first `--eval-n` tasks of the frozen set are run closed-loop under the
schema constraint and scored with reference/planner/metrics.py.

Outputs in --out: model.pt, train_config.json, progress.jsonl, eval.json. This is a
development trainer: no MLPerf log, no validation-based checkpoint selection yet (the last
weights are kept); the workload's `make train` recipe is integration work (README.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from reference.model import GPT, GPTConfig
from reference.planner.agent import run_episode
from reference.planner.constraint import StepConstraint
from reference.planner.metrics import aggregate, score_episode
from reference.planner.tasks import (TRAIN_SEED, generate, load_eval_set,
                                     load_generalisation_set, parse_mix)
from reference.train import batches, lr_at, prefetch, train_step


def trajectory_stream(seed: int, p_detour: float, mix: dict[str, float] | None = None):
    """Endless oracle trajectories as (role, text) segments; frozen requests excluded."""
    exclude = {t.request for t in load_eval_set()} | {t.request for t in load_generalisation_set()}
    for traj in generate(seed, sys.maxsize, exclude=exclude, p_detour=p_detour, unique=False,
                         prefix="train-", mix=mix):
        yield traj.segments


def evaluate(model: GPT, tasks, constraint: StepConstraint | None = None) -> dict:
    constraint = constraint or StepConstraint()
    model.eval()
    scores, stops, t0 = [], {}, time.time()
    tokens = mask_s = gen_s = 0.0
    for task in tasks:
        ep = run_episode(model, constraint, task.request)
        scores.append(score_episode(task, ep.steps))
        stops[ep.stop_reason] = stops.get(ep.stop_reason, 0) + 1
        tokens += ep.planner_tokens
        mask_s += ep.mask_s
        gen_s += ep.gen_s
    model.train()
    out = aggregate(scores)
    by_template: dict[str, list[int]] = {}
    for task, sc in zip(tasks, scores):
        by_template.setdefault(task.template, [0, 0])
        by_template[task.template][0] += sc.passed
        by_template[task.template][1] += 1
    out["passed_by_template"] = {k: f"{p}/{n}" for k, (p, n) in sorted(by_template.items())}
    out.update({"stop_reasons": stops, "wall_s": round(time.time() - t0, 1),
                "planner_tokens": int(tokens),
                "mask_us_per_token": round(1e6 * mask_s / max(tokens, 1), 1),
                "forward_us_per_token": round(1e6 * gen_s / max(tokens, 1), 1)})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1200, help="optimizer steps the schedule fits")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="stop after this wall time (0: none)")
    ap.add_argument("--batch-size", type=int, default=16, help="trajectories per step")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--min-lr-frac", type=float, default=0.05,
                    help="final lr as a fraction of peak")
    ap.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    ap.add_argument("--p-detour", type=float, default=0.15,
                    help="share of trajectories with a bad-task detour (masked) and recovery")
    ap.add_argument("--mix", default="",
                    help="template weights, e.g. 'average_length=2,two_longest_times_const=2' "
                         "(unnamed templates weigh 1; default uniform)")
    ap.add_argument("--no-mask", action="store_true", help="learn every token (masking study)")
    ap.add_argument("--seed", type=int, default=TRAIN_SEED, help="seed for weights and data")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--block-size", type=int, default=1280, help="context length in bytes")
    ap.add_argument("--n-layer", type=int, default=4, help="transformer blocks")
    ap.add_argument("--n-embd", type=int, default=128, help="model width")
    ap.add_argument("--n-head", type=int, default=4, help="attention heads")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start from this checkpoint's weights (same widths, rotary positions; "
                         "e.g. reference/checkpoints/nano-react/model.pt, which already copies "
                         "numbers and words from its context)")
    ap.add_argument("--eval-n", type=int, default=100, help="frozen tasks to evaluate at the end")
    ap.add_argument("--gen-n", type=int, default=0,
                    help="generalisation-split tasks to evaluate at the end")
    ap.add_argument("--eval-only", type=Path, default=None, help="evaluate this checkpoint only")
    ap.add_argument("--out", type=Path, default=Path("/tmp/planner"), help="output directory")
    args = ap.parse_args(argv)
    try:
        mix = parse_mix(args.mix) if args.mix else None
    except ValueError as err:
        ap.error(f"--mix: {err}")
    torch.set_num_threads(args.threads)
    if args.eval_only:
        ck = torch.load(args.eval_only, map_location="cpu", weights_only=True)
        model = GPT(GPTConfig(**ck["config"]))
        model.load_state_dict(ck["model"])
        out = {"eval": evaluate(model, load_eval_set()[:args.eval_n])}
        if args.gen_n:
            out["generalisation"] = evaluate(model, load_generalisation_set()[:args.gen_n])
        print(json.dumps(out))
        return
    torch.manual_seed(args.seed)
    config = GPTConfig(block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head,
                       n_embd=args.n_embd, rope=True)
    model = GPT(config)
    if args.init_from is not None:
        init = torch.load(args.init_from, map_location="cpu", weights_only=True)
        want = {k: v for k, v in config.to_dict().items() if k != "block_size"}
        got = {k: v for k, v in init["config"].items() if k != "block_size"}
        if got != want:  # rotary positions: block_size is not in the weights
            ap.error(f"--init-from {args.init_from} has config {init['config']}, not {want}")
        model.load_state_dict(init["model"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_config.json").write_text(json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "model": config.to_dict(), "n_params": model.num_params(),
         "torch": torch.__version__}, indent=2) + "\n")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr,
                            betas=(0.9, 0.99))
    data = prefetch(batches(trajectory_stream(args.seed, args.p_detour, mix), args.seed,
                            args.batch_size, config.block_size, not args.no_mask))
    print(f"nano-planner: {model.num_params():,} parameters, {args.steps} steps, batch "
          f"{args.batch_size}, {'unmasked' if args.no_mask else 'masked'} SFT", flush=True)
    t0, tokens, done = time.time(), 0, 0
    with open(args.out / "progress.jsonl", "w") as progress:
        for step in range(args.steps):
            if args.minutes and time.time() - t0 > 60 * args.minutes:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, args)
            ids, labels = next(data)
            loss = train_step(model, opt, ids, labels)
            tokens += int((ids != 0).sum())
            done = step + 1
            if done % 25 == 0:
                el = time.time() - t0
                rec = {"step": done, "loss": round(loss.item(), 4),
                       "lr": round(lr_at(step, args), 6), "elapsed_s": round(el, 1),
                       "tokens": tokens, "tokens_per_s": round(tokens / el)}
                print(json.dumps(rec), flush=True)
                progress.write(json.dumps(rec) + "\n")
    wall = time.time() - t0
    torch.save({"config": config.to_dict(), "model": model.state_dict(), "step": done,
                "label_masking": not args.no_mask, "seed": args.seed}, args.out / "model.pt")
    result = {"steps_done": done, "steps_planned": args.steps, "train_wall_s": round(wall, 1),
              "tokens": tokens, "eval": evaluate(model, load_eval_set()[:args.eval_n])}
    if args.gen_n:
        result["generalisation"] = evaluate(model, load_generalisation_set()[:args.gen_n])
    (args.out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
