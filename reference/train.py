"""Train a nano agent workload by masked SFT on oracle trajectories.

    make train-react                                     # the committed checkpoint's recipe
    python -m reference.train nano-react --rope --steps 2000 --out /tmp/rope   # a shorter run
    python -m reference.train nano-react --no-mask       # learn every token (comparison)
    python -m reference.train nano-react --steps 200 --out /tmp/quick   # a quick look
    python -m reference.train nano-codegen --init-from reference/checkpoints/nano-react/model.pt \
        --rope --variety wide
    python -m reference.train nano-planner --init-from reference/checkpoints/nano-react/model.pt \
        --rope --block-size 1280 --batch-size 16

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
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from reference.hashing import file_sha256
from reference.model import GPT, GPTConfig
from reference.react.tasks import TRAIN_SEED
from reference.rules import load_rules
from reference.sft import IGNORE_INDEX, build_sft_labels, masked_cross_entropy
from reference.workloads import UnknownWorkload, get_workload

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _portable(path: Path) -> str:
    """A path as recorded in training logs: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
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


def replay_config(seed: int) -> TrainConfig:
    """The data recipe of the nano-react reference (as its train_config.json records it)."""
    args = json.loads((CHECKPOINT_DIR / "nano-react" / "train_config.json").read_text())["args"]
    return TrainConfig(workload="nano-react", seed=seed, broad=args["broad"], mix=args["mix"],
                       p_detour=args["p_detour"])


def with_replay(stream, cfg: TrainConfig):
    """`stream` with a seeded `cfg.replay` share of nano-react's own training trajectories.

    A stage trained from nano-react's weights forgets what its own data never asks for:
    nano-codegen's programs copy integers of at most 6 digits, nano-react's trajectories copy
    constants and tool results of 7-12 digits, and without them the codegen model learns to end
    every number after its sixth digit. nano-react's evaluation questions stay excluded."""
    from reference.react.training import ReactTraining
    react = ReactTraining(replay_config(cfg.seed))
    replayed = react.stream(cfg.seed + 7_919, react.eval_prompts())
    rng = random.Random(cfg.seed + 104_729)
    while True:
        yield next(replayed) if rng.random() < cfg.replay else next(stream)


def prefetch(iterator, depth: int = 8):
    """Run a batch iterator on a background thread (torch ops release the GIL meanwhile)."""
    q: queue.Queue = queue.Queue(maxsize=depth)

    def work():
        for item in iterator:
            q.put(item)

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


@dataclass
class TrainConfig:
    """One training run, in the nanoGPT style: every knob with its default, overridden from the
    command line (`--steps 2000` sets `steps`). Recorded whole in train_config.json."""
    workload: str = "nano-react"
    steps: int = 3200               # optimizer steps (the schedule fits them)
    batch_size: int = 32            # trajectories per step
    lr: float = 3e-3                # peak learning rate
    min_lr_frac: float = 0.05       # final lr as a fraction of peak
    warmup: int = 200               # linear warmup steps
    weight_decay: float = 0.1
    p_detour: float = 0.15          # share of trajectories with an error-recovery detour
    mix: str = ""                   # nano-react: template weights ('sum_lengths=1.5,...')
    variety: str = ""               # nano-codegen: '', 'words', 'wide', 'copy', 'copy-long'
    broad: float = 0.0              # nano-react: share from the broadened distribution
    space: str = ""                 # 'full': that share from the whole declared input space
    replay: float = 0.0             # share replayed from nano-react's own training data
    miscopy: float = 0.0            # nano-codegen: share of repair detours that miscopy
    seed: int = TRAIN_SEED
    no_mask: bool = False           # learn every token, not only the agent's
    eval_every: int = 400
    eval_start: int = 1600
    val_size: int = 150
    device: str = "auto"
    dtype: str = "bf16"             # autocast dtype: bf16 | fp32
    threads: int = 0                # torch CPU threads (0: all cores)
    out: Path | None = None         # default: reference/checkpoints/<workload>
    stop_after: int = 0             # end after this many steps (the schedule still fits steps)
    init_from: Path | None = None   # start from this checkpoint's weights
    n_layer: int = GPTConfig.n_layer
    n_embd: int = GPTConfig.n_embd
    n_head: int = GPTConfig.n_head
    rope: bool = False              # rotary (relative) positions instead of learned ones
    block_size: int = GPTConfig.block_size  # context in tokens (nano-planner: 1280)

    @property
    def mask(self) -> bool:
        return not self.no_mask

    @property
    def last_step(self) -> int:
        return self.stop_after or self.steps

    def model_config(self) -> GPTConfig:
        return GPTConfig(n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         rope=self.rope, block_size=self.block_size)

    def to_dict(self) -> dict:
        return {f.name: _portable(v) if isinstance(v := getattr(self, f.name), Path) else v
                for f in fields(self)}


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac
                     + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def evaluate_accuracy(model: GPT, data, tasks) -> float:
    model.eval()
    correct = sum(data.solved(model, t) for t in tasks)
    model.train()
    return correct / len(tasks)


