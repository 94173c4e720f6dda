"""Engine replicas on a Ray cluster: the `tuning.backend: ray` worker pool (issue 36).

    pool = RayPool(spec, tasks, on_done)   # spec: a RunSpec with backend "ray"; ray.init first
    pool.start(); pool.submit(key, idx) ...; pool.stop()

LoadGen stays one process (the driver, loadgen_harness.child). Each replica is a Ray actor
that loads the checkpoint, the evaluation set and the benchmark's environments (its own tools
and sandbox) and runs one continuous-batching engine (a one-worker `WorkerPool` of
loadgen_harness.sut) with `spec.threads` torch threads; Ray reserves `num_cpus` and
`num_gpus` for it and sets its visible device. The driver forwards (key, sample index) pairs,
never tensors or episodes; a replica sends back each finished EpisodeResult, which the driver
completes through LoadGen and writes to the trace with the replica's index and Ray node.

Routing (`spec.routing`):
- round_robin: each query to the next replica at once; each replica queues what it is sent.
- least_loaded: a query waits on the driver until some replica has fewer than `max_batch`
  plus a slack in flight, then goes to the one with fewest. Offline's one big query thus
  spreads by completions (a replica that finishes early takes more), not by count.
Measured in the README ("Running a system on a cluster"); least_loaded is the default.

Faults: a replica that dies (its process killed, its node lost, ray.kill) or whose engine
raises ends the run: the error names the replica, its node and the queries it held, which are
counted, never silently dropped; later queries are not forwarded; `stop` never waits on a dead
replica. Retrying queries elsewhere is deliberately not done: a run whose SUT lost a replica
is not the run the declaration describes.

Limits: only this module imports ray (an optional extra, `pip install -e '.[cluster]'`); the
caller starts or joins the cluster (`connect`). Every replica loads the whole evaluation set
(small) so that only indices travel.
"""
from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import ray

from loadgen_harness.spec import RunSpec

POLL_S = 0.2            # a replica's take() returns at most this long after being asked
READY_TIMEOUT_S = 300   # replicas must load their model within this (else: a clear error)


def connect(spec: RunSpec) -> None:
    """Start a local cluster sized for the spec's replicas, or join the spec's cluster."""
    if ray.is_initialized():
        return
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    if spec.cluster == "local":
        ray.init(num_cpus=max(1, int(spec.replicas * spec.num_cpus + 0.999)),
                 num_gpus=int(spec.replicas * spec.num_gpus + 0.999), **quiet)
    else:
        ray.init(address=spec.cluster, **{k: v for k, v in quiet.items()
                                          if k != "include_dashboard"})


class ReplicaError(RuntimeError):
    """A replica that died or whose engine failed; the run it served cannot finish."""


@dataclass
class _Replica:
    handle: object
    index: int
    where: dict                       # replica, node, host, pid, gpu_ids (Replica.where)
    inflight: dict                    # key -> sample index, sent and not yet completed
    done: int = 0


