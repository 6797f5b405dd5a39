"""A lab of Linux network namespaces running real Net-SNMP snmpd, lldpd and sshd (root only).

The simulated network (lab.sim) answers like devices; this lab *is* small Linux routers, so the
integration tests and the benchmark meet the real agent: its GETBULK answers, its v3 engine
and key checks, its interface cache, its LLDP-MIB through AgentX, its link traps.

Shape of a lab (`NamespaceLab(nodes, links)`)::

      root namespace                 PREFIX-mgmt                    PREFIX-ce1, PREFIX-pe1, ...
    PREFIXm 169.254.K.254/24 = uplink-[br0]-- n0 ========== mgmt0 169.254.K.1/24 (snmpd, sshd)
                                             `-- n1 ========== mgmt0 169.254.K.2/24
                                    point-to-point links: eth0 198.18.0.0/31 ==== eth0 198.18.0.1/31
                                    extra interfaces:     ifb0 .. ifbM-1 (ifb driver, ifType 6)

- One namespace per node, named `PREFIX-NODE`; a management namespace `PREFIX-mgmt` holds a
  bridge that every node's `mgmt0` veth joins, and one veth into the root namespace, so the
  root namespace (the poller, the trap receiver) reaches every node's management address
  169.254.K.(i+1) and the lab adds a single interface and a single route to the machine.
- Links between nodes are veth pairs numbered in order: link j gets 198.18.0.0/15 addresses
  198.18.(j // 128).(2 * (j % 128)) and the next one (a /31). The root namespace gets
  `unreachable 198.18.0.0/15` while a lab is up (see LAB-NOTES: a lab address learned by
  discovery must never leave through the default route). The machine's DNS resolver's range
  (see LAB-NOTES) is never used.
- `extra_interfaces` ifb devices per node make IF-MIB tables of a realistic size (the machine
  has no `dummy` driver). Each node's ifTable is lo, mgmt0, its links, then its ifbs.
- Per node: snmpd (`ip netns exec NS env SNMP_PERSISTENT_DIR=DIR snmpd -f -C -c CONF`) with a
  v2c community and an SNMPv3 SHA/AES user generated for this lab; optionally lldpd as an
  AgentX subagent of that snmpd (LLDP-MIB remote table over SNMP), the DisMan event MIB set up
  to send linkDown/linkUp traps within 1-2 s to a receiver in the root namespace, and sshd in
  its own UTS namespace (hostname = node name) with key login as root.
- `agent_ports`: UDP ports the node's snmpd answers on besides 161 (on every address of the
  node), so that one snmpd stands for many devices, one per (management address, port):
  bench/collect.py polls 10,000 devices of 40 nodes. snmpd waits for its sockets with
  select(), whose sets hold descriptors below 1,024 (FD_SETSIZE), and keeps 2,559 characters
  of agentAddress (lab.netns_config): at most MAX_AGENT_PORTS a node.

Secrets (community, v3 keys) are generated per lab, held as pydantic `SecretStr`, and only
written to files of mode 0600 in the lab's state folder `/run/keyline-netns/PREFIX/` (0700).

Lifecycle: `start()` builds everything and returns when every snmpd answers a v2c GET of its
sysName; `stop()` kills every process of the lab, deletes its namespaces (and with them its
root-namespace veth and route) and its state folder - it is idempotent, runs at interpreter
exit, and a lab left behind by a killed process is removed by the next lab's start (see
lab.netns_system). Use it as a context manager::

    with NamespaceLab([NodeSpec("ce1"), NodeSpec("pe1")], [LinkSpec("ce1", "pe1")]) as lab:
        host = lab.management_address("pe1")   # "169.254.K.2", UDP port 161
        community = lab.community.get_secret_value()

Link faults: `set_link(node, ifname, up=False)` is `ip link set down` (the peer loses carrier,
so both ends report ifOperStatus down(2) once snmpd's ~5 s interface cache expires); `up=True`
brings it back and re-adds the node's static routes through that interface, which the kernel
flushed on link down. With `traps_to`, both ends send linkDown 1-3 s after `set_link`; but
the trap monitors take their first sample (which never fires) about 2 s after snmpd starts, so
a link taken down earlier than `started_at + 3` may send no trap.

`available()` says why the lab cannot run here (not root, no `ip netns`, no snmpd), for tests to
skip with; `benchmark_lab()` is the 20 agents x 52 interfaces lab of bench/poll.py.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from lab import netns_system as system
from lab.netns_config import (
    AGENTX_SOCKET,
    SnmpdFacts,
    render_lldpd_conf,
    render_snmpd_conf,
    render_sshd_config,
)

NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
IFNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"
SNMPD = "/usr/sbin/snmpd"
LLDPD = "/usr/sbin/lldpd"
SSHD = "/usr/sbin/sshd"
SNMP_PORT = 161
MAX_AGENT_PORTS = 500  # extra snmpd ports a node: see the module docstring
_sequence = count()


@dataclass(frozen=True)
class NodeSpec:
    """One node (router or CE device) of the lab.

    `extra_interfaces` ifb devices named ifb0.. are added to its IF-MIB. `routes` are static
    routes `(destination, via, device)` added at start and re-added when `device` comes back
    up (the kernel drops them when it goes down). `agent_ports`: UDP ports its snmpd also
    answers on (at most MAX_AGENT_PORTS; four digits or fewer keep the configuration short
    enough, lab.netns_config).
    """

    name: str
    extra_interfaces: int = 0
    routes: tuple[tuple[str, str, str], ...] = ()
    agent_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class LinkSpec:
    """A point-to-point link (veth pair) between two nodes; interface names default to ethN."""

    a: str
    z: str
    a_ifname: str | None = None
    z_ifname: str | None = None


@dataclass(frozen=True)
class V3User:
    """The lab's SNMPv3 user: USM, HMAC-SHA-96 authentication, AES-128-CFB privacy."""

    name: str
    auth_key: SecretStr
    priv_key: SecretStr
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"


