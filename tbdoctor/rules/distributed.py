"""Rules for multi-node torch.distributed (distributed.*, in the PyTorch section),
from the system probe's ``network`` facts: the same checks `verify --distributed`
makes before launching, so a cluster's CI job catches them without a job. Pure."""

from __future__ import annotations

from tbdoctor.findings import ERROR, INFO, WARNING, Finding
from tbdoctor.verify import multinode


def _multi_node(env: dict) -> bool:
    """The launcher's variables say several machines, meeting at another host."""
    try:
        many = int(env.get("SLURM_NNODES") or env.get("WORLD_SIZE") or 1) > 1
    except ValueError:
        return False
    return many and not multinode.is_loopback(env.get("MASTER_ADDR") or "remote")


def network(facts: dict) -> list[Finding]:
    system = facts.get("system") or {}
    net = system.get("network")
    if not isinstance(net, dict) or not (facts.get("torch") or {}).get("installed"):
        return []  # torch.distributed's problems, where torch is (probed and) installed
    env, hostname = net.get("env") or {}, system.get("hostname") or "this host"
    findings = []
    if net.get("interfaces"):
        for p in multinode.interface_problems(env, set(net["interfaces"]), hostname):
            findings.append(Finding(p["id"], ERROR, p["detail"].split(", which")[0] + ": no such interface",
                                    detail=p["detail"], hint=p["fix"], section="torch"))
    loop = multinode.loopback_problem(hostname, net.get("hostname_address"), None, env)
    if loop:
        serious = _multi_node(env) and not env.get("GLOO_SOCKET_IFNAME")
        findings.append(Finding(loop["id"], WARNING if serious else INFO,
                                f"The host name resolves to {net['hostname_address']}, a loopback address",
                                detail=loop["detail"] + ("" if serious else "; it matters only for jobs across machines"),
                                hint=loop["fix"], section="torch"))
    return findings


RULES = (network,)
