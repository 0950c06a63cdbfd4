"""Multi-node verify on torchrun's own c10d rendezvous: where the nodes meet
(flags, else Slurm's or a launcher's environment), what is wrong before
launching (interface names, a hostname that resolves to loopback), and what the
gathered per-node facts say (a node that never joined, versions that differ).

Pure except ``settings`` (may ask ``scontrol``), ``resolve_self``, ``interfaces``
and ``local_problems`` (this machine's name resolution and interfaces).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
from dataclasses import dataclass

from tbdoctor import procs
from tbdoctor.errors import UsageError

DEFAULT_PORT = 29400
IFNAME_VARS = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME")
ENV_VARS = IFNAME_VARS + ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "SLURM_NNODES", "SLURM_NODEID")
COMPARED = ("torch", "cuda", "nccl", "python")  # must be equal on every node


@dataclass
class Nodes:
    nnodes: int
    node_rank: int
    endpoint: str  # HOST:PORT of the c10d store, hosted by node rank 0
    rdzv_id: str
    timeout: float  # rendezvous join and store connection, seconds
    source: str  # flags | slurm | environment

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0].strip("[]")

    def rdzv_conf(self) -> str:
        seconds = max(1, int(round(self.timeout)))
        return f"join_timeout={seconds},read_timeout={seconds},is_host={int(self.node_rank == 0)}"

    def to_dict(self) -> dict:
        return {"nnodes": self.nnodes, "node_rank": self.node_rank, "endpoint": self.endpoint,
                "rdzv_id": self.rdzv_id, "rdzv_timeout": self.timeout, "source": self.source}


def problem(pid: str, detail: str, fix: str) -> dict:
    return {"id": pid, "detail": detail, "fix": fix}


def _int(env: dict, name: str) -> int | None:
    try:
        return int(env[name]) if env.get(name, "").strip() else None
    except ValueError:
        raise UsageError(f"{name}={env[name]!r}: not a whole number") from None


def first_slurm_host(nodelist: str, timeout: float = 10.0) -> str:
    """The first host of SLURM_JOB_NODELIST: ``scontrol show hostnames`` where
    Slurm is installed, else the first entry expanded by hand (``a[01-03],b``)."""
    if shutil.which("scontrol"):
        res = procs.run(["scontrol", "show", "hostnames", nodelist], timeout=timeout)
        if res.ok and res.stdout.split():
            return res.stdout.split()[0]
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return ""
    prefix, ranges = match.groups()
    return prefix + (ranges.split(",")[0].split("-")[0] if ranges else "")


def settings(nnodes: int | None, node_rank: int | None, endpoint: str | None, rdzv_id: str | None,
             timeout: float, env: dict) -> Nodes | None:
    """Flags first, then Slurm's variables, then MASTER_ADDR/WORLD_SIZE/RANK; None: one node."""
    source = "flags"
    if nnodes is None and _int(env, "SLURM_NNODES") and _int(env, "SLURM_NNODES") > 1:
        source, nnodes = "slurm", _int(env, "SLURM_NNODES")
        node_rank = node_rank if node_rank is not None else _int(env, "SLURM_NODEID")
        rdzv_id = rdzv_id or env.get("SLURM_JOB_ID")
        if not endpoint:
            host = env.get("MASTER_ADDR") or first_slurm_host(env.get("SLURM_JOB_NODELIST", ""))
            endpoint = f"{host}:{env.get('MASTER_PORT') or DEFAULT_PORT}" if host else None
    elif nnodes is None and env.get("MASTER_ADDR") and (_int(env, "WORLD_SIZE") or 1) > 1:
        source, nnodes = "environment", _int(env, "WORLD_SIZE")
        node_rank = node_rank if node_rank is not None else _int(env, "RANK")
        endpoint = endpoint or f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT') or DEFAULT_PORT}"
    if nnodes is None or nnodes == 1 and not endpoint:
        return None
    if nnodes < 1:
        raise UsageError(f"--nnodes {nnodes}: must be at least 1")
    if node_rank is None:
        raise UsageError(f"--nnodes {nnodes} needs --node-rank R, this node's rank, 0 to {nnodes - 1} "
                         "(0 hosts the rendezvous)")
    if not 0 <= node_rank < nnodes:
        raise UsageError(f"--node-rank {node_rank}: give this node's rank, 0 to {nnodes - 1} (0 hosts the rendezvous)")
    if not endpoint:
        raise UsageError("--nnodes needs --rdzv-endpoint HOST:PORT (the address of node rank 0)")
    if not re.fullmatch(r"\[?[^\s\[\]]+\]?(:\d{1,5})?", endpoint):
        raise UsageError(f"--rdzv-endpoint {endpoint!r}: expected HOST:PORT")
    if not re.search(r":\d+$", endpoint):
        endpoint = f"{endpoint}:{DEFAULT_PORT}"
    return Nodes(nnodes, node_rank, endpoint, rdzv_id or "tbdoctor-verify", timeout, source)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def interface_problems(env: dict, names: set[str], hostname: str) -> list[dict]:
    """NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME naming an interface this node lacks.
    NCCL: comma-separated prefixes, ``=`` exact, ``^`` an exclusion list (not checked); gloo: exact names."""
    found = []
    for var in IFNAME_VARS:
        value = env.get(var, "").strip()
        if not value or value.startswith("^"):
            continue
        for item in filter(None, (v.strip() for v in value.split(","))):
            exact = var == "GLOO_SOCKET_IFNAME" or item.startswith("=")
            name = item.lstrip("=")
            if not (name in names if exact else any(n.startswith(name) for n in names)):
                found.append(problem(
                    "distributed.interface-missing",
                    f"{var}={value} names {name!r}, which this node ({hostname}) does not have "
                    f"(it has {', '.join(sorted(names))})",
                    f"set {var} to the interface that reaches the other nodes (see `ip -brief address`), or unset it"))
    return found