def parse_args(argv=None) -> TrainConfig:
    """The command line as a TrainConfig; a user mistake is an argparse error, never a
    traceback, and is found before anything is written."""
    d = TrainConfig()
    ap = argparse.ArgumentParser(description="Masked SFT of a nano agent workload.")
    ap.add_argument("workload", metavar="benchmark",
                    help="which benchmark to train (nano-react, nano-codegen, nano-planner)")
    ap.add_argument("--steps", type=int, default=d.steps,
                    help="optimizer steps (the schedule fits them)")
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="trajectories per step")
    ap.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    ap.add_argument("--min-lr-frac", type=float, default=d.min_lr_frac,
                    help="final lr as a fraction of peak")
    ap.add_argument("--warmup", type=int, default=d.warmup, help="linear warmup steps")
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    ap.add_argument("--p-detour", type=float, default=d.p_detour,
                    help="share of trajectories with an error-recovery detour (nano-codegen: "
                         "a failed attempt and its feedback before the right program)")
    ap.add_argument("--mix", default=d.mix,
                    help="nano-react, nano-planner: training template weights, e.g. "
                         "'sum_lengths=1.5,sum_lengths3=0.5' "
                         "(unnamed templates weigh 1; default: uniform)")
    ap.add_argument("--variety", nargs="?", const="words", default=d.variety,
                    choices=["words", "wide", "copy", "copy-long"],
                    help="nano-codegen: 'words' (bare --variety): random words besides the "
                         "vocabulary, arithmetic-free oracle programs; 'wide': also longer "
                         "lists, 1-6 digit integers, never a held-out word, and half of "
                         "validation from that distribution; 'copy': 'wide' with a third of "
                         "the sortable lists made of quoted digit strings of 1-12 digits; "
                         "'copy-long': those string lists 2-16 long, a third of them words "
                         "(see reference/codegen/tasks.py)")
    ap.add_argument("--broad", type=float, default=d.broad,
                    help="nano-react: share of trajectories (and of validation) from the "
                         "broadened distribution: random words of 1-12 letters, operands of "
                         "1-6 digits, negatives, decimals (reference/react/tasks.py TRAIN_DIST)")
    ap.add_argument("--space", choices=["", "full"], default=d.space,
                    help="'full': the broadened share (nano-react, nano-planner: --broad) is drawn "
                         "from the whole declared input space (mixed case, repeated letters, "
                         "words of 1-20 letters, strings up to 60 characters, counts up to 6, "
                         "1-8 digit operands; reference/space.py), never a held-out value")
    ap.add_argument("--replay", type=float, default=d.replay,
                    help="a workload trained from nano-react's weights: this share of its "
                         "trajectories replayed from nano-react's own training data (the recipe "
                         "its reference checkpoint records), so the stage keeps what they knew "
                         "(copying 7-12 digit numbers, which nano-codegen's programs never do)")
    ap.add_argument("--miscopy", type=float, default=d.miscopy,
                    help="nano-codegen: this share of the repair detours (--p-detour) fail by "
                         "miscopying an argument (a digit dropped or doubled, a list element "
                         "skipped or repeated), so the repair learns to copy again from the task")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed for weights and data")
    ap.add_argument("--no-mask", action="store_true",
                    help="learn every token, not only the agent's")
    ap.add_argument("--eval-every", type=int, default=d.eval_every, help="validate every N steps")
    ap.add_argument("--eval-start", type=int, default=d.eval_start,
                    help="first step to validate at")
    ap.add_argument("--val-size", type=int, default=d.val_size, help="validation tasks")
    ap.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default=d.dtype, help="autocast dtype")
    ap.add_argument("--threads", type=int, default=d.threads,
                    help="torch CPU threads (0: all cores)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: reference/checkpoints/<workload>)")
    ap.add_argument("--stop-after", type=int, default=d.stop_after,
                    help="end after this many steps (the schedule still fits --steps)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start from this checkpoint's weights (a second stage of training)")
    ap.add_argument("--n-layer", type=int, default=d.n_layer, help="transformer blocks")
    ap.add_argument("--n-embd", type=int, default=d.n_embd, help="model width")
    ap.add_argument("--n-head", type=int, default=d.n_head, help="attention heads")
    ap.add_argument("--block-size", type=int, default=d.block_size,
                    help="context length in tokens (rotary positions: free to differ from an "
                         "--init-from checkpoint's)")
    ap.add_argument("--rope", action="store_true",
                    help="rotary (relative) positions instead of learned absolute ones")
    cfg = TrainConfig(**vars(ap.parse_args(argv)))
    try:
        workload = get_workload(cfg.workload)
    except UnknownWorkload as e:
        ap.error(str(e))
    problem = workload.check_train_options(cfg)
    if problem:
        ap.error(problem)
    try:
        workload.parse_mix(cfg.mix) if cfg.mix else None
    except ValueError as e:
        ap.error(f"--mix: {e}")
    if not 0.0 <= cfg.broad <= 1.0:
        ap.error("--broad must be between 0 and 1")
    if not 0.0 <= cfg.replay < 1.0:
        ap.error("--replay must be at least 0 and below 1")
    if not 0.0 <= cfg.miscopy <= 1.0:
        ap.error("--miscopy must be between 0 and 1")
    if cfg.out is None:
        cfg.out = CHECKPOINT_DIR / cfg.workload
    if cfg.init_from is not None and not cfg.init_from.is_file():
        ap.error(f"--init-from {cfg.init_from}: no such file")
    try:
        load_init(cfg)
    except ValueError as e:
        ap.error(str(e))
    return cfg


