"""Masked vs unmasked loss: a workload's training recipe run with and without the loss mask
(`--no-mask` learns every token, prompts and observations included), several seeds per arm at
one budget, each model evaluated closed loop on the whole frozen set and the whole
generalisation split; mean +- std per arm and Welch's t-test, as the bot-with-plan study reported
(masked 0.85 vs unmasked 0.88 pass rate, p = 0.10).

    python -m reference.masking_study nano-planner --steps 600 --seeds 1,2,3
    python -m reference.masking_study nano-react --steps 750 --seeds 12,13
    python -m reference.masking_study nano-react --table          # the table of the runs so far

Each benchmark's study is one entry of STUDIES: the training command of its reference recipe
(the budget and the seed come from the command line) and the evaluation figures it reports.
nano-planner's arms start from the nano-react reference weights (`make train-planner`).
nano-react's arms are its reference's second stage, the broadened fine-tune, started from the
reference's own first-stage weights: the rotary model trained from scratch (masked) that was
the reference until the broadened stage replaced it, read from the commit that holds it and
checked against its SHA-256. Runs already in the study directory are kept, so an interrupted
study resumes where it stopped. Writes `study.json` and prints the table (markdown) for the
model card.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reference.hashing import file_sha256

ARMS = {"masked": [], "unmasked": ["--no-mask"]}
SPLITS = ("frozen", "generalisation")


@dataclass(frozen=True)
class GitBlob:
    """A file as one commit holds it, checked against its SHA-256 once written."""
    commit: str
    path: str
    sha256: str

    def materialise(self, dest: Path) -> Path:
        if dest.is_file() and file_sha256(dest) == self.sha256:
            return dest
        try:
            blob = subprocess.run(["git", "show", f"{self.commit}:{self.path}"],
                                  capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise RuntimeError(f"cannot read {self.path} at commit {self.commit} (this study needs "
                               f"the repository's git history): {e}") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        tmp.write_bytes(blob)
        if file_sha256(tmp) != self.sha256:
            tmp.unlink()
            raise RuntimeError(f"{self.path} at {self.commit} is not the expected weights "
                               f"(SHA-256 {self.sha256[:12]}...)")
        tmp.replace(dest)
        return dest


@dataclass(frozen=True)
class Study:
    train: list[str]                # the training command after `python -m`, less budget/seed/out
    metrics: tuple[str, ...]        # the evaluation summary's figures the table reports
    init: GitBlob | None = None     # weights the arms start from, where not in the tree


STUDIES = {
    "nano-planner": Study(
        train=["reference.planner.train",
               "--init-from", "reference/checkpoints/nano-react/model.pt",
               "--warmup", "50", "--lr", "2e-3", "--mix", "average_length=2,"
               "two_longest_times_const=2,length_diff_arith=1.5,total_lengths_compare=1.5",
               "--eval-n", "1", "--threads", "1"],
        metrics=("pass_rate", "bad_task_rate", "completion_rate")),
    "nano-react": Study(
        train=["reference.train", "nano-react", "--rope", "--broad", "0.7", "--mix",
               "sum_lengths=1.5,sum_lengths3=0.5", "--lr", "1e-3", "--warmup", "50",
               "--threads", "1"],
        metrics=("exact_match",),
        init=GitBlob("f07231b", "reference/checkpoints/nano-react/model.pt",
                     "3d96ec20f3473ab351970f46f1a4088425f43393f25c627976f7d655f640160a")),
}


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def welch_t_test(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(t, degrees of freedom, two-sided p) of Welch's unequal-variance t-test."""
    nx, ny = len(xs), len(ys)
    if nx < 2 or ny < 2:
        raise ValueError("a t-test needs at least two runs per arm")
    vx, vy = statistics.variance(xs) / nx, statistics.variance(ys) / ny
    diff = statistics.fmean(xs) - statistics.fmean(ys)
    if vx + vy == 0.0:
        return (0.0 if diff == 0 else math.copysign(math.inf, diff)), float(nx + ny - 2), \
            (1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx ** 2 / (nx - 1) + vy ** 2 / (ny - 1))
    return t, df, betainc(df / 2.0, 0.5, df / (df + t * t))


