"""A course's checks on a Ray cluster (issue 33): one task per submission, the same board as
the local run, in the same order; Ray an optional extra with a clear line when missing."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from compliance import cli, cluster
from tests.compliance.mutate import apply

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
RESULTS = [f"results/cpu/{b}/{s}/measurements.json" for b in ("nano-react", "nano-codegen",
                                                                        "nano-planner")
           for s in ("Offline", "Server")]

if os.environ.get("CI") != "true":  # CI installs the extra (.ci/run); it must not skip there
    pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    """One local two-CPU cluster for this module's tests (Ray's testing advice: start it
    once, it takes seconds)."""
    import ray
    ray.init(num_cpus=2, num_gpus=1, resources={"a100": 1}, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR", configure_logging=False)
    yield ray
    ray.shutdown()


def _as(dest: Path, name: str) -> Path:
    shutil.copytree(SMOKE, dest)
    for rel in RESULTS:
        apply(dest, {"op": "json_set", "path": rel, "pointer": ["submitter"], "value": name})
    return dest


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    _as(course / "alice", "alice")
    _as(course / "bob", "bob")  # bob copies alice's runs: a copy group
    forged = _as(course / "carol", "carol")
    apply(forged, {"op": "json_set", "path": RESULTS[0], "pointer": ["performance", "value"],
                   "value": 1e9})
    return course


def _comparable(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in ("seconds", "generated", "created", "elapsed_s", "checked_s"):
        data.pop(key, None)
    return data


def test_the_cluster_board_is_the_local_board(tmp_path, ray_local):
    course = _course(tmp_path)
    seed = ["--replay-seed", "12345", "--replay", "0", "--profile", "smoke"]
    assert cli.main(["leaderboard", str(course), "--out", str(tmp_path / "local"), *seed]) == 0
    assert cli.main(["leaderboard", str(course), "--out", str(tmp_path / "ray"), *seed,
                     "--cluster", "local"]) == 0
    local = _comparable(tmp_path / "local/leaderboard.json")
    remote = _comparable(tmp_path / "ray/leaderboard.json")
    assert json.dumps(local, sort_keys=True, default=str) == \
        json.dumps(remote, sort_keys=True, default=str)
    assert (tmp_path / "local/leaderboard.md").read_text() == \
        (tmp_path / "ray/leaderboard.md").read_text()


def test_each_entry_is_one_task_with_its_resources(ray_local):
    seen = cluster.run_tasks("local", _pid_and, [(1,), (2,), (3,)],
                             labels=["a", "b", "c"], progress=lambda label: None)
    assert [x for x, _ in seen] == [1, 2, 3]  # the order of the calls, whatever finished first
    assert all(pid != os.getpid() for _, pid in seen)  # run by Ray's workers, not here


def _pid_and(x):
    import os as _os
    return x, _os.getpid()


def test_node_types_give_a_reproduction_its_resources(tmp_path):
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text("node_types:\n"
                     "  a100: {match: {accelerator_model_name: A100}, "
                     "resources: {num_gpus: 1, a100: 1}}\n"
                     "  cpu: {match: {accelerators_per_node: 0}, resources: {num_cpus: 2}}\n")
    types = cluster.load_node_types(nodes)
    assert cluster.resources_for({"accelerator_model_name": "NVIDIA A100-SXM4-80GB",
                                  "accelerators_per_node": 1}, types) == {"num_gpus": 1, "a100": 1}
    assert cluster.resources_for({"accelerators_per_node": 0}, types) == {"num_cpus": 2}
    assert cluster.resources_for({"accelerators_per_node": 2, "host_processor_core_count": 8},
                                 None) == {"num_cpus": 8, "num_gpus": 2}
    nodes.write_text("node_types: {bad: {resources: {num_gpus: -1}}}\n")
    with pytest.raises(cluster.ClusterError, match="non-negative"):
        cluster.load_node_types(nodes)


def test_a_fake_gpu_resource_places_a_task_only_where_it_is(ray_local):
    """Placement by resource, tested on CPU: the local cluster declares one fake GPU and one
    `a100` node resource; a reproduction asking for them gets the GPU Ray assigns."""
    assert ray_local.cluster_resources().get("a100") == 1.0
    (ids,) = cluster.run_tasks("local", _gpu_ids, [()], resources=[{"num_gpus": 1, "a100": 1}])
    assert ids == [0]


def _gpu_ids():
    import ray
    return [int(i) for i in ray.get_gpu_ids()]


def test_without_ray_cluster_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    (tmp_path / "course").mkdir()
    rc = cli.main(["leaderboard", str(tmp_path / "course"), "--out", str(tmp_path / "b"),
                   "--cluster", "local"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[cluster]'" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()