class Replica:
    """One engine replica (a Ray actor; threaded, so submit and take run beside the engine)."""

    def __init__(self, index: int, spec: dict):
        import torch

        from loadgen_harness.sut import EpisodeFactory, WorkerPool
        from reference.checkpoint import load_model
        from reference.rules import load_rules
        from reference.workloads import get_workload
        from pathlib import Path
        spec = RunSpec.from_dict(spec)
        torch.set_num_threads(spec.threads)
        rules = load_rules(Path(spec.rules)) if spec.rules else load_rules()
        bench = rules.benchmark(spec.benchmark)
        tasks = get_workload(spec.benchmark, bench.workload).load_tasks(Path(spec.eval_set))
        model = load_model(Path(spec.checkpoint), spec.device)
        self.index = index
        self.make_env = EpisodeFactory(rules, spec.benchmark, spec.verifier_workers)
        self.out: queue.Queue = queue.Queue()
        self.pool = WorkerPool(model, tasks, lambda key, idx, r: self.out.put((key, idx, r)),
                               self.make_env, 1, spec.max_batch, spec.draft)
        self.pool.start()

    def where(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"replica": self.index, "node": ctx.get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    def submit(self, items: list) -> None:
        for key, idx in items:
            self.pool.submit(key, idx)

    def take(self, timeout: float = POLL_S) -> list:
        """Finished (key, sample index, EpisodeResult) triples; waits up to `timeout` for the
        first. An engine failure is raised here, so the driver sees it."""
        if self.pool.errors:
            err = self.pool.errors[0]
            raise ReplicaError(f"engine failed: {type(err).__name__}: {err}")
        got = []
        try:
            got.append(self.out.get(timeout=timeout))
            while True:
                got.append(self.out.get_nowait())
        except queue.Empty:
            return got

    def close(self) -> dict:
        """End the engine (after what it was sent) and its environments; its statistics."""
        self.pool.stop()
        self.make_env.close()
        return dict(self.pool.engines[0].stats) if self.pool.engines else {}


class RayPool:
    """WorkerPool's interface (submit, start, stop, errors, engines) over Ray replicas.

    on_done(key, idx, result, served_by) runs on a driver thread, one per replica;
    served_by = {"replica": i, "node": Ray node id}."""

    def __init__(self, spec: RunSpec, on_done: Callable, fault: str | None = None):
        self.on_done = on_done
        self.routing = spec.routing
        if self.routing not in ("least_loaded", "round_robin"):
            raise ValueError(f"unknown routing {self.routing!r}")
        self.cap = spec.max_batch + max(2, spec.max_batch // 4)  # least_loaded: per replica
        self.fault = fault            # tests: "kill-replica": ray.kill replica 1 once it completes
        actor = ray.remote(max_concurrency=4)(Replica)
        handles = [actor.options(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus,
                                 max_restarts=0).remote(i, spec.to_dict())
                   for i in range(spec.replicas)]
        wheres = self._ready(handles)
        self.replicas = [_Replica(h, i, w, {}) for i, (h, w) in enumerate(zip(handles, wheres))]
        self.pending: list = []               # (key, idx) not yet forwarded
        self.cond = threading.Condition()
        self.closing = False
        self.errors: list[BaseException] = []
        self.engines: list = []               # SimpleNamespace(stats=...) per replica, at stop
        self._rr = itertools.cycle(range(len(self.replicas)))
        self.threads = [threading.Thread(target=self._forward, name="ray-forward", daemon=True)]
        self.threads += [threading.Thread(target=self._collect, args=(r,), daemon=True,
                                          name=f"ray-collect-{r.index}") for r in self.replicas]

    @staticmethod
    def _ready(handles) -> list[dict]:
        refs = [h.where.remote() for h in handles]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
        if len(ready) < len(refs):
            for h in handles:
                ray.kill(h)
            raise ReplicaError(f"{len(refs) - len(ready)} of {len(refs)} Ray replicas were not "
                               f"ready within {READY_TIMEOUT_S} s (does the cluster have the "
                               f"CPUs and GPUs they ask for? `ray status` says)")
        return ray.get(refs)

    @property
    def where(self) -> list[dict]:
        return [r.where for r in self.replicas]

    def submit(self, key, idx: int) -> None:
        """Enqueue only (LoadGen's issue_queries thread calls this)."""
        with self.cond:
            self.pending.append((key, idx))
            self.cond.notify_all()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        """Finish everything submitted (or stop at the first error), then end the replicas."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            while not self.errors and (self.pending or any(r.inflight for r in self.replicas)):
                self.cond.wait(POLL_S)
        for t in self.threads:
            t.join(timeout=5 * POLL_S + 1)
        if not self.errors:
            self.engines = [SimpleNamespace(stats=s)
                            for s in ray.get([r.handle.close.remote() for r in self.replicas])]
        for r in self.replicas:
            ray.kill(r.handle)

    def lost(self) -> int:
        """Queries submitted and never completed (after an error: the run's unfinished ones)."""
        with self.cond:
            return len(self.pending) + sum(len(r.inflight) for r in self.replicas)

    # driver threads
    def _choose(self) -> _Replica | None:
        if self.routing == "round_robin":
            return self.replicas[next(self._rr)]
        r = min(self.replicas, key=lambda r: len(r.inflight))
        return r if len(r.inflight) < self.cap else None

    def _forward(self) -> None:
        while True:
            batches: dict[int, list] = {}
            with self.cond:
                while not self.errors and not (self.pending and self._choose() is not None):
                    if self.closing and not self.pending:
                        return
                    self.cond.wait(POLL_S)
                if self.errors:
                    return
                while self.pending:
                    r = self._choose()
                    if r is None:
                        break
                    key, idx = self.pending.pop(0)
                    r.inflight[key] = idx
                    batches.setdefault(r.index, []).append((key, idx))
            for i, items in batches.items():
                self.replicas[i].handle.submit.remote(items)

    def _collect(self, r: _Replica) -> None:
        served = {"replica": r.index, "node": r.where["node"]}
        while True:
            with self.cond:
                if self.errors or (self.closing and not self.pending and not r.inflight):
                    return
            try:
                got = ray.get(r.handle.take.remote(POLL_S), timeout=POLL_S + 60)
            except Exception as err:  # RayActorError, a raised ReplicaError, GetTimeoutError
                self._fail(r, err)
                return
            for key, idx, result in got:
                with self.cond:
                    r.inflight.pop(key, None)
                    r.done += 1
                    self.cond.notify_all()
                self.on_done(key, idx, result, served)
            if self.fault == "kill-replica" and r.index == 1 and r.done >= 1:
                self.fault = None
                ray.kill(r.handle)

    def _fail(self, r: _Replica, err: BaseException) -> None:
        with self.cond:
            if self.errors:  # the run has already ended; one account of it is enough
                return
            held = sorted(r.inflight.values())
            queued = len(self.pending)
            others = sum(len(o.inflight) for o in self.replicas if o is not r)
            done = sum(o.done for o in self.replicas)
            cause = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
            self.errors.append(ReplicaError(
                f"Ray replica {r.index} (node {r.where['node'][:12]}, host {r.where['host']}, "
                f"pid {r.where['pid']}) failed: {type(err).__name__}: {cause[:300]}. Of the "
                f"{done + len(held) + others + queued} queries submitted, {done} completed "
                f"({r.done} by this replica), {len(held)} were in flight on it (sample indices "
                f"{_few(held)}), {others} in flight on the other replicas and {queued} not yet "
                f"forwarded; none of these is completed, and the run ends here."))
            self.cond.notify_all()


def shutdown(pool: RayPool | None, wait_s: float = 10.0) -> None:
    """After a failed run: end the replicas and leave the cluster (a local one stops), within
    `wait_s`, so that no Ray process outlives the run's process."""
    def close():
        for r in (pool.replicas if pool is not None else []):
            ray.kill(r.handle)
        ray.shutdown()
    t = threading.Thread(target=close, daemon=True)
    t.start()
    t.join(wait_s)


def _few(xs: list, n: int = 10) -> str:
    return ", ".join(map(str, xs[:n])) + (f", ... ({len(xs)} in all)" if len(xs) > n else "") \
        if xs else "none"
