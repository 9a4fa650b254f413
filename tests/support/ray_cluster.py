"""Ray for the ``anomalia batch`` tests: :mod:`anomalia.local_ray` with the tests' environment (offline,
this checkout's sources first), so each test stops exactly the Ray processes it started."""

from __future__ import annotations

from support.server import subprocess_env

from anomalia.local_ray import LocalRayCluster, RaySandbox


def sandbox() -> RaySandbox:
    return RaySandbox(subprocess_env(HF_HUB_OFFLINE="1"))


def two_node_cluster() -> LocalRayCluster:
    """Head plus a second node with the custom resource ``node2``; two logical CPUs each."""
    return LocalRayCluster(nodes=2, cpus_per_node=2, env=subprocess_env(HF_HUB_OFFLINE="1"))
