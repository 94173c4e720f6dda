"""The System Under Test on a Ray cluster (issue 36): replicas as Ray actors, LoadGen on the
driver, traces that name replica and node, a killed replica that ends the run with every query
accounted for, and placement on (fake) GPUs. One local two-CPU cluster for the module."""
import json
import os
from pathlib import Path

import pytest

from loadgen_harness.runner import RunError, run_test
from loadgen_harness.spec import RunSpec, Tuning
from loadgen_harness.system import load_system, tuning_problems
from loadgen_harness.trace import trace_validator
from compliance.tracecheck import record_ok, record_problem

if os.environ.get("CI") != "true":  # CI installs the extra (.ci/run); it must not skip there
    pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    """A local cluster with two CPUs and one fake GPU (a declared resource: Ray hands it out
    and sets CUDA_VISIBLE_DEVICES, no GPU needed); the LoadGen runs' child processes join it
    by its address."""
    import ray
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


# Each run starts Ray actors that import torch and load a model: seconds on an idle machine,
# minutes on a busy one (two busy loops on both cores gave 180 s); the watchdog here only
# stops a real hang, so it is generous.
def _spec(tmp_path, ckpt, eval_set, address, scenario="Offline", mode="AccuracyOnly",
          **extra) -> dict:
    return {"benchmark": "nano-react", "scenario": scenario, "mode": mode,
            "out_dir": str(tmp_path / f"{scenario}-{mode}"), "checkpoint": str(ckpt),
            "eval_set": str(eval_set), "settings": {}, "threads": 1, "backend": "ray",
            "replicas": 2, "num_cpus": 1.0, "cluster": address, **extra}