@dataclass(frozen=True)
class LinkEnd:
    node: str
    ifname: str
    address: str  # with /31


@dataclass
class _Node:
    index: int
    spec: NodeSpec
    namespace: str
    management_ip: str
    folder: Path
    interfaces: list[str] = field(default_factory=list)  # link interfaces, in creation order


def available() -> str | None:
    """None when this machine can run the lab, else the reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "ip netns not available: iproute2 is not installed"
    try:
        subprocess.run(["ip", "netns", "list"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip netns not available: {exc}"
    if not Path(SNMPD).exists():
        return "snmpd not installed: run python3 dev.py test as root or apt-get install snmpd"
    if shutil.which("snmpget") is None:
        return "snmp (the Net-SNMP tools) not installed: apt-get install snmp"
    return None


def default_prefix() -> str:
    """A prefix unique to this process and lab instance: `kl<pid>x<n>`."""
    return f"kl{os.getpid()}x{next(_sequence)}"


def benchmark_lab(agents: int = 20, interfaces: int = 52, agent_ports: tuple[int, ...] = (),
                  **options: object) -> NamespaceLab:
    """The benchmark's lab: `agents` unlinked nodes a1..aN, each with `interfaces` entries in
    ifTable (lo + mgmt0 + interfaces - 2 ifb devices) and its snmpd also on `agent_ports`.
    Not started."""
    nodes = [NodeSpec(f"a{i + 1}", extra_interfaces=interfaces - 2, agent_ports=agent_ports)
             for i in range(agents)]
    return NamespaceLab(nodes, [], **options)  # type: ignore[arg-type]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class NamespaceLab:
    """Network namespaces with real agents; see the module docstring for the shape."""

    def __init__(
        self,
        nodes: list[NodeSpec],
        links: list[LinkSpec] | None = None,
        *,
        snmp_v3: bool = True,
        lldp: bool = False,
        traps_to: int | tuple[str, int] | None = None,
        sshd: bool = False,
        more_v3_users: tuple[V3User, ...] = (),
        prefix: str | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        """`traps_to`: a UDP port on the root namespace's management address, or (host, port).
        `prefix`: names everything the lab creates; default unique per process and instance.
        `more_v3_users`: SNMPv3 authPriv users every snmpd has besides `v3_user` (other
        protocols, for bench/poll.py).
        A given prefix whose previous owner died is cleaned up at start."""
        self.prefix = prefix or default_prefix()
        if not system.PREFIX_RE.match(self.prefix):
            raise ValueError(f"lab prefix {self.prefix!r}: 1-12 lowercase letters and digits")
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        if not 1 <= len(nodes) <= 253:
            raise ValueError("a lab has 1 to 253 nodes")
        for name in names:
            if not NODE_NAME_RE.match(name) or name == "mgmt":
                raise ValueError(f"node name {name!r}: lowercase letters, digits, - and _")
        for node in nodes:
            ports = node.agent_ports
            if (len(ports) > MAX_AGENT_PORTS or len(set(ports)) != len(ports)
                    or not all(1 <= port <= 65535 and port != SNMP_PORT for port in ports)):
                raise ValueError(
                    f"agent ports of node {node.name}: at most {MAX_AGENT_PORTS} distinct UDP "
                    f"ports 1-65535 other than {SNMP_PORT}")
        self.node_specs = list(nodes)
        self.link_specs = list(links or [])
        self.snmp_v3 = snmp_v3
        self.lldp = lldp
        self.traps_to = traps_to
        self.sshd = sshd
        self.more_v3_users = more_v3_users
        self.start_timeout_s = start_timeout_s
        self.community = SecretStr("kl" + secrets.token_hex(10))
        self.v3_user = V3User(
            name="keyline",
            auth_key=SecretStr(secrets.token_hex(16)),
            priv_key=SecretStr(secrets.token_hex(16)),
        )
        self._internal_keys = (secrets.token_hex(16), secrets.token_hex(16))
        self.folder = system.STATE_ROOT / self.prefix
        self.root_veth = f"{self.prefix}m"
        self.subnet_k: int | None = None
        self.link_ends: list[tuple[LinkEnd, LinkEnd]] = []
        self.ssh_key_path: Path | None = None
        self._nodes: dict[str, _Node] = {}
        self._processes: list[tuple[str, str, subprocess.Popen[bytes]]] = []
        self._started = False
        self.started_at = 0.0  # time.monotonic() when start() returned
        self.start_duration_s: float | None = None
        self.stop_duration_s: float | None = None

    # -- public --------------------------------------------------------------------------

    def __enter__(self) -> NamespaceLab:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def nodes(self) -> list[str]:
        return [node.name for node in self.node_specs]

    @property
    def root_address(self) -> str:
        """The root namespace's address on the management network (where traps go)."""
        return f"169.254.{self._k()}.254"

    @property
    def trap_sink(self) -> tuple[str, int] | None:
        if self.traps_to is None:
            return None
        if isinstance(self.traps_to, int):
            return (self.root_address, self.traps_to)
        return self.traps_to

    def namespace(self, node: str) -> str:
        return self._node(node).namespace

    def management_address(self, node: str) -> str:
        """The node's management IPv4 address; its snmpd listens on UDP 161, sshd on TCP 22."""
        return self._node(node).management_ip

    def interfaces(self, node: str) -> list[str]:
        """The node's link interface names, in creation order."""
        return list(self._node(node).interfaces)

    def all_interfaces(self, node: str) -> list[str]:
        """Every interface the lab gave the node, in ifTable order: lo, mgmt0, its links, its
        ifbs (a namespace may also hold tunnel devices of loaded kernel modules: not these)."""
        spec = self._node(node).spec
        return ["lo", "mgmt0", *self.interfaces(node),
                *(f"ifb{i}" for i in range(spec.extra_interfaces))]

    def agent_ports(self, node: str) -> list[int]:
        """The UDP ports the node's snmpd answers on at its management address: 161 first."""
        return [SNMP_PORT, *self._node(node).spec.agent_ports]

    def exec(self, node: str, command: list[str], check: bool = True) -> str:
        """Run a command inside the node's namespace; return its stdout."""
        return system.run(["ip", "netns", "exec", self.namespace(node), *command], check=check)

    def start(self) -> NamespaceLab:
        """Build namespaces, links and daemons; return when every snmpd answers."""
        if self._started:
            return self
        began = time.monotonic()
        atexit.register(self.stop)
        self._started = True
        try:
            with system.root_lock():
                self._claim_prefix()
                self._build_network()
            self._write_configs()
            self._start_snmpd()
            self._wait_for_snmpd()
            self._start_lldpd_and_sshd()  # lldpd's AgentX connection needs snmpd up first
        except BaseException:
            self.stop()
            raise
        self.started_at = time.monotonic()
        self.start_duration_s = self.started_at - began
        return self

    def stop(self) -> None:
        """Kill the lab's processes, delete its namespaces, root veth, route and state folder.

        Idempotent; also called at interpreter exit."""
        if not self._started:
            return
        began = time.monotonic()
        self._started = False
        atexit.unregister(self.stop)
        pids = [process.pid for _, _, process in self._processes if process.poll() is None]
        system.kill_pids(pids)
        for _, _, process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
        self._processes.clear()
        with system.root_lock():
            system.destroy(self.prefix)
            system.release_unreachable_route(len(system.live_labs()))
        self.stop_duration_s = time.monotonic() - began

    def set_link(self, node: str, ifname: str, up: bool) -> None:
        """`ip link set IFNAME down|up` in the node; on up, re-add its routes through IFNAME."""
        spec = self._node(node)
        system.run(["ip", "-n", spec.namespace, "link", "set", ifname, "up" if up else "down"])
        if up:
            system.ip_batch(
                [f"route replace {dest} via {via} dev {dev}"
                 for dest, via, dev in spec.spec.routes if dev == ifname],
                spec.namespace)

    def lldpd_socket(self, node: str) -> Path:
        """lldpd's control socket of the node, for `lldpcli -u SOCKET` inside its namespace."""
        return self._lldpd_folder(self._node(node)) / "lldpd.socket"

    def processes(self) -> list[tuple[str, str, int]]:
        """(node, daemon, pid) of every process the lab started and that is still running."""
        return [(node, daemon, process.pid) for node, daemon, process in self._processes
                if process.poll() is None]

    # -- building ------------------------------------------------------------------------

    def _k(self) -> int:
        if self.subnet_k is None:
            raise RuntimeError("the lab has not been started")
        return self.subnet_k

    def _lldpd_folder(self, node: _Node) -> Path:
        return self.folder / f"lldpd-{node.spec.name}"

    def _node(self, name: str) -> _Node:
        if name not in self._nodes:
            raise KeyError(f"no node {name!r} in the lab (is it started?)")
        return self._nodes[name]

    def _claim_prefix(self) -> None:
        system.cleanup_stale()
        previous = system.read_state(self.prefix)
        if previous is not None:  # its owner is alive, or cleanup_stale would have removed it
            raise RuntimeError(
                f"lab prefix {self.prefix!r} is in use by process {previous['owner']['pid']}")
        if any(name.startswith(f"{self.prefix}-") for name in system.list_namespaces()):
            system.destroy(self.prefix)  # namespaces without a state folder: a half-made lab
        taken = {state.get("subnet_k") for state in system.live_labs().values()}
        self.subnet_k = system.allocate_subnet({k for k in taken if isinstance(k, int)})
        pid = os.getpid()
        system.write_state(self.prefix, {
            "owner": {"pid": pid, "start_ticks": system.process_start_ticks(pid)},
            "subnet_k": self.subnet_k,
            "root_veth": self.root_veth,
        })
        for index, spec in enumerate(self.node_specs):
            folder = self.folder / spec.name
            folder.mkdir(mode=0o700)
            self._nodes[spec.name] = _Node(
                index=index, spec=spec, namespace=f"{self.prefix}-{spec.name}",
                management_ip=f"169.254.{self.subnet_k}.{index + 1}", folder=folder)

    def _build_network(self) -> None:
        mgmt_ns = f"{self.prefix}-mgmt"
        root = [f"netns add {mgmt_ns}"] + [f"netns add {n.namespace}" for n in self._nodes.values()]
        root.append(f"link add {self.root_veth} type veth peer name uplink netns {mgmt_ns}")
        mgmt = ["link set lo up", "link add br0 type bridge", "link set br0 up",
                "link set dev uplink master br0 up"]
        per_node: dict[str, list[str]] = {
            node.spec.name: ["link set lo up",
                             f"addr add {node.management_ip}/24 dev mgmt0",
                             "link set mgmt0 up"]
            for node in self._nodes.values()}
        for node in self._nodes.values():
            root.append(f"link add mgmt0 netns {node.namespace} type veth "
                        f"peer name n{node.index} netns {mgmt_ns}")
            mgmt.append(f"link set dev n{node.index} master br0 up")
        next_eth = {name: 0 for name in self._nodes}
        for j, link in enumerate(self.link_specs):
            if link.a not in self._nodes or link.z not in self._nodes or link.a == link.z:
                raise ValueError(f"link {link.a} - {link.z}: unknown node or a loop")
            ends = []
            for node_name, ifname in ((link.a, link.a_ifname), (link.z, link.z_ifname)):
                if ifname is None:
                    ifname = f"eth{next_eth[node_name]}"
                    next_eth[node_name] += 1
                if not IFNAME_RE.match(ifname) or ifname in self._nodes[node_name].interfaces:
                    raise ValueError(f"interface {ifname!r} of {node_name}: bad or repeated")
                self._nodes[node_name].interfaces.append(ifname)
                ends.append((node_name, ifname))
            base = f"198.18.{j // 128}.{2 * (j % 128)}"
            second = f"198.18.{j // 128}.{2 * (j % 128) + 1}"
            (a_node, a_if), (z_node, z_if) = ends
            self.link_ends.append((LinkEnd(a_node, a_if, f"{base}/31"),
                                   LinkEnd(z_node, z_if, f"{second}/31")))
            root.append(f"link add {a_if} netns {self._nodes[a_node].namespace} type veth "
                        f"peer name {z_if} netns {self._nodes[z_node].namespace}")
            per_node[a_node] += [f"addr add {base}/31 dev {a_if}", f"link set {a_if} up"]
            per_node[z_node] += [f"addr add {second}/31 dev {z_if}", f"link set {z_if} up"]
        for node in self._nodes.values():
            for i in range(node.spec.extra_interfaces):
                per_node[node.spec.name] += [f"link add ifb{i} type ifb", f"link set ifb{i} up"]
            per_node[node.spec.name] += [
                f"route add {dest} via {via} dev {dev}" for dest, via, dev in node.spec.routes]
        system.ensure_unreachable_route()
        system.ip_batch(root)
        system.ip_batch(mgmt, mgmt_ns)
        system.ip_batch([f"addr add {self.root_address}/24 dev {self.root_veth}",
                         f"link set {self.root_veth} up"])
        for name, lines in per_node.items():
            system.ip_batch(lines, self._nodes[name].namespace)

    def _write_configs(self) -> None:
        internal_auth, internal_priv = self._internal_keys
        for node in self._nodes.values():
            engine_text = f"{self.prefix}-{node.spec.name}".encode()[:27]
            facts = SnmpdFacts(
                node=node.spec.name,
                management_ip=node.management_ip,
                community=self.community.get_secret_value(),
                v3_user=self.v3_user.name,
                v3_auth_key=self.v3_user.auth_key.get_secret_value(),
                v3_priv_key=self.v3_user.priv_key.get_secret_value(),
                engine_id_hex="80001f8804" + engine_text.hex(),
                more_v3_users=tuple(
                    (user.name, user.auth_protocol, user.auth_key.get_secret_value(),
                     user.priv_protocol, user.priv_key.get_secret_value())
                    for user in self.more_v3_users),
                agentx_master=self.lldp,
                trap_sink=self.trap_sink,
                internal_auth_key=internal_auth,
                internal_priv_key=internal_priv,
                agent_ports=node.spec.agent_ports,
            )
            conf = render_snmpd_conf(facts)
            if not self.snmp_v3:
                conf = "\n".join(line for line in conf.splitlines()
                                 if not line.startswith((f"createUser {self.v3_user.name} ",
                                                         f"rouser {self.v3_user.name} "))) + "\n"
            _write_private(node.folder / "snmpd.conf", conf)
            (node.folder / "snmp-persist").mkdir(mode=0o700)
            if self.lldp and node.interfaces:
                # lldpcli (also the one lldpd runs on its -O file) is setuid _lldpd: it must
                # read the file and reach the control socket, so both live in a folder of
                # their own owned by _lldpd (no secrets in either).
                folder = self._lldpd_folder(node)
                folder.mkdir(mode=0o750)
                _write_private(folder / "lldpd.conf", render_lldpd_conf(
                    node.spec.name, node.management_ip, node.interfaces))
                with contextlib.suppress(KeyError):
                    user = pwd.getpwnam("_lldpd")
                    for path in (folder, folder / "lldpd.conf"):
                        os.chown(path, user.pw_uid, user.pw_gid)
        if self.sshd:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
            host_key = self.folder / "ssh_host_ed25519_key"
            client_key = self.folder / "client_ed25519_key"
            for key in (host_key, client_key):
                system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            f"keyline-lab-{self.prefix}", "-f", str(key)])
            authorized = self.folder / "authorized_keys"
            _write_private(authorized, Path(f"{client_key}.pub").read_text())
            self.ssh_key_path = client_key
            for node in self._nodes.values():
                _write_private(node.folder / "sshd_config", render_sshd_config(
                    node.management_ip, str(host_key), str(node.folder / "sshd.pid"),
                    str(authorized)))

    def _spawn(self, node: _Node, daemon: str, command: list[str], hostname: bool) -> None:
        log = open(node.folder / f"{daemon}.log", "wb")  # noqa: SIM115 (the child keeps it)
        prefix = ["ip", "netns", "exec", node.namespace]
        if hostname:  # its own UTS namespace, so `hostname` says the node's name
            prefix += ["unshare", "--uts", "sh", "-c",
                       'hostname "$0" && exec "$@"', node.spec.name]
        process = subprocess.Popen(prefix + command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._processes.append((node.spec.name, daemon, process))

    def _start_snmpd(self) -> None:
        for node in self._nodes.values():
            self._spawn(node, "snmpd", [
                "env", f"SNMP_PERSISTENT_DIR={node.folder / 'snmp-persist'}",
                SNMPD, "-f", "-C", "-c", str(node.folder / "snmpd.conf"),
                "-Lf", str(node.folder / "snmpd.log.agent")], hostname=False)

    def _start_lldpd_and_sshd(self) -> None:
        for node in self._nodes.values():
            if self.lldp and node.interfaces:
                self._spawn(node, "lldpd", [
                    LLDPD, "-d", "-x", "-X", AGENTX_SOCKET,
                    "-u", str(self.lldpd_socket(node.spec.name)),
                    "-O", str(self._lldpd_folder(node) / "lldpd.conf"),
                    "-m", node.management_ip, "-I", ",".join(node.interfaces)], hostname=True)
            if self.sshd:
                self._spawn(node, "sshd", [
                    SSHD, "-D", "-e", "-f", str(node.folder / "sshd_config")], hostname=True)

    def _wait_for_snmpd(self) -> None:
        """Poll sysName.0 over v2c on every management address until each node answers.

        Port 161 stands for the node's agent ports too: snmpd opens every socket of its
        agentAddress before it answers anything, and exits when one fails."""
        pending = dict(self._nodes)
        deadline = time.monotonic() + self.start_timeout_s
        community = self.community.get_secret_value()
        while pending:
            for node, daemon, process in self._processes:
                if process.poll() is not None:
                    log = (self.folder / node / f"{daemon}.log").read_text(errors="replace")
                    raise RuntimeError(
                        f"{daemon} of {node} exited ({process.returncode}): {log[-800:]}")
            checks = {
                name: subprocess.Popen(
                    ["snmpget", "-v2c", "-c", community, "-t", "0.3", "-r", "0", "-Oqv",
                     node.management_ip, SYS_NAME_OID],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for name, node in pending.items()}
            for name, check in checks.items():
                out, _ = check.communicate()
                if check.returncode == 0 and out.strip().strip('"') == name:
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"snmpd did not answer in {self.start_timeout_s} s on: "
                                   f"{', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.05)
