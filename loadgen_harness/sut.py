"""LoadGen Systems Under Test for the nano agent workloads, and their Query Sample Library.

One LoadGen sample is one whole episode (a nano-react question, or a nano-codegen task with
its generate -> verify -> retry loop). `issue_queries` only enqueues (it runs on LoadGen's
thread, and an exception there aborts or segfaults the process); worker threads, each with its
own continuous-batching engine, run the episodes and complete them. The response payload is
the final answer in UTF-8 (nano-codegen: the last program) with the generated-token count, so
accuracy can be recomputed from `mlperf_log_accuracy.json`.

Scenarios differ in how many episodes an engine batches: Offline fills the batch, Server
admits queries as they arrive, SingleStream runs one at a time.

Limits: the QSL is the frozen evaluation set, fully resident (it is small); torch must be
configured (threads, device) by the caller before workers start.
"""
from __future__ import annotations

import array
import queue
import threading
from typing import Callable

import mlperf_loadgen as lg

from reference.engine import Engine
from reference.episode import EpisodeResult
from reference.rules import Rules
from reference.workloads import get_workload

_STOP = object()
# Decode steps each worker runs on a throwaway engine before a run is timed. A fresh worker
# thread's first steps cost more (its allocator arena grows to the batch's tensors, first
# calls): measured, a fresh process's first engine run took 8% more CPU time than its second
# (nano-react, 200 episodes, 2 workers), which a LoadGen child, new for every run, paid inside
# LoadGen's timing and bench's direct runs did not.
WARM_STEPS = 24


class EpisodeFactory:
    """Makes a benchmark's episode environments from tasks, owning what they share (nano-codegen:
    a sandbox pool), until `close`. The workload registry tells the benchmarks apart."""

    def __init__(self, rules: Rules, benchmark: str, verifier_workers: int = 2):
        """Every bound comes from `rules` (rules.yaml): max_steps (nano-react: agent steps;
        nano-codegen: attempts), max_step_tokens, the sandbox's limits, and the `workload`
        module of a benchmark that is not built in."""
        bench = rules.benchmark(benchmark)
        self._episodes = get_workload(benchmark, bench.workload).episodes(
            bench.max_steps, verifier_workers, bench.max_step_tokens, rules.sandbox)
        self._make = self._episodes.__enter__()

    def __call__(self, task):
        return self._make(task)

    def close(self) -> None:
        if self._episodes is not None:
            self._episodes.__exit__(None, None, None)
            self._episodes = None


class WorkerPool:
    """Episode workers: threads, each with its own continuous-batching engine, pulling
    (key, sample index) items from one shared queue and reporting finished episodes."""

    def __init__(self, model, tasks, on_done: Callable[[object, int, EpisodeResult], None],
                 make_env: Callable, n_workers: int = 1, max_batch: int = 32, draft: int = 0,
                 warm_steps: int = WARM_STEPS):
        """warm_steps: decode steps each worker runs on a throwaway engine before `start`
        returns (0: none); see WARM_STEPS."""
        self.model, self.tasks, self.on_done = model, tasks, on_done
        self.warm_steps = warm_steps
        self._ready: list[threading.Event] = []
        self.draft = draft  # tokens drafted per row and decode step (reference.engine)
        self.table: dict = {}  # the engines' draft table, shared: what one learns all draft
        self.make_env = make_env
        self.max_batch = max_batch
        self.queue: queue.Queue = queue.Queue()
        self.errors: list[BaseException] = []
        self.engines: list[Engine] = []
        self.workers = [threading.Thread(target=self._work, name=f"episode-worker-{i}",
                                         daemon=True) for i in range(n_workers)]

    def submit(self, key, idx: int) -> None:
        self.queue.put((key, idx))

    def start(self) -> None:
        """Start the workers; returns when each has warmed up (see WARM_STEPS) and waits for
        work, so that a timed run starts after it."""
        self._ready = [threading.Event() for _ in self.workers]
        for w in self.workers:
            w.start()
        for ready in self._ready:
            ready.wait()

    def stop(self) -> None:
        """Finish everything submitted, then end the workers."""
        for _ in self.workers:
            self.queue.put(_STOP)
        for w in self.workers:
            w.join()

    def _pull(self, n_free: int, idle: bool):
        items = []
        try:
            item = self.queue.get(block=idle)
            while True:
                if item is _STOP:
                    if items:  # finish what was taken; stop on the next pull
                        self.queue.put(_STOP)
                        return items
                    return None
                items.append(item)
                if len(items) >= n_free:
                    return items
                item = self.queue.get_nowait()
        except queue.Empty:
            return items

    def _work(self) -> None:
        me = int(threading.current_thread().name.rsplit("-", 1)[1])
        try:
            if self.warm_steps and self.tasks:  # a throwaway engine: its own table and cache
                Engine(self.model, self.make_env, max_batch=self.max_batch,
                       draft=self.draft).warm_up(self.tasks[: self.max_batch], self.warm_steps)
            engine = Engine(self.model, self.make_env, max_batch=self.max_batch,
                            draft=self.draft, table=self.table)
        except BaseException as err:  # a worker crash must end the run, not hang it
            self.errors.append(err)
            raise
        finally:
            self._ready[me].set()
        self.engines.append(engine)  # their time breakdowns, for bench

        def pull(n_free, idle):
            got = self._pull(n_free, idle)
            if got is None:
                return None
            return [((key, idx), self.tasks[idx]) for key, idx in got]

        try:
            engine.serve(pull, lambda k, result: self.on_done(k[0], k[1], result))
        except BaseException as err:  # a worker crash must end the run, not hang it
            self.errors.append(err)
            raise


