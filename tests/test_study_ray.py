"""The study's engine on a Ray cluster of two nodes on this machine (127.0.0.1 only), stopped after the test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neonet_ext.study.scheduler import run_tasks
from neonet_ext.study.tasks import Task

TESTS = Path(__file__).resolve().parent
RAY = Path(sys.executable).parent / "ray"
#: every Ray process on 127.0.0.1 only (cluster mode off; see ray_node.py), and no token to share on one machine
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster(monkeypatch):
    """A head node and a second node on 127.0.0.1, one CPU and a custom resource each (``node_a``, ``node_b``);
    yields the head's address. Ray is stopped afterwards whatever happens."""
    for key, value in LOOPBACK.items():
        monkeypatch.setenv(key, value)  # this process joins as the driver (read when ray is imported)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([str(RAY), "start", "--head", "--port", address.split(":")[1], "--include-dashboard", "false",
                        "--resources", json.dumps({"node_a": 1}), *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([sys.executable, str(TESTS / "ray_node.py"), "start", "--address", address,
                        "--resources", json.dumps({"node_b": 1}), *common], env=env, check=True, capture_output=True, timeout=120)
        yield address
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


def probe(tmp_path: Path, name: str, needs=(), fail: bool = False) -> Task:
    return Task(name=name, workdir=str(tmp_path / name), function="ray_probe:record_node",
                kwargs={"path": str(tmp_path / f"{name}.node"), "seconds": 2.0, "fail": fail}, needs=list(needs), kind="cell")


def test_tasks_run_on_both_nodes_of_a_cluster_in_dependency_order(two_node_cluster, tmp_path):
    import ray

    tasks = [probe(tmp_path, f"cell{i}") for i in range(4)]
    tasks += [probe(tmp_path, "broken", fail=True), probe(tmp_path, "after-all", needs=[t.name for t in tasks[:4]]),
              probe(tmp_path, "after-broken", needs=["broken"])]
    lines = []
    results = run_tasks(tasks, workers=1, threads=1, tracking_uri=None, experiment_name="test", log=lines.append,
                        address=two_node_cluster)
    assert not ray.is_initialized()  # disconnected; the cluster itself is the fixture's to stop
    assert all(r["skipped"] is False for r in results.values())
    assert {name: bool(r["error"]) for name, r in results.items()} == {
        "cell0": False, "cell1": False, "cell2": False, "cell3": False, "broken": True, "after-all": False, "after-broken": True}
    assert "asked to fail" in results["broken"]["error"] and "asked to fail" in (tmp_path / "broken" / "log.txt").read_text()
    assert results["after-broken"]["error"] == "not run: broken failed" and not (tmp_path / "after-broken.node").exists()
    ran_on = {name: (tmp_path / f"{name}.node").read_text() for name in ("cell0", "cell1", "cell2", "cell3", "after-all")}
    assert len(set(ran_on.values())) == 2, ran_on  # both nodes worked
    finished = {name: (tmp_path / f"{name}.node").stat().st_mtime for name in ran_on}
    assert finished["after-all"] > max(v for k, v in finished.items() if k != "after-all")
    assert len(lines) == 7 and any("FAILED" in line and "log:" in line for line in lines)


def test_an_address_without_a_cluster_is_refused_before_anything_starts(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run([sys.executable, "-m", "neonet_ext.study", "--profile", "tiny", "--out", str(out),
                             "--address", f"127.0.0.1:{_free_port()}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no Ray cluster at 127.0.0.1:") and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_local_workers_run_at_the_priority_of_the_study(tmp_path, monkeypatch):
    """Not at Ray's default niceness of 15, where any other job on the machine starves them."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    task = Task(name="niceness", workdir=str(tmp_path / "niceness"), function="ray_probe:record_niceness",
                kwargs={"path": str(tmp_path / "niceness.txt")}, kind="cell")
    results = run_tasks([task], workers=1, threads=1, tracking_uri=None, experiment_name="test", log=lambda _: None)
    assert results["niceness"]["error"] == ""
    assert int((tmp_path / "niceness.txt").read_text()) == os.nice(0)
