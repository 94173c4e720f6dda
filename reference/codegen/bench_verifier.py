"""Verifier throughput: ordinary programs through the sandbox, programs/s and latency percentiles.

    python -m reference.codegen.bench_verifier                 # 2 workers, 2,000 programs
    python -m reference.codegen.bench_verifier --workers 2 --programs 4000 --json

The programs are the frozen nano-codegen set's oracle programs (what a good agent writes), run
from as many client threads as there are workers, as the engine does. Prints programs/s, p50
and p99 of one `verify` call, and which OS containment layers were active, so a hardening
change can be compared with the figure before it in one run.

Limits: measures the happy path only; hostile programs are the corpus tests' business.
"""
from __future__ import annotations

import argparse
import json
import resource
import threading
import time

from reference.codegen.sandbox import Verifier
from reference.codegen.tasks import load_eval_set


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(workers: int, n_programs: int) -> dict:
    tasks = load_eval_set()
    jobs = [tasks[i % len(tasks)] for i in range(n_programs)]
    lat: list[float] = []
    failures = 0
    lock = threading.Lock()
    v = Verifier(workers=workers)
    with v:
        for t in tasks[:workers * 4]:  # warm the workers
            v.verify(t.oracle, t.answer)
        cpu0 = _children_cpu_s()

        def client(part):
            nonlocal failures
            for t in part:
                t0 = time.perf_counter()
                ok = v.verify(t.oracle, t.answer).ok
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    lat.append(dt)
                    failures += not ok

        threads = [threading.Thread(target=client, args=(jobs[i::workers],))
                   for i in range(workers)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    # The zygotes (and the children they reaped) count here once they have exited: CPU time
    # per program is steadier than wall time on a shared machine.
    cpu_ms = (_children_cpu_s() - cpu0) * 1e3 / n_programs
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"workers": workers, "programs": n_programs, "failures": failures,
            "programs_per_s": round(n_programs / wall, 1), "p50_ms": round(pct(0.50), 2),
            "p99_ms": round(pct(0.99), 2), "cpu_ms_per_program": round(cpu_ms, 3),
            "containment": v.containment}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="sandbox worker processes")
    ap.add_argument("--programs", type=int, default=2000, help="programs to verify")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    r = run(args.workers, args.programs)
    if args.json:
        print(json.dumps(r))
        return
    print(f"verifier: {r['programs_per_s']} programs/s with {r['workers']} workers, "
          f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['cpu_ms_per_program']} CPU ms/program "
          f"({r['programs']} programs, "
          f"{r['failures']} not ok)")
    print("containment: " + ", ".join(f"{k}={v}" for k, v in r["containment"].items()))


if __name__ == "__main__":
    main()