class AgentSUT:
    """Base SUT: LoadGen's queries go into a WorkerPool; finished episodes complete them."""

    scenario = ""
    max_batch = 32

    def __init__(self, model, tasks, make_env: Callable, n_workers: int = 1,
                 on_episode: Callable[..., None] | None = None,
                 max_batch: int | None = None, draft: int = 0, pool: Callable | None = None):
        """`pool(on_done)` makes another pool with WorkerPool's interface (the Ray backend,
        loadgen_harness.ray_pool); its on_done passes a fourth argument, served_by, on to
        on_episode(idx, result, served_by)."""
        self.on_episode = on_episode
        self.pool = pool(self._complete) if pool is not None else WorkerPool(
            model, tasks, self._complete, make_env, n_workers, max_batch or self.max_batch, draft)
        self.completed = 0
        self._lock = threading.Lock()
        self.sut = lg.ConstructSUT(self.issue_queries, self.flush_queries)

    @property
    def errors(self) -> list[BaseException]:
        return self.pool.errors

    # LoadGen's callbacks: enqueue only
    def issue_queries(self, query_samples) -> None:
        for qs in query_samples:
            self.pool.submit(qs.id, qs.index)

    def flush_queries(self) -> None:
        pass

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()
        lg.DestroySUT(self.sut)

    def _complete(self, response_id: int, idx: int, result: EpisodeResult,
                  served_by: dict | None = None) -> None:
        buf = array.array("B", (result.answer or "").encode("utf-8"))
        addr, n = buf.buffer_info()
        # LoadGen copies the bytes inside QuerySamplesComplete; `buf` stays alive until then.
        resp = lg.QuerySampleResponse(response_id, addr, n, result.generated_tokens)
        if self.on_episode is not None:
            if served_by is None:
                self.on_episode(idx, result)
            else:
                self.on_episode(idx, result, served_by)
        lg.QuerySamplesComplete([resp])
        with self._lock:
            self.completed += 1


class OfflineSUT(AgentSUT):
    scenario = "Offline"
    max_batch = 64


class ServerSUT(AgentSUT):
    scenario = "Server"
    max_batch = 32


class SingleStreamSUT(AgentSUT):
    scenario = "SingleStream"
    max_batch = 1


SUTS = {cls.scenario: cls for cls in (OfflineSUT, ServerSUT, SingleStreamSUT)}


class QSL:
    """The frozen evaluation set as LoadGen's Query Sample Library (always resident)."""

    def __init__(self, n_total: int, n_performance: int):
        if n_total <= 0 or not 0 < n_performance <= n_total:
            raise ValueError(f"bad QSL sizes: total {n_total}, performance {n_performance}")
        self.qsl = lg.ConstructQSL(n_total, n_performance, self._load, self._unload)

    def _load(self, indices) -> None:
        pass

    def _unload(self, indices) -> None:
        pass

    def destroy(self) -> None:
        lg.DestroyQSL(self.qsl)