def run_arm(benchmark: str, out: Path, arm: str, seed: int, steps: int) -> dict:
    """Train and evaluate one arm and seed (kept if already done); its figures."""
    study = STUDIES[benchmark]
    d = out / f"{arm}-s{seed}"
    result = d / "result.json"
    if result.is_file():
        return json.loads(result.read_text())
    init = ["--init-from", str(study.init.materialise(out / "init.pt"))] if study.init else []
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(d / "train.console", "w") as log:
        subprocess.run([sys.executable, "-m", *study.train, *init, *ARMS[arm],
                        "--steps", str(steps), "--seed", str(seed), "--out", str(d)],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    figures = {"arm": arm, "seed": seed, "steps": steps, "train_wall_s": round(time.time() - t0)}
    for split in SPLITS:
        report = d / f"eval-{split}.json"
        subprocess.run([sys.executable, "-m", "reference.evaluate", benchmark, "--checkpoint",
                        str(d / "model.pt"), "--split", split, "--batch", "64", "--threads", "1",
                        "--json", str(report)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        summary = json.loads(report.read_text())["summary"]
        figures[split] = {m: summary[m] for m in study.metrics}
    result.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def _provenance(run: dict) -> str:
    """How a run's line ends: its training time, or where its figures were restored from."""
    if run.get("train_wall_s") is None:
        return f" ({run.get('restored_from', 'training time not recorded')})"
    return f" (trained in {run['train_wall_s'] / 60:.1f} min)"


def table(runs: list[dict], metrics: tuple[str, ...]) -> str:
    """The model card's markdown: mean +- std per arm, and Welch's p per metric and split."""
    by_arm = {a: [r for r in runs if r["arm"] == a] for a in ARMS}
    lines = ["| split | metric | masked (mean +- std) | unmasked (mean +- std) | Welch t | p |",
             "|---|---|---|---|---|---|"]
    for split in SPLITS:
        for m in metrics:
            xs, ys = ([r[split][m] for r in by_arm[a]] for a in ARMS)
            cells = [f"{statistics.fmean(v):.3f} +- {statistics.stdev(v):.3f} (n={len(v)})"
                     if len(v) > 1 else "-" for v in (xs, ys)]
            try:
                t, _df, p = welch_t_test(xs, ys)
                tp = [f"{t:.2f}", f"{p:.3f}" if p >= 0.001 else "< 0.001"]
            except ValueError:
                tp = ["-", "-"]
            lines.append(f"| {split} | {m.replace('_', ' ')} | {cells[0]} | {cells[1]} | "
                         f"{tp[0]} | {tp[1]} |")
    seeds = "\n".join(f"- {r['arm']} seed {r['seed']}: " + ", ".join(
        f"{s} " + " / ".join(f"{r[s][m]:.3f}" for m in metrics) for s in SPLITS)
        + _provenance(r) for r in runs)
    names = " / ".join(m.replace("_", " ") for m in metrics)
    return "\n".join(lines) + f"\n\nPer run ({names}):\n" + seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benchmark", choices=sorted(STUDIES), help="whose recipe the arms train")
    ap.add_argument("--steps", type=int, default=600, help="the budget of every run (steps)")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds, each run per arm "
                    "(two processes with different seeds may share --out)")
    ap.add_argument("--out", type=Path, default=None,
                    help="study directory (default: build/study/<benchmark>)")
    ap.add_argument("--table", action="store_true", help="print the table of the runs in --out")
    args = ap.parse_args(argv)
    out = args.out or Path("build/study") / args.benchmark
    metrics = STUDIES[args.benchmark].metrics
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds {args.seeds!r}: comma-separated integers")
    if args.steps < 1 or not seeds:
        ap.error("--steps must be >= 1 and --seeds must name at least one seed")
    if args.table:
        runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))]
        if not runs:
            print(f"error: no finished runs in {out}", file=sys.stderr)
            return 2
        if any(set(r[s]) != set(metrics) for r in runs for s in SPLITS):
            print(f"error: {out} holds runs of another benchmark's study", file=sys.stderr)
            return 2
    else:
        runs = []
        try:
            for seed in seeds:  # seed-major: a partial study still has both arms
                for arm in ARMS:
                    print(f"{arm} seed {seed}: training {args.steps} steps ...", flush=True)
                    runs.append(run_arm(args.benchmark, out, arm, seed, args.steps))
                    print(f"  {json.dumps(runs[-1])}", flush=True)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"error: {e} (finished runs are kept in {out}; run again to resume)",
                  file=sys.stderr)
            return 1
        (out / "study.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(table(runs, metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
