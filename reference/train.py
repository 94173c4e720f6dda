"""Train a nano agent workload by masked SFT on oracle trajectories.

    make train-react                                     # the committed checkpoint's recipe
    python -m reference.train nano-react --rope --steps 2000 --out /tmp/rope   # a shorter run
    python -m reference.train nano-react --no-mask       # learn every token (comparison)
    python -m reference.train nano-react --steps 200 --out /tmp/quick   # a quick look
    python -m reference.train nano-codegen --init-from reference/checkpoints/nano-codegen/init/model.pt

nano-codegen trains on oracle programs, a share of them after a real failed attempt and its
verifier feedback (both masked: only the corrected program is learned); its validation is
the share of episodes solved within the attempt bound.

Trajectories are generated on the fly by the seeded task generator (questions of the frozen
evaluation set and of the validation set are excluded). The learning rate follows a warmup +
cosine schedule fitted to `--steps`, so state the budget in steps. Every `--eval-every` steps
after `--eval-start` the agent runs closed-loop on the validation set; the checkpoint with the
best validation exact match is kept (never selected on the frozen evaluation set). The timing
log is written in the MLPerf training log format (`:::MLLOG` lines through `mllog`).

Outputs in --out: model.pt, model.sha256, train_config.json, train_log.txt (MLLOG),
progress.jsonl. Limits: single process, single device; CPU runs use bf16 autocast by default.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from reference.model import GPT, GPTConfig
from reference.react.agent import run_env, run_episode
from reference.react.tasks import (TRAIN_DIST, TRAIN_SEED, VAL_SEED, generate, load_eval_set,
                                   load_generalisation_set, file_sha256, parse_mix)
from reference.sft import IGNORE_INDEX, build_sft_labels, masked_cross_entropy

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _portable(path: Path) -> str:
    """A path as recorded in training logs: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
WORKLOADS = ("nano-react", "nano-codegen")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Workload:
    """What training needs of a workload: validation tasks, a trajectory stream, an episode."""

    def __init__(self, name: str, verifier=None, broad: float = 0.0, variety: str = ""):
        self.name, self.verifier, self.broad, self.variety = name, verifier, broad, variety

    def eval_prompts(self) -> set[str]:
        """Every prompt of the frozen set and of its generalisation split (never trained on)."""
        if self.name == "nano-codegen":
            from reference.codegen.tasks import load_eval_set as load_code
            from reference.codegen.tasks import load_generalisation_set as load_code_gen
            return {t.prompt for t in load_code()} | {t.prompt for t in load_code_gen()}
        return {t.question for t in load_eval_set()} | \
            {t.question for t in load_generalisation_set()}

    def eval_set_path(self) -> Path:
        return Path(__file__).parent / ("codegen" if self.name == "nano-codegen" else "react") \
            / "data" / "eval.jsonl"

    def validation_tasks(self, n: int) -> list:
        if self.name == "nano-codegen":
            from reference.codegen.tasks import generate as gen_code
            tasks = gen_code(VAL_SEED, n, self.verifier, exclude=self.eval_prompts(), prefix="val-")
            if self.variety == "wide":  # half of validation from the broadened distribution
                half = n // 2
                tasks = tasks[:n - half] + gen_code(VAL_SEED + 1, half, self.verifier,
                                                    exclude=self.eval_prompts(), prefix="valw-",
                                                    variety="wide")
            return tasks
        tasks = [t.task for t in generate(VAL_SEED, n, exclude=self.eval_prompts(), prefix="val-")]
        if self.broad:  # half of validation from the broadened training distribution
            half = n // 2
            tasks = tasks[:n - half] + [t.task for t in generate(
                VAL_SEED + 1, half, exclude=self.eval_prompts(), prefix="valb-", dist=TRAIN_DIST)]
        return tasks

    def prompt_of(self, task) -> str:
        return task.prompt if self.name == "nano-codegen" else task.question

    def stream(self, seed: int, exclude: set[str], p_detour: float, mix, variety=False):
        """Endless oracle trajectories as (role, text) segment lists."""
        if self.name == "nano-codegen":
            from reference.codegen.agent import trajectory
            from reference.codegen.tasks import generate as gen_code
            rng = random.Random(seed + 1)
            for chunk in range(sys.maxsize):  # ground truth comes from the sandbox, in chunks
                tasks = gen_code(seed * 1_000_003 + chunk, 256, self.verifier,
                                 exclude=exclude, variety=variety)
                if variety == "wide":  # a third from the frozen set's ranges (random words too)
                    tasks = tasks[:170] + gen_code(seed * 1_000_003 + chunk + 500_000, 86,
                                                   self.verifier, exclude=exclude,
                                                   variety="words")
                    rng.shuffle(tasks)
                for task in tasks:
                    yield trajectory(task, self.verifier, rng, p_repair=p_detour)
        for traj in generate(seed, sys.maxsize, exclude=exclude, p_detour=p_detour,
                             unique=False, mix=mix, broad=self.broad):
            yield traj.segments

    def solved(self, model: GPT, task) -> bool:
        if self.name == "nano-codegen":
            from reference.codegen.agent import CodegenEnv
            return run_env(model, CodegenEnv(task, self.verifier)).stop_reason == "solved"
        return run_episode(model, task.question).answer == task.answer


