"""Configuration files for the daemons of the namespace lab (snmpd, lldpd, sshd).

Pure functions from a node's facts to file text, so they can be read and tested without root.
`lab.netns` writes what they return (mode 0600: the files hold the lab's secrets) and starts the
daemons on them.

snmpd (Net-SNMP 5.9) is started with `-C -c FILE`, so it reads only the file written here:

- `agentAddress udp:MGMT_IP:161,udp:127.0.0.1:161` - the management address the root
  namespace polls, plus the namespace's own loopback (used by snmpd's internal queries).
  Extra agent ports (bench/collect.py: one snmpd answering as hundreds of devices) follow as
  bare port numbers, `...,1001,1002`: UDP on every address of the node. Bare, because snmpd
  keeps only the first 2,559 characters of its agentAddress (SPRINT_MAX_LEN, all lines
  together) and opens the rest as a truncated endpoint it cannot parse, then exits: about
  500 four-digit ports fit, `udp:IP:PORT` would fit about 100.
- `rocommunity COMMUNITY default` - SNMPv2c read access for the lab's generated community.
- `createUser NAME SHA "AUTH" AES "PRIV"` + `rouser NAME priv` - one SNMPv3 user that may only
  read with authentication and privacy (authPriv). snmpd turns `createUser` into a localized
  `usmUser` line in its persistent directory (SNMP_PERSISTENT_DIR) at first start.
- `exactEngineID` - an engine ID per node, so that no two agents of a lab share one (v3 keys
  are localized to the engine ID; equal IDs would let one node's keys answer for another).
- `master agentx` + `agentXSocket tcp:127.0.0.1:705` when lldpd runs as an AgentX subagent:
  lldpd then serves the LLDP-MIB (1.0.8802.1.1.2) through this snmpd.
- Link traps: `linkUpDownNotifications yes` would check only every 60 s. For traps within
  1-2 s the DisMan event MIB is configured by hand: an internal v3 user (`iquerySecName`) lets
  snmpd query itself, `monitor -S -r 2` checks ifOperStatus every 2 s (`-S`: no check at start,
  so no flood of traps when the lab comes up) and `notificationEvent` names the notification
  (linkDown 1.3.6.1.6.3.1.1.5.3 / linkUp .5.4) with ifIndex, ifAdminStatus and ifOperStatus.
  Debian ships no MIB text files, so every OID here is numeric.

lldpd 1.0.16 reads the commands of `-O FILE` at start, as `lldpcli` would run them: transmit
every 5 s (neighbours appear within about 3 s), port IDs are interface names (so the remote
table says `eth0`, not a MAC address), and the system name is the node name.

sshd listens on the management address only, accepts the lab's generated client key for root,
and keeps every file it needs (host key, pid file, authorized keys) in the lab's state folder.
"""

from __future__ import annotations

from dataclasses import dataclass

IF_INDEX_OID = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN_STATUS_OID = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS_OID = "1.3.6.1.2.1.2.2.1.8"
LINK_DOWN_TRAP_OID = "1.3.6.1.6.3.1.1.5.3"
LINK_UP_TRAP_OID = "1.3.6.1.6.3.1.1.5.4"
AGENTX_SOCKET = "tcp:127.0.0.1:705"
# snmpd copies agentAddress into a buffer of SPRINT_MAX_LEN (2,560) bytes, the NUL included
AGENT_ADDRESS_MAX_CHARS = 2559


@dataclass(frozen=True)
class SnmpdFacts:
    """Everything snmpd.conf of one node depends on (secrets already revealed)."""

    node: str
    management_ip: str
    community: str
    v3_user: str
    v3_auth_key: str
    v3_priv_key: str
    engine_id_hex: str  # without 0x
    agentx_master: bool = False
    trap_sink: tuple[str, int] | None = None  # (host, udp port) in the root namespace
    # more SNMPv3 authPriv users (bench/poll.py): (name, auth protocol, auth key, privacy
    # protocol, privacy key), protocols in Keyline's names (collectors.usm)
    more_v3_users: tuple[tuple[str, str, str, str, str], ...] = ()
    internal_user: str = "kliquery"
    internal_auth_key: str = ""
    internal_priv_key: str = ""
    trap_interval_s: int = 2
    # UDP ports snmpd also answers on, on every address of the node (besides 161)
    agent_ports: tuple[int, ...] = ()


# Keyline's protocol names (collectors.usm) in Net-SNMP 5.9's createUser words: "AES256" is
# Reeder's key extension (Cisco's; Net-SNMP's AES-256-C), "AES256B" Blumenthal's (AES-256)
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256",
                 "SHA384": "SHA-384", "SHA512": "SHA-512"}
