"""A course's checks and reproductions as Ray tasks (`leaderboard --cluster local|ADDRESS`).

    python -m compliance leaderboard submissions/ --out board/ --cluster local
    python -m compliance leaderboard submissions/ --out board/ --cluster ray://head:10001 \\
        --nodes course_nodes.yaml --reproduce 3

One Ray task per submission: a check asks for one CPU; a reproduction asks for the resources
of the system it reproduces (its declared accelerators as `num_gpus`, or a custom resource of
the course's node type, from a small YAML file, below). Results come back in the order of the
entries, so a board is the same as the local run's. Ray is an optional extra
(`pip install -e '.[cluster]'`); without it `--cluster` is one clear line.

A course's node types (`--nodes`), matched against each submission's declaration:

    node_types:
      a100: {match: {accelerator_model_name: A100}, resources: {num_gpus: 1, a100: 1}}
      cpu:  {match: {accelerators_per_node: 0}, resources: {num_cpus: 2}}

What it does not do: move files. Every node must see the submissions folder at the same path
(a shared file system), as Ray's own docs assume for data; a remote cluster's workers need the
suite installed at the same commit.
"""
from __future__ import annotations

from pathlib import Path

from reference.yamlio import YamlError, load_yaml

CHECK_RESOURCES = {"num_cpus": 1}


class ClusterError(Exception):
    """Ray is missing, the cluster cannot be reached, or a node-type file is malformed."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray, an optional extra: pip install -e '.[cluster]'"
                           ) from None
    return ray


def connect(address: str, num_cpus: int | None = None):
    """Join (or, for `local`, start) a Ray cluster; returns the ray module."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
              configure_logging=False)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **kw)
        else:
            ray.init(address=address, **kw)
    except Exception as e:  # Ray raises many types for an unreachable cluster
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                           ) from None
    return ray


def run_tasks(address: str, fn, calls: list[tuple], resources: list[dict] | None = None,
              progress=None, labels: list[str] | None = None) -> list:
    """fn(*call) for every call as a Ray task (its resources: CHECK_RESOURCES unless given);
    the results in the order of `calls`. `progress(label)` as each task finishes."""
    ray = connect(address)
    resources = resources or [CHECK_RESOURCES] * len(calls)
    remote = ray.remote(fn)
    refs = []
    for call, res in zip(calls, resources):
        opts = {k: v for k, v in res.items() if k in ("num_cpus", "num_gpus")}
        custom = {k: v for k, v in res.items() if k not in opts}
        refs.append(remote.options(**opts, **({"resources": custom} if custom else {}))
                    .remote(*call))
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        if progress:
            progress(labels[index[done[0]]] if labels else "")
    return ray.get(refs)


def load_node_types(path: Path) -> dict:
    """The course's node types: {name: {"match": {...}, "resources": {...}}}."""
    try:
        doc = load_yaml(path)
    except YamlError as e:
        raise ClusterError(str(e)) from None
    types = doc.get("node_types") if isinstance(doc, dict) else None
    if not isinstance(types, dict) or not types:
        raise ClusterError(f"{path}: expected a `node_types:` map of name -> {{match, resources}}")
    for name, t in types.items():
        res = t.get("resources") if isinstance(t, dict) else None
        if not isinstance(res, dict) or not all(isinstance(v, (int, float)) and v >= 0
                                                for v in res.values()):
            raise ClusterError(f"{path}: node_types.{name}.resources must map resource names "
                               "to non-negative numbers")
        if not isinstance(t.get("match", {}), dict):
            raise ClusterError(f"{path}: node_types.{name}.match must be a map")
    return types


def resources_for(declaration: dict, node_types: dict | None) -> dict:
    """What a reproduction of a system asks the cluster for: the first node type whose
    `match` the declaration satisfies, else its declared accelerators as GPUs and its cores."""
    decl = declaration if isinstance(declaration, dict) else {}
    for t in (node_types or {}).values():
        match = t.get("match") or {}
        if all(str(decl.get(k, "")).lower().find(str(v).lower()) >= 0 if isinstance(v, str)
               else decl.get(k) == v for k, v in match.items()):
            return dict(t["resources"])
    gpus = decl.get("accelerators_per_node") or 0
    cores = decl.get("host_processor_core_count") or 1
    return {"num_cpus": max(1, int(cores)) if isinstance(cores, int) else 1,
            **({"num_gpus": int(gpus)} if isinstance(gpus, int) and gpus > 0 else {})}
