"""The report's plots (loadgen_harness/report.py reads the submission and writes the page).

Each plot_* function draws one PNG from the performance runs (`report.Run`: LoadGen's detail
log and the trace's per-step records) and, for the two curves, a sweep; it returns None when
drawn, else why it was not. Matplotlib is imported inside the functions and used through its
object API (a Figure on the Agg canvas: no pyplot, no display, no global state); every text
taken from the submission passes through `_label` (printable, short, never mathtext).

Limits: the steps reached by fewer than MIN_EPISODES_PER_STEP episodes are not drawn; the
KV-cache plot draws at most SAMPLE_LINES episodes as lines (the median uses them all).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from loadgen_harness.untrusted.safe import text as printable


class Run(Protocol):
    """What a plot reads of one performance run (report.py's Run is one)."""
    system: str
    benchmark: str
    scenario: str
    max_batch: int | None
    episodes: list     # [[(gen_ms, tool_ms, context, kv_bytes)]] per episode

    @property
    def name(self) -> str: ...

    def key(self, k: str) -> float | None: ...

MIN_EPISODES_PER_STEP = 3      # a step index fewer episodes reach is not drawn
SAMPLE_LINES = 200              # episodes drawn as thin lines in the KV-cache plot
DPI = 110


def _label(v, limit: int = 40) -> str:
    """Text for a plot: printable, short, and never matplotlib mathtext (`$` escaped)."""
    return printable(v, limit).replace("$", r"\$")


def _figure(n: int, cols: int = 2, height: float = 3.6):
    """A Figure with n panels, `cols` to a row, drawn by the Agg canvas (no pyplot, no
    display, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = Figure(figsize=(max(6.5, 5.4 * cols), height * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.grid(True, alpha=0.3)
    return fig, axes[:n]


def _step_axis(ax, last: int) -> None:
    """Whole step numbers, 1..last, even when only step 1 has data."""
    from matplotlib.ticker import FixedLocator, MaxNLocator
    ax.xaxis.set_major_locator(FixedLocator(range(1, last + 1)) if last <= 16
                               else MaxNLocator(integer=True))
    ax.set_xlim(0.5, max(1, last) + 0.5)


def _by_benchmark(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.benchmark, []).append(r)
    return out


def _per_step(run: Run, col) -> tuple[list, list, list, list]:
    """Step index (1-based), median, p10 and p90 of col(step) over the episodes that have
    that step; steps fewer than MIN_EPISODES_PER_STEP episodes reach are left out (noise)."""
    import numpy as np
    by: dict[int, list] = {}
    for ep in run.episodes:
        for i, s in enumerate(ep, 1):
            by.setdefault(i, []).append(col(s))
    xs = [i for i in sorted(by) if len(by[i]) >= MIN_EPISODES_PER_STEP]
    q = [np.percentile(by[i], (50, 10, 90)) for i in xs]
    return xs, [v[0] for v in q], [v[1] for v in q], [v[2] for v in q]


def plot_steps(runs, path: Path) -> str | None:
    groups = {b: [r for r in rs if r.episodes] for b, rs in _by_benchmark(runs).items()}
    groups = {b: rs for b, rs in groups.items() if rs}
    if not groups:
        return "no performance run has a readable agent trace"
    fig, axes = _figure(2 * len(groups), cols=2, height=3.3)
    for j, (bench, rs) in enumerate(groups.items()):
        lat, ctx = axes[2 * j], axes[2 * j + 1]
        last = 1
        for r in rs:
            lab = _label(f"{r.system} {r.scenario}")
            xs, med, lo, hi = _per_step(r, lambda s: s[0] + s[1])
            line, = lat.plot(xs, med, marker="o", label=lab)
            lat.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
            xs, med, lo, hi = _per_step(r, lambda s: s[2])
            line, = ctx.plot(xs, med, marker="o", label=lab)
            ctx.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
            last = max([last, *xs])
        for ax in (lat, ctx):
            _step_axis(ax, last)
            ax.set_ylim(bottom=0)
        lat.set(title=_label(f"{bench}: step latency", 80), xlabel="step index",
                ylabel="generation + tool time (ms)")
        ctx.set(title=_label(f"{bench}: context at step start", 80), xlabel="step index",
                ylabel="context length (tokens)")
        lat.legend(fontsize=8)
        ctx.legend(fontsize=8)
    fig.savefig(path)
    return None


def plot_kv(runs, path: Path) -> str | None:
    import numpy as np
    groups = {}
    for bench, rs in _by_benchmark(runs).items():
        r = next((r for r in rs if r.scenario == "Offline" and r.episodes), None) or \
            next((r for r in rs if r.episodes), None)
        if r is not None:
            groups[bench] = r
    if not groups:
        return "no performance run has a readable agent trace"
    fig, axes = _figure(len(groups))
    for ax, (bench, r) in zip(axes, groups.items()):
        step = max(1, len(r.episodes) // SAMPLE_LINES)
        longest = 1
        for ep in r.episodes[::step]:
            ax.plot(range(1, len(ep) + 1), [s[3] / 2**20 for s in ep], color="tab:blue",
                    alpha=0.12, linewidth=0.8, marker="." if len(ep) == 1 else None)
            longest = max(longest, len(ep))
        xs, med, _, _ = _per_step(r, lambda s: s[3] / 2**20)
        _step_axis(ax, longest)
        ax.set_ylim(bottom=0)
        ax.plot(xs, med, color="black", marker="o", label="median over episodes")
        per_tok = [s[3] / s[2] for ep in r.episodes for s in ep if s[2]]
        if per_tok:
            ax.text(0.02, 0.95, f"{np.median(per_tok):,.0f} bytes per context token",
                    transform=ax.transAxes, va="top", fontsize=8)
        ax.set(title=_label(f"{bench} ({r.system} {r.scenario}): KV cache", 80),
               xlabel="step index", ylabel="KV-cache bytes at step start (MiB)")
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path)
    return None


def plot_tool_vs_generation(runs, path: Path) -> str | None:
    rs = [r for r in runs if r.episodes]
    if not rs:
        return "no performance run has a readable agent trace"
    floor = 1e-3  # ms: a tool time of 0 is drawn here, on a log axis
    fig, axes = _figure(1, height=4.4)
    ax = axes[0]
    lo_all, hi_all = [], []
    for r in rs:
        gen = [max(floor, sum(s[0] for s in ep)) for ep in r.episodes]
        tool = [max(floor, sum(s[1] for s in ep)) for ep in r.episodes]
        share = 100 * sum(tool) / (sum(tool) + sum(gen))
        ax.scatter(gen, tool, s=6, alpha=0.4,
                   label=_label(f"{r.name} (tools {share:.2f}% of the time)", 80))
        lo_all += [min(gen), min(tool)]
        hi_all += [max(gen), max(tool)]
    ax.set(xscale="log", yscale="log", xlabel="generation time per episode (ms)",
           ylabel="tool / verifier time per episode (ms)",
           title="Tool against generation time, one dot per episode")
    lo, hi = min(lo_all), max(hi_all)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="equal time")
    ax.legend(fontsize=8, markerscale=3)
    fig.savefig(path)
    return None


def _batch_axis(ax, batches: list[int]) -> None:
    """A log2 x axis with a tick at every batch size drawn."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(batches))))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(batches) / 1.5, max(batches) * 1.5)


def plot_throughput(runs, sweep, path: Path) -> str | None:
    offline = [r for r in runs if r.scenario == "Offline" and r.max_batch
               and r.key("result_samples_per_second")]
    swept = {b: p.get("offline", []) for b, p in (sweep or {}).get("benchmarks", {}).items()}
    benches = sorted({r.benchmark for r in offline} | {b for b, pts in swept.items() if pts})
    if not benches:
        return ("no Offline run with a declared max_batch and a logged samples/s, "
                "and no sweep")
    fig, axes = _figure(len(benches))
    for ax, bench in zip(axes, benches):
        pts = sorted(swept.get(bench, []), key=lambda p: p["max_batch"])
        if pts:
            ax.plot([p["max_batch"] for p in pts], [p["samples_per_second"] for p in pts],
                    marker="o", label=_label(f"sweep ({sweep.get('system', '?')}, "
                                             f"{sweep.get('tasks', '?')} episodes per run)", 80))
        for r in offline:
            if r.benchmark == bench:
                ax.scatter([r.max_batch], [r.key("result_samples_per_second")], marker="*",
                           s=160, zorder=3, label=_label(f"submission: {r.system} Offline run"))
        _batch_axis(ax, [p["max_batch"] for p in pts]
                    + [r.max_batch for r in offline if r.benchmark == bench])
        ax.set(title=_label(f"{bench}: Offline throughput", 80),
               xlabel="max batch (rows per engine)", ylabel="episodes per second")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.legend(fontsize=8)
    fig.savefig(path)
    return None


def plot_latency_qps(runs, sweep, path: Path) -> str | None:
    server = [r for r in runs if r.scenario == "Server"
              and r.key("result_scheduled_samples_per_sec")
              and r.key("result_99.00_percentile_latency_ns")]
    swept = {b: p.get("server", []) for b, p in (sweep or {}).get("benchmarks", {}).items()}
    benches = sorted({r.benchmark for r in server} | {b for b, pts in swept.items() if pts})
    if not benches:
        return "no Server run with a logged scheduled rate and p99 latency, and no sweep"
    fig, axes = _figure(len(benches))
    for ax, bench in zip(axes, benches):
        pts = sorted(swept.get(bench, []), key=lambda p: p["scheduled_qps"])
        if pts:
            xs = [p["scheduled_qps"] for p in pts]
            ax.plot(xs, [p["p99_ms"] for p in pts], marker="o", label="sweep: p99")
            ax.plot(xs, [p["mean_ms"] for p in pts], marker=".", linestyle=":",
                    label="sweep: mean")
        for r in server:
            if r.benchmark != bench:
                continue
            ax.scatter([r.key("result_scheduled_samples_per_sec")],
                       [r.key("result_99.00_percentile_latency_ns") / 1e6], marker="*", s=160,
                       zorder=3, label=_label(f"submission: {r.system} Server p99"))
            bound = r.key("effective_target_latency_ns")
            if bound:
                ax.axhline(bound / 1e6, color="tab:red", linestyle="--", linewidth=1,
                           label=f"latency bound {bound / 1e6:,.0f} ms")
        ax.set(title=_label(f"{bench}: Server latency against offered rate", 80),
               xlabel="offered rate (LoadGen scheduled queries/s)", ylabel="latency (ms)")
        ax.set_xlim(0, ax.get_xlim()[1] * 1.08)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
        ax.legend(fontsize=8)
    fig.savefig(path)
    return None