def loopback_problem(hostname: str, address: str | None, nodes: Nodes | None, env: dict) -> dict | None:
    """This node's hostname resolving to a loopback address (Debian's 127.0.1.1 line):
    other nodes are told to connect to it. Harmless when every node is this machine."""
    if not address or not is_loopback(address):
        return None
    if nodes is not None and nodes.nnodes > 1 and is_loopback(nodes.host):
        return None
    return problem(
        "distributed.hostname-loopback",
        f"this node's hostname {hostname!r} resolves to {address}, a loopback address (an /etc/hosts line): "
        "torch.distributed advertises it to the other nodes, which cannot reach it",
        f"map {hostname} to the node's network address in /etc/hosts (replace the {address} line), "
        "or set GLOO_SOCKET_IFNAME to the network interface (gloo takes its address from the host name)")


def resolve_self() -> tuple[str, str | None]:
    hostname = socket.gethostname()
    try:
        return hostname, socket.gethostbyname(hostname)
    except OSError:
        return hostname, None


def interfaces() -> set[str]:
    try:
        return {name for _index, name in socket.if_nameindex()}
    except OSError:  # no such call on this platform
        return set()


def local_problems(nodes: Nodes, env: dict) -> list[dict]:
    """What stops this node before torchrun starts."""
    hostname, address = resolve_self()
    found = interface_problems(env, interfaces(), hostname)
    loop = loopback_problem(hostname, address, nodes, env)
    if loop and not env.get("GLOO_SOCKET_IFNAME"):  # gloo takes its address from the host name
        found.append(loop)
    return found


def launch_problem(nodes: Nodes, stderr: str) -> dict | None:
    """torchrun ended before the job ran: which rendezvous failure, named."""
    if "RendezvousConnectionError" in stderr or "connection to the C10d store has failed" in stderr:
        return problem(
            "distributed.endpoint-unreachable",
            f"node rank {nodes.node_rank} could not reach the rendezvous at {nodes.endpoint} within "
            f"{nodes.timeout:g}s (refused or timed out)",
            f"start node rank 0 first (it hosts the rendezvous) with the same --rdzv-endpoint; check that "
            f"{nodes.host} resolves and port {nodes.endpoint.rsplit(':', 1)[1]} is open from this node "
            f"(firewall, security group)")
    if "RendezvousTimeoutError" in stderr:
        missing = [r for r in range(nodes.nnodes) if r != nodes.node_rank]
        return problem(
            "distributed.node-missing",
            f"{nodes.nnodes} nodes expected at {nodes.endpoint}, but not all joined within {nodes.timeout:g}s: "
            f"node rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
            f"(or one of them) never joined rendezvous {nodes.rdzv_id!r}",
            "start `tbdoctor verify --distributed` on every node with the same --nnodes, --rdzv-endpoint and "
            "--rdzv-id; check that those nodes can reach the endpoint; raise --rdzv-timeout if they start late")
    return None


def node_table(ranks: list[dict]) -> list[dict]:
    """One row per node (the lowest local rank's facts), by the rendezvous' group rank."""
    rows = {}
    for rank in sorted(ranks, key=lambda r: r.get("rank", 0)):
        facts = rank.get("node") or {}
        row = rows.setdefault(facts.get("group_rank", 0), dict(facts, ranks=[]))
        row["ranks"].append(rank.get("rank"))
        row["seconds"] = max(row.get("seconds") or 0.0, facts.get("seconds") or 0.0)
    return [rows[k] for k in sorted(rows)]


def node_problems(table: list[dict], nnodes: int) -> list[dict]:
    """Nodes that differ in what must be equal, and nodes that are missing."""
    found = []
    for key in COMPARED:
        values = {row.get(key) for row in table}
        if len(values) > 1:
            per = "; ".join(f"node {row.get('group_rank')} ({row.get('hostname')}): {row.get(key)}" for row in table)
            found.append(problem("distributed.version-mismatch", f"{key} differs across nodes: {per}",
                                 f"install the same {key} on every node (one image or one lock file for all)"))
    if len(table) != nnodes:
        found.append(problem("distributed.node-missing",
                             f"{len(table)} of {nnodes} nodes reported", "rerun with -v on every node"))
    return found


def hang_problem(hung: dict, world: int) -> dict:
    """The all_gather after training did not complete within the collective timeout."""
    arrived = hung.get("arrived") or []
    late = [r for r in range(world) if r not in arrived]
    return problem(
        "distributed.collective-hang",
        f"the collective after training did not complete within {hung.get('seconds') or 0:g}s: "
        f"rank{'s' if len(arrived) != 1 else ''} {', '.join(map(str, arrived)) or 'none'} arrived, "
        f"rank{'s' if len(late) != 1 else ''} {', '.join(map(str, late)) or 'none'} did not ({hung.get('error', '')})",
        "look at the ranks that did not arrive (rerun with -v on their nodes): a crash, a hang in training, "
        "or a network path that carries the rendezvous but not the collective (socket interface, firewall)")
