"""`tbdoctor verify --distributed` across nodes, on torchrun's c10d rendezvous:
two real `tbdoctor` processes meet over 127.0.0.1 with gloo, and the classic
multi-node failures are produced for real and named."""

from __future__ import annotations

import json
import re
import os
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import _BOOT, assert_schema, clean_env
from tbdoctor.verify import multinode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_argv(python, tmp_path, rank: int, endpoint: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", _BOOT, "verify", "--json", "--python", str(python), "--logdir",
            str(tmp_path / f"node{rank}"), "--distributed", "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank),
            "--rdzv-endpoint", endpoint, "--no-server", "--no-browser", *extra]


def private_hosts(hosts, argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace whose /etc/hosts is ``hosts`` (a user namespace when not root)."""
    unshare = ["unshare", "-m", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["-r"])
    return unshare + ["sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]


def finish(proc: subprocess.Popen) -> tuple[int, dict]:
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, assert_schema(json.loads(out))


def distributed(report: dict) -> dict:
    return next(p for p in report["phases"] if p["name"] == "distributed")


def test_two_nodes_meet_over_loopback_and_agree(stack_env, tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(node_argv(stack_env.python, tmp_path, rank, endpoint, "--rdzv-timeout", "60"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
             for rank in (1, 0)]  # the joining node first: it waits for node 0's store
    (code1, one), (code0, zero) = finish(nodes[0]), finish(nodes[1])
    assert (code0, code1) == (0, 0), (zero.get("failure"), one.get("failure"))
    for report in (zero, one):
        assert distributed(report)["status"] == "pass" and "2 ranks on 2 nodes" in distributed(report)["detail"]
        table = report["distributed"]["nodes"]
        assert [row["group_rank"] for row in table] == [0, 1] and sorted(r for row in table for r in row["ranks"]) == [0, 1]
        assert {row["torch"] for row in table} == {"2.13.0+cpu"} and all(row["gloo"] for row in table)
        assert report["distributed"]["endpoint"] == endpoint and report["distributed"]["world_size"] == 2
    assert zero["distributed"]["nodes"] == one["distributed"]["nodes"]  # one table, gathered by all_gather_object
    writers = [r for r in (zero, one) if any(p["name"] == "readback" and p["status"] == "pass" for p in r["phases"])]
    assert len(writers) == 1  # global rank 0's node alone wrote and read back the event files
    # the comparison rule on these real gathered rows: a node with another torch is named
    table = [dict(row) for row in zero["distributed"]["nodes"]]
    table[1]["torch"] = "2.12.0+cpu"
    found = multinode.node_problems(table, 2)
    assert [p["id"] for p in found] == ["distributed.version-mismatch"]
    assert "torch differs across nodes" in found[0]["detail"] and "node 1 (" in found[0]["detail"]


def test_nobody_listening_on_the_endpoint_is_named(stack_env, tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    code, report = finish(subprocess.Popen(node_argv(stack_env.python, tmp_path, 1, endpoint, "--rdzv-timeout", "2"),
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()))
    assert code == 1
    assert [p["id"] for p in report["distributed"]["problems"]] == ["distributed.endpoint-unreachable"]
    assert f"could not reach the rendezvous at {endpoint} within 2s" in report["failure"]["reason"]
    assert "start node rank 0 first" in report["failure"]["fix"]


def test_a_node_that_never_starts_is_named(stack_env, tmp_path):
    code, report = finish(subprocess.Popen(
        node_argv(stack_env.python, tmp_path, 0, f"127.0.0.1:{free_port()}", "--rdzv-timeout", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()))
    assert code == 1
    assert [p["id"] for p in report["distributed"]["problems"]] == ["distributed.node-missing"]
    assert "node rank 1 (or one of them) never joined" in report["failure"]["reason"]


def test_socket_interface_the_node_lacks_stops_before_launch(stack_env, tmp_path):
    code, report = finish(subprocess.Popen(
        node_argv(stack_env.python, tmp_path, 0, f"127.0.0.1:{free_port()}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(NCCL_SOCKET_IFNAME="ib7", GLOO_SOCKET_IFNAME="lo")))
    assert code == 1
    assert [p["id"] for p in report["distributed"]["problems"]] == ["distributed.interface-missing"]
    assert "NCCL_SOCKET_IFNAME=ib7 names 'ib7', which this node" in report["failure"]["reason"]
    assert distributed(report)["seconds"] == 0  # nothing launched


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
def test_hostname_resolving_to_127_0_1_1_is_named(stack_env, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
    argv = node_argv(stack_env.python, tmp_path, 1, "192.0.2.10:29400")  # TEST-NET-1: another machine
    proc = subprocess.run(private_hosts(hosts, argv), capture_output=True, text=True, env=clean_env(), timeout=120)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert [p["id"] for p in report["distributed"]["problems"]] == ["distributed.hostname-loopback"]
    assert f"hostname {socket.gethostname()!r} resolves to 127.0.1.1" in report["failure"]["reason"]


def test_launcher_environment_supplies_the_nodes():
    slurm = {"SLURM_NNODES": "4", "SLURM_NODEID": "2", "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu[03-06],cpu1"}
    nodes = multinode.settings(None, None, None, None, 60.0, slurm)
    if not shutil.which("scontrol"):
        assert nodes.endpoint == "gpu03:29400"
    assert (nodes.nnodes, nodes.node_rank, nodes.rdzv_id, nodes.source) == (4, 2, "77", "slurm")
    kube = {"MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "2", "RANK": "1"}
    nodes = multinode.settings(None, None, None, None, 60.0, kube)
    assert (nodes.nnodes, nodes.node_rank, nodes.endpoint, nodes.source) == (2, 1, "job-master-0:23456", "environment")
    assert "is_host=0" in nodes.rdzv_conf()
    assert multinode.settings(None, None, None, None, 60.0, {}) is None


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
def test_check_names_the_same_problems_without_a_job(stack_env, tmp_path):
    """A cluster CI job's `check`: a host name mapped to 127.0.1.1 and a socket interface
    the node lacks, with multi-node variables set (private mount namespace, own /etc/hosts)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
    env = clean_env(NCCL_SOCKET_IFNAME="=ib7", WORLD_SIZE="2", RANK="1", MASTER_ADDR="192.0.2.10")
    argv = [sys.executable, "-c", _BOOT, "check", "--json", "--python", str(stack_env.python)]
    proc = subprocess.run(private_hosts(hosts, argv), capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    found = {c["id"]: c for c in json.loads(proc.stdout)["checks"] if c["id"].startswith("distributed.")}
    assert found["distributed.interface-missing"]["status"] == "error"
    assert "NCCL_SOCKET_IFNAME==ib7 names 'ib7'" in found["distributed.interface-missing"]["title"]
    assert found["distributed.hostname-loopback"]["status"] == "warning"
    assert "resolves to 127.0.1.1" in found["distributed.hostname-loopback"]["title"]


@pytest.mark.parametrize("args, message", [
    (("--nnodes", "2", "--node-rank", "0"), "--nnodes needs --rdzv-endpoint"),
    (("--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"), "--node-rank 2: give this node's rank, 0 to 1"),
    (("--nnodes", "2", "--rdzv-endpoint", "h:1"), "--nnodes 2 needs --node-rank R"),
    (("--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "a b"), "expected HOST:PORT"),
])
def test_bad_node_flags_are_usage_errors(stack_env, args, message):
    proc = subprocess.run([sys.executable, "-c", _BOOT, "verify", "--python", str(stack_env.python),
                           "--distributed", *args], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    no_dist = subprocess.run([sys.executable, "-c", _BOOT, "verify", "--nnodes", "2"], capture_output=True,
                             text=True, env=clean_env(), timeout=60)
    assert no_dist.returncode == 2 and "--nnodes needs --distributed" in no_dist.stderr


def test_loopback_host_name_alone_is_only_info():
    from tbdoctor.rules import distributed as rule
    facts = {"system": {"hostname": "node7", "network": {"hostname_address": "127.0.1.1", "interfaces": ["eth0", "lo"],
                                                         "env": {"GLOO_SOCKET_IFNAME": "eth0"}}},
             "torch": {"installed": True}}
    assert [(f.id, f.status) for f in rule.network(facts)] == [("distributed.hostname-loopback", "info")]
    assert rule.network(dict(facts, torch={"installed": False})) == []  # no torch, no torch.distributed
    facts["system"]["network"].update(hostname_address="10.1.2.3")
    assert rule.network(facts) == []


def test_a_collective_that_hangs_names_the_ranks_that_arrived(stack_env, tmp_path):
    """Nodes started with different --steps: one reaches the all_gather after training while
    the other is still in DDP's all-reduce; the collective timeout ends both, named."""
    endpoint = f"127.0.0.1:{free_port()}"
    late = subprocess.Popen(node_argv(stack_env.python, tmp_path, 1, endpoint, "--rdzv-timeout", "4", "--steps", "300"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    early = subprocess.Popen(node_argv(stack_env.python, tmp_path, 0, endpoint, "--rdzv-timeout", "4", "--steps", "150"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    (code0, zero), (code1, one) = finish(early), finish(late)
    assert (code0, code1) == (1, 1)
    hung = [p for r in (zero, one) for p in (r["distributed"].get("problems") or [])]
    assert [p["id"] for p in hung] == ["distributed.collective-hang"], hung
    assert "did not complete within 4s" in hung[0]["detail"]
    assert re.search(r"rank (\d) arrived, rank (?!\1)\d did not", hung[0]["detail"]), hung[0]["detail"]