def batches(stream, seed: int, batch_size: int, block_size: int, mask: bool, pool: int = 8):
    """Endless (ids, labels) batches, each row one trajectory padded to the batch's longest.

    Trajectories are drawn `pool` batches at a time and grouped by length, which cuts the
    padding (wasted compute) roughly in half; the batch order is then shuffled."""
    rng = random.Random(seed)
    while True:
        rows = []
        while len(rows) < batch_size * pool:
            ids, labels = build_sft_labels(next(stream), mask=mask)
            if len(ids) <= block_size:
                rows.append((ids, labels))
        rows.sort(key=lambda r: len(r[0]))
        groups = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        rng.shuffle(groups)
        for group in groups:
            # Round T up to a multiple of 64: a new shape each step makes oneDNN build new
            # kernels (measured: slower steps and a steadily growing resident set).
            T = min(block_size, -(-max(len(r[0]) for r in group) // 64) * 64)
            ids = torch.zeros(batch_size, T, dtype=torch.long)
            labels = torch.full((batch_size, T), IGNORE_INDEX, dtype=torch.long)
            for i, (a, b) in enumerate(group):
                ids[i, :len(a)] = torch.tensor(a)
                labels[i, :len(b)] = torch.tensor(b)
            yield ids, labels


def prefetch(iterator, depth: int = 8):
    """Run a batch iterator on a background thread (torch ops release the GIL meanwhile)."""
    q: queue.Queue = queue.Queue(maxsize=depth)

    def work():
        for item in iterator:
            q.put(item)

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def evaluate_accuracy(model: GPT, workload: Workload, tasks) -> float:
    model.eval()
    correct = sum(workload.solved(model, t) for t in tasks)
    model.train()
    return correct / len(tasks)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Masked SFT of a nano agent workload.")
    ap.add_argument("workload", choices=WORKLOADS, help="which workload to train")
    ap.add_argument("--steps", type=int, default=3200, help="optimizer steps (the schedule fits them)")
    ap.add_argument("--batch-size", type=int, default=32, help="trajectories per step")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--min-lr-frac", type=float, default=0.05, help="final lr as a fraction of peak")
    ap.add_argument("--warmup", type=int, default=200, help="linear warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    ap.add_argument("--p-detour", type=float, default=0.15,
                    help="share of trajectories with an error-recovery detour (nano-codegen: "
                         "a failed attempt and its feedback before the right program)")
    ap.add_argument("--mix", default="",
                    help="training template weights, e.g. 'sum_lengths=1.5,sum_lengths3=0.5' "
                         "(unnamed templates weigh 1; default: uniform)")
    ap.add_argument("--variety", nargs="?", const="words", default="", choices=["words", "wide"],
                    help="nano-codegen: 'words' (bare --variety): random words besides the "
                         "vocabulary, arithmetic-free oracle programs; 'wide': also longer "
                         "lists, 1-4 digit integers, never a held-out word, and half of "
                         "validation from that distribution (see reference/codegen/tasks.py)")
    ap.add_argument("--broad", type=float, default=0.0,
                    help="nano-react: share of trajectories (and of validation) from the "
                         "broadened distribution: random words of 1-12 letters, operands of "
                         "1-6 digits, negatives, decimals (reference/react/tasks.py TRAIN_DIST)")
    ap.add_argument("--seed", type=int, default=TRAIN_SEED, help="seed for weights and data")
    ap.add_argument("--no-mask", action="store_true", help="learn every token, not only the agent's")
    ap.add_argument("--eval-every", type=int, default=400, help="validate every N steps")
    ap.add_argument("--eval-start", type=int, default=1600, help="first step to validate at")
    ap.add_argument("--val-size", type=int, default=150, help="validation tasks")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="autocast dtype")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: reference/checkpoints/<workload>)")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="end after this many steps (the schedule still fits --steps)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start from this checkpoint's weights (a second stage of training)")
    ap.add_argument("--n-layer", type=int, default=GPTConfig.n_layer, help="transformer blocks")
    ap.add_argument("--n-embd", type=int, default=GPTConfig.n_embd, help="model width")
    ap.add_argument("--n-head", type=int, default=GPTConfig.n_head, help="attention heads")
    ap.add_argument("--rope", action="store_true",
                    help="rotary (relative) positions instead of learned absolute ones")
    args = ap.parse_args(argv)
    try:
        mix = parse_mix(args.mix) if args.mix else None
    except ValueError as e:
        ap.error(f"--mix: {e}")
    if mix is not None and args.workload != "nano-react":
        ap.error("--mix applies to nano-react only")
    if args.broad and args.workload != "nano-react":
        ap.error("--broad applies to nano-react only (nano-codegen: --variety)")
    if not 0.0 <= args.broad <= 1.0:
        ap.error("--broad must be between 0 and 1")
    if args.out is None:
        args.out = CHECKPOINT_DIR / args.workload
    if args.init_from is not None and not args.init_from.is_file():
        ap.error(f"--init-from {args.init_from}: no such file")

    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                       rope=args.rope)
    init = None
    if args.init_from is not None:  # checked before anything is written
        try:
            init = torch.load(args.init_from, map_location="cpu", weights_only=True)
            init_config = GPTConfig(**init["config"])  # older checkpoints predate `rope`
        except Exception as e:
            ap.error(f"--init-from {args.init_from}: not a checkpoint of this code ({e})")
        if init_config != config:
            ap.error(f"--init-from {args.init_from} has config {init['config']}, not {config.to_dict()}")

    from mlperf_logging import mllog  # imported here: heavy, and only training needs it
    c = mllog.constants
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_log.txt"
    log_path.unlink(missing_ok=True)
    # call sites are logged relative to the repository, never as this machine's paths
    mllog.config(filename=str(log_path), root_dir=str(REPO_ROOT))  # mllog adds the "/"
    mll = mllog.get_mllogger()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    model = GPT(config).to(device)
    if init is not None:
        model.load_state_dict(init["model"])
    verifier = None
    if args.workload == "nano-codegen":
        from reference.codegen.sandbox import Verifier
        verifier = Verifier(workers=2)
    workload = Workload(args.workload, verifier, args.broad, args.variety)
    val = workload.validation_tasks(args.val_size)
    exclude = workload.eval_prompts() | {workload.prompt_of(t) for t in val}
    mask = not args.no_mask
    resolved = {"args": {k: _portable(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "model": config.to_dict(), "n_params": model.num_params(),
                "device": str(device), "torch": torch.__version__, "commit": git_commit(),
                "eval_set_sha256": file_sha256(workload.eval_set_path())}
    (args.out / "train_config.json").write_text(json.dumps(resolved, indent=2) + "\n")

    mll.start(key=c.INIT_START)
    mll.event(key=c.SUBMISSION_BENCHMARK, value=args.workload)
    mll.event(key=c.SEED, value=args.seed)
    mll.event(key=c.GLOBAL_BATCH_SIZE, value=args.batch_size)
    mll.event(key=c.OPT_NAME, value="adamw")
    mll.event(key=c.OPT_BASE_LR, value=args.lr)
    mll.event(key=c.OPT_WEIGHT_DECAY, value=args.weight_decay)
    mll.event(key=c.OPT_LR_WARMUP_STEPS, value=args.warmup)
    mll.event(key=c.MAX_SEQUENCE_LENGTH, value=config.block_size)
    mll.event(key="train_steps", value=args.steps)
    mll.event(key="label_masking", value=mask)
    mll.event(key="template_mix", value=mix)
    mll.event(key="variety", value=args.variety)
    mll.event(key="broad", value=args.broad)
    mll.event(key="init_from", value=_portable(args.init_from) if args.init_from else None)
    mll.event(key="n_params", value=model.num_params())
    mll.end(key=c.INIT_STOP)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))
    autocast_dtype = torch.bfloat16 if args.dtype == "bf16" else None
    stream = workload.stream(args.seed, exclude, args.p_detour, mix, args.variety)
    data = prefetch(batches(stream, args.seed, args.batch_size, config.block_size, mask))
    print(f"{args.workload}: {model.num_params():,} parameters on {device}, {args.steps} steps, "
          f"batch {args.batch_size}, {'masked' if mask else 'unmasked'} SFT", flush=True)

    mll.start(key=c.RUN_START)
    t_start = time.time()
    tokens_seen = 0
    best = (-1.0, -1)
    status = c.ABORTED
    progress = open(args.out / "progress.jsonl", "w")
    try:
        for step in range(args.stop_after or args.steps):
            lr = lr_at(step, args)
            for g in opt.param_groups:
                g["lr"] = lr
            ids, labels = next(data)
            ids, labels = ids.to(device), labels.to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(ids[:, :-1])
            loss = masked_cross_entropy(logits, labels[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens_seen += int((ids != 0).sum())  # real tokens, padding excluded
            done = step + 1
            if done % 50 == 0 or done == (args.stop_after or args.steps):
                el = time.time() - t_start
                rec = {"step": done, "loss": round(loss.item(), 4), "lr": lr,
                       "elapsed_s": round(el, 1), "tokens": tokens_seen,
                       "tokens_per_s": round(tokens_seen / el)}
                print(json.dumps(rec), flush=True)
                progress.write(json.dumps(rec) + "\n")
                progress.flush()
            last = done == (args.stop_after or args.steps)
            if (done >= args.eval_start and done % args.eval_every == 0) or last:
                acc = evaluate_accuracy(model, workload, val)
                mll.event(key=c.EVAL_ACCURACY, value=acc,
                          metadata={"samples_count": done * args.batch_size, "step": done,
                                    "split": "validation"})
                rec = {"step": done, "val_accuracy": acc, "elapsed_s": round(time.time() - t_start, 1)}
                print(json.dumps(rec), flush=True)
                progress.write(json.dumps(rec) + "\n")
                if acc >= best[0]:
                    best = (acc, done)
                    torch.save({"config": config.to_dict(), "model": model.state_dict(),
                                "step": done, "val_accuracy": acc, "workload": args.workload,
                                "label_masking": mask, "seed": args.seed},
                               args.out / "model.pt")
        status = c.SUCCESS
    finally:
        mll.end(key=c.RUN_STOP, metadata={"status": status})
        progress.close()
        if verifier is not None:
            verifier.close()
    wall = time.time() - t_start
    digest = file_sha256(args.out / "model.pt")
    (args.out / "model.sha256").write_text(f"{digest}  model.pt\n")
    summary = {"best_val_accuracy": best[0], "best_step": best[1], "wall_s": round(wall, 1),
               "tokens": tokens_seen, "tokens_per_s": round(tokens_seen / wall), "sha256": digest}
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