NET_SNMP_PRIV = {"AES": "AES", "AES128": "AES", "AES192": "AES-192-C", "AES256": "AES-256-C",
                 "AES192B": "AES-192", "AES256B": "AES-256"}


def _quoted(value: str) -> str:
    if any(ch in value for ch in "\"\\\n\r") or not value:
        raise ValueError("lab secrets must be non-empty and hold no quotes or backslashes")
    return f'"{value}"'


def render_snmpd_conf(facts: SnmpdFacts) -> str:
    """snmpd.conf for one node, to be started with `snmpd -f -C -c FILE`."""
    addresses = ",".join([f"udp:{facts.management_ip}:161", "udp:127.0.0.1:161",
                          *(str(port) for port in facts.agent_ports)])
    if len(addresses) > AGENT_ADDRESS_MAX_CHARS:
        raise ValueError(
            f"node {facts.node}: {len(facts.agent_ports)} agent ports make an agentAddress of "
            f"{len(addresses)} characters; snmpd keeps {AGENT_ADDRESS_MAX_CHARS}")
    lines = [
        f"# Keyline namespace lab: node {facts.node} (generated; holds secrets)",
        f"agentAddress {addresses}",
        f"exactEngineID 0x{facts.engine_id_hex}",
        f"sysName {facts.node}",
        "sysLocation Keyline namespace lab",
        "sysContact noc@keyline.invalid",
        "sysServices 6",
        f"rocommunity {facts.community} default",
        f"createUser {facts.v3_user} SHA {_quoted(facts.v3_auth_key)} "
        f"AES {_quoted(facts.v3_priv_key)}",
        f"rouser {facts.v3_user} priv",
        *(line for name, auth, auth_key, priv, priv_key in facts.more_v3_users for line in (
            f"createUser {name} {NET_SNMP_AUTH[auth]} {_quoted(auth_key)} "
            f"{NET_SNMP_PRIV[priv]} {_quoted(priv_key)}", f"rouser {name} priv")),
        # Fewer log lines about the connection-less transports.
        "dontLogTCPWrappersConnects yes",
    ]
    if facts.agentx_master:
        lines += ["master agentx", f"agentXSocket {AGENTX_SOCKET}"]
    if facts.trap_sink is not None:
        host, port = facts.trap_sink
        every = facts.trap_interval_s
        lines += [
            f"trap2sink {host}:{port} {facts.community}",
            f"createUser {facts.internal_user} SHA {_quoted(facts.internal_auth_key)} "
            f"AES {_quoted(facts.internal_priv_key)}",
            f"rouser {facts.internal_user} auth",
            f"iquerySecName {facts.internal_user}",
            "notificationEvent keylineLinkUp "
            f"{LINK_UP_TRAP_OID} {IF_INDEX_OID} {IF_ADMIN_STATUS_OID} {IF_OPER_STATUS_OID}",
            "notificationEvent keylineLinkDown "
            f"{LINK_DOWN_TRAP_OID} {IF_INDEX_OID} {IF_ADMIN_STATUS_OID} {IF_OPER_STATUS_OID}",
            f'monitor -S -r {every} -e keylineLinkUp "linkUp" {IF_OPER_STATUS_OID} != 2',
            f'monitor -S -r {every} -e keylineLinkDown "linkDown" {IF_OPER_STATUS_OID} == 2',
        ]
    return "\n".join(lines) + "\n"


def render_lldpd_conf(node: str, management_ip: str, interfaces: list[str]) -> str:
    """Commands lldpd runs at start (`lldpd -O FILE`)."""
    return "\n".join([
        f"configure system hostname {node}",
        f"configure system description \"Keyline lab node {node}\"",
        f"configure system interface pattern {','.join(interfaces)}",
        f"configure system ip management pattern {management_ip}",
        "configure lldp portidsubtype ifname",
        "configure lldp tx-interval 5",
        "configure system capabilities enabled router",
    ]) + "\n"


def render_sshd_config(
    management_ip: str, host_key_path: str, pid_path: str, authorized_keys_path: str,
) -> str:
    """sshd_config for one node: key login as root on the management address only."""
    return "\n".join([
        "Port 22",
        f"ListenAddress {management_ip}",
        f"HostKey {host_key_path}",
        f"PidFile {pid_path}",
        f"AuthorizedKeysFile {authorized_keys_path}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The authorized keys live in the lab's state folder, not in a home folder.
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
    ]) + "\n"