def load_init(cfg: TrainConfig) -> dict | None:
    """The --init-from checkpoint, checked against the run's model shape (ValueError if not)."""
    if cfg.init_from is None:
        return None
    config = cfg.model_config()
    try:
        init = torch.load(cfg.init_from, map_location="cpu", weights_only=True)
        init_config = GPTConfig(**init["config"])  # older checkpoints predate `rope`
    except Exception as e:
        raise ValueError(f"--init-from {cfg.init_from}: "
                         f"not a checkpoint of this code ({e})") from None
    if config.rope and init_config.rope:  # rotary positions: no weight depends on block_size
        init_config = replace(init_config, block_size=config.block_size)
    if init_config != config:
        raise ValueError(f"--init-from {cfg.init_from} has config {init['config']}, "
                         f"not {config.to_dict()}")
    return init


def log_run_header(mll, c, cfg: TrainConfig, model: GPT) -> None:
    mll.start(key=c.INIT_START)
    mll.event(key=c.SUBMISSION_BENCHMARK, value=cfg.workload)
    mll.event(key=c.SEED, value=cfg.seed)
    mll.event(key=c.GLOBAL_BATCH_SIZE, value=cfg.batch_size)
    mll.event(key=c.OPT_NAME, value="adamw")
    mll.event(key=c.OPT_BASE_LR, value=cfg.lr)
    mll.event(key=c.OPT_WEIGHT_DECAY, value=cfg.weight_decay)
    mll.event(key=c.OPT_LR_WARMUP_STEPS, value=cfg.warmup)
    mll.event(key=c.MAX_SEQUENCE_LENGTH, value=model.config.block_size)
    mll.event(key="train_steps", value=cfg.steps)
    mll.event(key="label_masking", value=cfg.mask)
    mll.event(key="template_mix",
              value=get_workload(cfg.workload).parse_mix(cfg.mix) if cfg.mix else None)
    mll.event(key="variety", value=cfg.variety)
    mll.event(key="broad", value=cfg.broad)
    mll.event(key="replay", value=cfg.replay)
    mll.event(key="miscopy", value=cfg.miscopy)
    mll.event(key="init_from", value=_portable(cfg.init_from) if cfg.init_from else None)
    mll.event(key="n_params", value=model.num_params())
    mll.end(key=c.INIT_STOP)


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.99))