def _trace(spec: dict) -> list[dict]:
    lines = (Path(spec["out_dir"]) / "agent_trace.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_cpu_ray_system_is_two_one_thread_replicas_on_this_machine():
    doc = load_system("cpu-ray")
    t = Tuning.of(doc["tuning"], "nano-react", "Offline")
    assert (t.backend, t.replicas, t.num_cpus, t.threads, t.cluster) == ("ray", 2, 1.0, 1, "local")
    same = {k: v for k, v in load_system("cpu")["declaration"].items()
            if k not in ("system_name", "notes")}
    assert same.items() <= doc["declaration"].items()  # the same hardware as systems/cpu.yaml
    assert RunSpec.from_dict({"benchmark": "b", "scenario": "Offline", "mode": "AccuracyOnly",
                              "out_dir": "o", "checkpoint": "c", "eval_set": "e",
                              "settings": {}, **t.run_fields()}).replicas == 2


def test_replicas_cpus_beyond_the_machine_are_a_tuning_problem():
    doc = load_system("cpu-ray")
    found = {"host_processor_core_count": 2, "accelerators": []}
    assert tuning_problems(doc, found, ["nano-react", "nano-codegen", "nano-planner"]) == []
    doc["tuning"]["replicas"] = 3
    doc["tuning"]["num_gpus"] = 1
    problems = tuning_problems(doc, found, ["nano-react", "nano-codegen", "nano-planner"])
    assert any("3 Ray replicas x 1 CPUs = 3 cores" in p for p in problems)
    assert any("3 Ray replicas x 1 GPUs = 3 GPUs, but the machine has 0" in p for p in problems)
    doc["tuning"]["cluster"] = "10.0.0.1:6379"  # a remote cluster's nodes are not this machine
    assert tuning_problems(doc, found, ["nano-react", "nano-codegen", "nano-planner"]) == []


@pytest.mark.parametrize("routing", ["least_loaded", "round_robin"])
def test_every_sample_is_answered_once_and_its_trace_names_replica_and_node(
        tmp_path, tiny_checkpoint, small_eval_set, ray_local, routing):
    s = _spec(tmp_path, tiny_checkpoint, small_eval_set, ray_local, routing=routing)
    status = run_test(s, timeout_s=600)
    assert status["ok"] and status["completed"] == 12
    assert [w["replica"] for w in status["replicas"]] == [0, 1]
    trace = _trace(s)
    assert sorted(r["qsl_idx"] for r in trace) == list(range(12))
    nodes = {w["node"] for w in status["replicas"]}
    for rec in trace:
        assert not list(trace_validator().iter_errors(rec))
        assert record_ok(rec)  # the checker's T601 reads these records
        assert rec["replica"] in (0, 1) and rec["node"] in nodes
    assert {r["replica"] for r in trace} == {0, 1}  # both replicas served


def test_ray_replicas_give_the_local_pools_answers(tmp_path, tiny_checkpoint, small_eval_set,
                                                   ray_local):
    ray_spec = _spec(tmp_path / "ray", tiny_checkpoint, small_eval_set, ray_local, draft=8)
    local = {k: v for k, v in ray_spec.items()
             if k not in ("backend", "replicas", "num_cpus", "cluster")}
    local.update(out_dir=str(tmp_path / "local"), workers=2)
    run_test(ray_spec, timeout_s=600)
    run_test(local, timeout_s=600)

    def episodes(spec):
        return sorted((r["qsl_idx"], r["answer"], [st["text"] for st in r["steps"]])
                      for r in _trace(spec))
    assert episodes(ray_spec) == episodes(local)
    assert "replica" not in _trace(local)[0]  # the local backend's traces are as before


def test_a_killed_replica_ends_the_run_with_every_query_accounted_for(
        tmp_path, tiny_checkpoint, small_eval_set, ray_local):
    """ray.kill on replica 1 after its first completions: the run fails at once, naming the
    replica, and completed + in flight + not forwarded = submitted; it never hangs."""
    s = _spec(tmp_path, tiny_checkpoint, small_eval_set, ray_local, fault="kill-replica",
              max_batch=1)
    with pytest.raises(RunError) as err:
        run_test(s, timeout_s=600)
    msg = str(err.value)
    assert "Ray replica 1" in msg and "ActorDiedError" in msg and "the run ends here" in msg
    status = json.loads((Path(s["out_dir"]) / "run_status.json").read_text())
    assert status["ok"] is False and status["completed"] == len(_trace(s))


def test_killing_a_replica_of_a_pool_directly_reports_its_queries(ray_local, tiny_checkpoint,
                                                                  small_eval_set, tmp_path):
    """The pool itself, in this process: ray.kill from outside, mid-run; stop() returns, and
    every submitted query is either completed or counted as lost."""
    import ray

    from loadgen_harness.ray_pool import RayPool
    spec = RunSpec.from_dict(_spec(tmp_path, tiny_checkpoint, small_eval_set, ray_local,
                                   max_batch=1))
    done = []
    pool = RayPool(spec, lambda key, idx, result, served: done.append(idx))
    ray.kill(pool.replicas[0].handle)
    for i in range(12):
        pool.submit(i, i)
    pool.start()
    pool.stop()
    assert pool.errors and "Ray replica 0" in str(pool.errors[0])
    assert len(done) + pool.lost() == 12


def test_a_replica_asking_for_a_gpu_gets_the_clusters_gpu(ray_local):
    """Placement on a cluster that declares a fake GPU: Ray gives the replica that GPU's id and
    sets its visible device (what a real multi-GPU node does per replica)."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def seen():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    ids, visible = ray.get(seen.remote())
    assert [str(i) for i in ids] == ["0"] and visible == "0"


def test_a_replica_of_the_pool_is_placed_on_the_gpu(ray_local, tiny_checkpoint, small_eval_set,
                                                    tmp_path):
    from loadgen_harness.ray_pool import RayPool
    spec = RunSpec.from_dict(_spec(tmp_path, tiny_checkpoint, small_eval_set, ray_local,
                                   replicas=1, num_cpus=0.5, num_gpus=1.0))
    pool = RayPool(spec, lambda *a: None)
    try:
        assert pool.where[0]["gpu_ids"] == ["0"]
    finally:
        pool.start()
        pool.stop()


def test_the_checker_accepts_served_records_and_names_a_bad_replica():
    rec = {"schema_version": 1, "seq": 0, "qsl_idx": 0, "task_id": "t", "mode": "AccuracyOnly",
           "question": "q", "answer": "a", "stop_reason": "final_answer", "latency_ms": 1.0,
           "generated_tokens": 1, "replica": 1, "node": "abc",
           "steps": [{"text": "x", "tool": None, "tool_input": None, "observation": None,
                      "context_tokens": 1, "kv_cache_bytes": 1, "generated_tokens": 1,
                      "generation_ms": 1.0, "tool_ms": 0.0}]}
    assert record_ok(rec) and not list(trace_validator().iter_errors(rec))
    assert record_problem({**rec, "replica": -1}) == "/replica: not a non-negative integer"
    no_node = {k: v for k, v in rec.items() if k != "node"}
    assert not record_ok(no_node) and list(trace_validator().iter_errors(no_node))