def train(cfg: TrainConfig) -> dict:
    """Run one training to cfg.out; returns the summary (also written as train_summary.json)."""
    from mlperf_logging import mllog  # imported here: heavy, and only training needs it
    c = mllog.constants
    cfg.out.mkdir(parents=True, exist_ok=True)
    log_path = cfg.out / "train_log.txt"
    log_path.unlink(missing_ok=True)
    # call sites are logged relative to the repository, never as this machine's paths
    mllog.config(filename=str(log_path), root_dir=str(REPO_ROOT))  # mllog adds the "/"
    mll = mllog.get_mllogger()

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    config = cfg.model_config()
    model = GPT(config).to(device)
    init = load_init(cfg)
    if init is not None:
        model.load_state_dict(init["model"])
    workload = get_workload(cfg.workload)
    eval_set = load_rules().benchmark(cfg.workload).eval_set
    with workload.training(cfg) as data:
        val = data.validation_tasks(cfg.val_size)
        exclude = data.eval_prompts() | {workload.question(t) for t in val}
        resolved = {"args": cfg.to_dict(), "model": config.to_dict(),
                    "n_params": model.num_params(), "device": str(device),
                    "torch": torch.__version__, "commit": git_commit(),
                    "eval_set_sha256": file_sha256(eval_set)}
        (cfg.out / "train_config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        log_run_header(mll, c, cfg, model)
        stream = data.stream(cfg.seed, exclude)
        if cfg.replay:
            stream = with_replay(stream, cfg)
        batches_ = prefetch(batches(stream, cfg.seed, cfg.batch_size, config.block_size, cfg.mask))
        print(f"{cfg.workload}: {model.num_params():,} parameters on {device}, {cfg.steps} steps, "
              f"batch {cfg.batch_size}, {'masked' if cfg.mask else 'unmasked'} SFT", flush=True)
        best, tokens_seen, wall = run_steps(cfg, model, device, batches_, data, val, mll, c)
    digest = file_sha256(cfg.out / "model.pt")
    (cfg.out / "model.sha256").write_text(f"{digest}  model.pt\n")
    summary = {"best_val_accuracy": best[0], "best_step": best[1], "wall_s": round(wall, 1),
               "tokens": tokens_seen, "tokens_per_s": round(tokens_seen / wall), "sha256": digest}
    (cfg.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return summary


def train_step(model: GPT, opt, ids: torch.Tensor, labels: torch.Tensor,
               autocast_dtype=torch.bfloat16) -> torch.Tensor:
    """One optimizer step of masked SFT on a batch (next-token loss where labels are not
    IGNORE_INDEX, gradients clipped to norm 1); returns the loss."""
    with torch.autocast(ids.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = model(ids[:, :-1])
    loss = masked_cross_entropy(logits, labels[:, 1:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def run_steps(cfg: TrainConfig, model: GPT, device, data_iter, data, val, mll, c):
    """The optimisation loop: progress every 50 steps, validation from eval_start every
    eval_every steps, the best validated weights kept in cfg.out/model.pt."""
    opt = make_optimizer(model, cfg)
    autocast_dtype = torch.bfloat16 if cfg.dtype == "bf16" else None
    mll.start(key=c.RUN_START)
    t_start = time.time()
    tokens_seen = 0
    best = (-1.0, -1)
    status = c.ABORTED
    progress = open(cfg.out / "progress.jsonl", "w")

    def record(rec: dict) -> None:
        print(json.dumps(rec), flush=True)
        progress.write(json.dumps(rec) + "\n")
        progress.flush()

    try:
        for step in range(cfg.last_step):
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            ids, labels = next(data_iter)
            ids, labels = ids.to(device), labels.to(device)
            loss = train_step(model, opt, ids, labels, autocast_dtype)
            tokens_seen += int((ids != 0).sum())  # real tokens, padding excluded
            done = step + 1
            last = done == cfg.last_step
            if done % 50 == 0 or last:
                el = time.time() - t_start
                record({"step": done, "loss": round(loss.item(), 4), "lr": lr,
                        "elapsed_s": round(el, 1), "tokens": tokens_seen,
                        "tokens_per_s": round(tokens_seen / el)})
            if (done >= cfg.eval_start and done % cfg.eval_every == 0) or last:
                acc = evaluate_accuracy(model, data, val)
                mll.event(key=c.EVAL_ACCURACY, value=acc,
                          metadata={"samples_count": done * cfg.batch_size, "step": done,
                                    "split": "validation"})
                record({"step": done, "val_accuracy": acc,
                        "elapsed_s": round(time.time() - t_start, 1)})
                if acc >= best[0]:
                    best = (acc, done)
                    torch.save({"config": model.config.to_dict(), "model": model.state_dict(),
                                "step": done, "val_accuracy": acc, "workload": cfg.workload,
                                "label_masking": cfg.mask, "seed": cfg.seed},
                               cfg.out / "model.pt")
        status = c.SUCCESS
    finally:
        mll.end(key=c.RUN_STOP, metadata={"status": status})
        progress.close()
    return best, tokens_seen, time.time() - t_start


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
