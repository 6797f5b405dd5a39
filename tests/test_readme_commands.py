"""The README's commands work as printed, on a running demo.

Every command line of the README's shell code blocks has a step in STEPS: the concrete
invocations this test runs (the printed line with its placeholders filled in: UPPERCASE words
and `...` stand for values, `[parts]` are optional, `a|b` is a choice; each invocation is
checked to fit its printed line), or the reason it is not run here. A README command without
a step, or a step whose line the README no longer has, fails the test: a command is
checked from the day it is written.

The demo runs as the README starts it (`keyline demo`, here with a data directory of the
test's own and free ports for the portal, the trap receiver and the simulated agents), and the
commands run as a newcomer types them in another terminal: in the checkout, with the virtual
environment's `keyline` first on the PATH, no terminal (a password prompt reads standard
input), and the same settings as the demo (KEYLINE_DATA_DIR stands for the default data
directory, which a test must not touch).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.ssh import free_tcp_port_on
from tests.portal_process import Portal
from tests.snmp_agents import free_udp_port_on, free_udp_ports, snmpsim_installed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND_TIMEOUT_S = 120  # one CLI command: interpreter start, store connection, its work
# An alarm follows a port's linkDown trap after alarms.raise_after_s (2 s); the demo's poll of
# key accounts every 10 s confirms it. Loaded CI machines take several times that.
ALARM_WITHIN_S = 90
SERVICE_READY_WITHIN_S = 90  # a second portal or collector on the demo's store

PASSWORD = "a long enough password\n" * 2  # typed twice at the prompt


@dataclass(frozen=True)
class Run:
    """One invocation: `command` (with {alarm} and {window} taken from earlier output), its
    standard input, the exit code, a regular expression its output must match (`until`: run
    again until it does), `capture` naming the value the match's first group gives. A
    `service` runs until stopped: ready when its output matches `expect`, or when `port`
    (an environment variable it is given) answers /healthz."""

    command: str
    expect: str = ""
    code: int = 0
    stdin: str | None = None
    until: bool = False
    capture: str | None = None
    service: bool = False
    env: dict[str, str] = field(default_factory=dict)
    port: str | None = None


@dataclass(frozen=True)
class NotRun:
    reason: str


FAULTED = ("pe-sh1", "GigabitEthernet0/0/0")  # an access port of a key account's circuit
# a line added to a simulated router's configuration, its secret never to be shown
PLANTED_LINE = "username noc-ops privilege 15 secret 0 Planted-Pass-42"
NOT_PLANTED = r"\A(?!(?s:.*)Planted-Pass-42)(?s:.*)"
MASKED_LINE = r"username noc-ops privilege 15 secret 0 <masked hmac:[0-9a-f]{8}>"
BENCHMARK = NotRun("a benchmark: minutes of load on a scratch store of its own, run by hand; "
                   "its figures are in this README")

# (the README's line, what this test does with it), in the order they run: the port fault
# before the alarm commands; the re-imports last (the demo's agents answer on a port of the
# test's own, while the example files say 1161).
STEPS: list[tuple[str, Run | NotRun]] = [
    ("python3 dev.py run", NotRun("sets up the checkout, then runs the demo: as this test")),
    ("python3 dev.py test", NotRun("the whole suite (CI's .ci/run), this test included")),
    ("python3 dev.py timescale",
     NotRun("builds TimescaleDB into .venv (minutes), as python3 dev.py test does first")),
    ("keyline demo", NotRun("started by this test first; the others run against it")),
    ("keyline --version", Run("keyline --version", expect=r"keyline, version \S+")),
    ("keyline import --check PATH...",
     Run("keyline import --check config/example", expect="Inventory valid: 198 objects")),
    ("keyline db migrate", Run("keyline db migrate", expect="current; nothing to apply")),
    ("keyline db status", Run("keyline db status", expect="Pending: none")),
    ("keyline user add alice --role engineer",
     Run("keyline user add alice --role engineer", stdin=PASSWORD,
         expect=r"User alice added \(engineer\)")),
    ("keyline user passwd noc.wang",
     Run("keyline user passwd noc.wang", stdin=PASSWORD, expect="Password of noc.wang set")),
    ("keyline user role alice --role noc",
     Run("keyline user role alice --role noc", expect="User alice is now noc")),
    ("keyline user list", Run("keyline user list", expect=r"(?m)^alice\s+noc\s+local\s+ok")),
    # the demo has made no token: the first is number 1, as the README's revoke-token says
    ("keyline user token noc.wang --label wallboard [--expires-days 30] [--service]",
     Run("keyline user token noc.wang --label wallboard", expect=r" 1 for noc\.wang \(wallboard")),
    ("keyline user token noc.wang --label wallboard [--expires-days 30] [--service]",
     Run("keyline user token noc.wang --label wallboard --expires-days 30 --service",
         expect=r" 2 for noc\.wang \(wallboard")),
    ("keyline user tokens [noc.wang]", Run("keyline user tokens", expect="wallboard")),
    ("keyline user tokens [noc.wang]", Run("keyline user tokens noc.wang", expect="wallboard")),
    ("keyline user revoke-token 1", Run("keyline user revoke-token 1", expect="Token 1 revoked")),
    ("keyline user end-sessions noc.wang",
     Run("keyline user end-sessions noc.wang", expect=r"\d+ session\(s\) of noc\.wang ended")),
    ("keyline poll --once [DEVICE...]",
     Run(f"keyline poll --once {FAULTED[0]}", expect=re.escape(FAULTED[1]))),
    # the CLI side: the demo's simulated devices answer SSH too (lab/sim/ssh.py)
    ("keyline poll --once DEVICE --via cli",
     Run("keyline poll --once pe-sh1 --via cli",
         expect=r"pe-sh1 \(.*huawei_vrp\) via cli: ok in \d+ ms\n(?s:.*)"
                r"port GigabitEthernet0/0/1: admin up, oper up; in_octets \d+")),
    ("keyline config fetch DEVICE [--by USER]",
     Run("keyline config fetch p-sh2", expect=r"p-sh2: (new version|unchanged), v1\b")),
    ("keyline lab sim config DEVICE --add LINE [--remove LINE]",
     Run(f'keyline lab sim config p-sh2 --add "{PLANTED_LINE}"', expect="is changed")),
    # the collector's own first fetch may come before or after this one: v2 either way
    ("keyline config fetch DEVICE [--by USER]",
     Run("keyline config fetch p-sh2 --by eng.liu", expect=r"p-sh2: .*\bv2\b")),
    ("keyline config versions DEVICE",
     Run("keyline config versions p-sh2", expect=r"(?m)^v2 (?s:.*)^v1 ")),
    ("keyline config show DEVICE [--at T] [--version N]",
     Run("keyline config show p-sh2", expect=NOT_PLANTED + MASKED_LINE)),
    ("keyline config show DEVICE [--at T] [--version N]",
     Run("keyline config show p-sh2 --version 1", expect=r"\A(?!(?s:.*)noc-ops)(?s:.*)hostname")),
    ("keyline config show DEVICE [--at T] [--version N]",
     Run("keyline config show p-sh2 --at now", expect=NOT_PLANTED + MASKED_LINE)),
    ("keyline config diff DEVICE [--at T] [--from N --to M]",
     Run("keyline config diff p-sh2", expect=NOT_PLANTED + r"\n\+" + MASKED_LINE)),
    ("keyline config diff DEVICE [--at T] [--from N --to M]",
     Run("keyline config diff p-sh2 --from 1 --to 2", expect=r"(?m)^\+" + MASKED_LINE)),
    ("keyline config diff DEVICE [--at T] [--from N --to M]",
     Run("keyline config diff p-sh2 --at now", expect=r"(?m)^\+" + MASKED_LINE)),
    ("keyline lab sim host-key DEVICE",
     Run("keyline lab sim host-key p-sh2", expect="has a new SSH host key")),
    ("keyline poll --once DEVICE --via cli",
     Run("keyline poll --once p-sh2 --via cli", expect=r"via cli: host-key-changed")),
    ("keyline cli host-keys [DEVICE...]",
     Run("keyline cli host-keys", expect=r"(?m)^p-sh2 .*offered, refused")),
    ("keyline cli host-keys [DEVICE...]",
     Run("keyline cli host-keys p-sh2", expect=r"(?m)^p-sh2 .*trusted")),
    ("keyline cli accept-host-key DEVICE --by USER",
     Run("keyline cli accept-host-key p-sh2 --by eng.liu",
         expect=r"trusted, accepted by eng\.liu")),
    ("keyline poll --once DEVICE --via cli",
     Run("keyline poll --once p-sh2 --via cli", expect=r"p-sh2 .* via cli: ok in ")),
    ("keyline lab sim cli DEVICE MODE",
     Run("keyline lab sim cli p-sh2 auth-fail", expect="is now auth-fail")),
    ("keyline poll --once DEVICE --via cli",
     Run("keyline poll --once p-sh2 --via cli", expect=r"via cli: auth-failed .*authentication")),
    ("keyline lab sim cli DEVICE MODE",
     Run("keyline lab sim cli p-sh2 normal", expect="is now normal")),
    ("keyline topology discover [DEVICE...]", Run("keyline topology discover pe-sh1")),
    ("keyline topology discover [DEVICE...]", Run("keyline topology discover")),
    ("keyline topology diff [--json]", Run("keyline topology diff")),
    ("keyline topology diff [--json]", Run("keyline topology diff --json", expect=r"^\s*[\[{]")),
    ("keyline topology accept A:PORT Z:PORT --by USER", NotRun(
        "the demo's network has no discovered link that is not declared: nothing to accept"
        " (tests/test_topology_reconcile.py accepts one)")),
    ("keyline lab sim status", Run("keyline lab sim status", expect=r"(?m)^pe-sh1\s")),
    ("keyline lab sim fault DEVICE PORT down|up",
     Run("keyline lab sim fault {} {} down".format(*FAULTED), expect="is now down")),
    ("keyline alarm list [--all]",
     Run("keyline alarm list", until=True, capture="alarm",
         expect=rf"(?m)^\s*(\d+) .*{re.escape(FAULTED[1])}")),
    ("keyline alarm list [--all]",
     Run("keyline alarm list --all", expect=re.escape(FAULTED[1]))),
    ("keyline alarm ack ID --by USER --note TEXT [--customer-note TEXT]",
     Run('keyline alarm ack {alarm} --by noc.wang --note "field team on the way"')),
    ("keyline alarm ack ID --by USER --note TEXT [--customer-note TEXT]",
     Run('keyline alarm ack {alarm} --by noc.wang --note "on site at 14:00"'
         ' --customer-note "An engineer is on the way."')),
    ("keyline alarm show ID",
     Run("keyline alarm show {alarm}", expect="(?s)acknowledged by noc.wang.*timeline:")),
    # the port fault opened the customer's ticket (the alarm's acknowledgement above
    # acknowledged it); a ticket opened by hand is worked here
    ("keyline ticket list [--state S] [--customer KEY] [--all]",
     Run("keyline ticket list", until=True, capture="ticket",
         expect=r"(?m)^\s*(\d+) P\d\s+\S+\s+hsbank\s+fault")),
    ("keyline ticket list [--state S] [--customer KEY] [--all]",
     Run("keyline ticket list --customer hsbank --all", expect=r"hsbank\s+fault")),
    ("keyline ticket show ID",
     Run("keyline ticket show {ticket}", expect="(?s)circuits:.*clocks .*timeline")),
    ("keyline ticket open --circuit KEY --title T [--kind fault|complaint]"
     " [--priority P1..P4] --by USER",
     Run('keyline ticket open --circuit HSB-L3VPN-0002 --title "slow to Guangzhou"'
         " --kind complaint --by noc.wang", capture="opened", expect=r"ticket (\d+) opened")),
    ("keyline ticket ack ID [--comment C] --by USER",
     Run('keyline ticket ack {opened} --comment "looking into it" --by noc.wang',
         expect=r"by noc\.wang: now acknowledged")),
    ("keyline ticket comment ID TEXT [--internal] --by USER",
     Run('keyline ticket comment {opened} "called the branch" --internal --by noc.wang',
         expect="internal comment")),
    ("keyline ticket priority ID P2 --reason R --by USER",
     Run('keyline ticket priority {opened} P2 --reason "a branch is cut off" --by noc.wang',
         expect="is P2 now")),
    ("keyline calendar show CONTRACT [--year Y]",
     Run("keyline calendar show bronze --year 2026", expect="chinesecalendar 1.11.0")),
    # the SLA figures of this month so far, on the demo's states (a month not issued yet)
    ("keyline sla figures [--customer KEY] [--month M]",
     Run("keyline sla figures --customer hsbank", expect="HSB-L3VPN-0001")),
    ("keyline sla figures [--customer KEY] [--month M]",
     Run("keyline sla figures --month {month}", expect="XH-LL-0001")),
    ("keyline sla figures --from T [--to T] [--customer KEY]",
     Run("keyline sla figures --from -1d --customer hsbank", expect="HSB-L3VPN-0001")),
    ("keyline report --customer KEY --month M --format pdf|csv|html|json [--output FILE]",
     Run("keyline report --customer hsbank --month {month} --format json"
         " --output {out}/hsbank.json", expect="not issued")),
    ("keyline report --customer KEY --month M --format pdf|csv|html|json [--output FILE]",
     Run("keyline report --customer hsbank --month {month} --format html"
         " --output {out}/hsbank.html")),
    ("keyline sla compute FILE",
     Run("keyline sla compute {out}/hsbank.json", expect="every figure matches")),
    ("keyline report --all --month M --format pdf|csv|html|json --output-dir DIR",
     Run("keyline report --all --month {month} --format csv --output-dir {out}/reports")),
    ("keyline sla mark CIRCUIT --start T --end T --reason R --by USER",
     Run('keyline sla mark HSB-L3VPN-0001 --start -20m --end -10m'
         ' --reason "the bank powered its router off" --by noc.wang',
         capture="mark", expect=r"mark (\d+) on HSB-L3VPN-0001")),
    ("keyline sla marks CIRCUIT [--month M]",
     Run("keyline sla marks HSB-L3VPN-0001", expect="powered its router off")),
    ("keyline sla withdraw ID --reason R --by USER",
     Run('keyline sla withdraw {mark} --reason "it was our line card" --by noc.wang',
         expect="withdrawn by noc.wang")),
    ("keyline sla issue --month M --all", NotRun(
        "the demo's month is not over: nothing is issued before its end (tests/"
        "test_sla_reports_cli.py issues a past month and corrects it)")),
    ("keyline sla reports [--customer KEY]", Run("keyline sla reports --customer hsbank")),
    ("keyline notify list [--failed]", Run("keyline notify list")),
    ("keyline notify list [--failed]", Run("keyline notify list --failed")),
    ("keyline lab sim fault DEVICE PORT down|up",
     Run("keyline lab sim fault {} {} up".format(*FAULTED), expect="is now up")),
    ("keyline lab sim fault DEVICE --snmp down|up",
     Run("keyline lab sim fault pe-bj1 --snmp down", expect="SNMP agent is now down")),
    ("keyline lab sim fault DEVICE --snmp down|up",
     Run("keyline lab sim fault pe-bj1 --snmp up", expect="SNMP agent is now up")),
    ("keyline lab sim fault DEVICE --device down|up",
     Run("keyline lab sim fault pe-gz1 --device down", expect="pe-gz1 is now down")),
    ("keyline lab sim fault DEVICE --device down|up",
     Run("keyline lab sim fault pe-gz1 --device up", expect="pe-gz1 is now up")),
    ("keyline maintenance add --scope device:pe-sh1 --start ... --end ... --note ..."
     " [--customer-note ...] --by USER",
     Run('keyline maintenance add --scope device:pe-sh1 --start now --end +1h'
         ' --note "line card swap" --customer-note "Planned work" --by noc.wang',
         capture="window", expect=r"maintenance window (\d+):")),
    ("keyline maintenance list", Run("keyline maintenance list", expect="line card swap")),
    ("keyline maintenance end ID --by USER",
     Run("keyline maintenance end {window} --by noc.wang", expect="(ended|cancelled) by")),
    ("keyline status [--json]", Run("keyline status", expect="all is well")),
    ("keyline status [--json]", Run("keyline status --json", expect='"reachable": true')),
    # the demo's collector runs (forgetting it is refused); a collector that never ran is named
    ("keyline status --forget SERVICE",
     Run("keyline status --forget collector:gone", code=2,
         expect=r"no service named 'collector:gone' has reported \(known: .*collector")),
    # the demo's network runs in the data directory's lab-sim folder: a second is refused
    ("keyline lab sim [--trap-receiver HOST:PORT] [INVENTORY...]",
     Run("keyline lab sim", code=1, expect="already running in")),
    ("keyline lab sim [--trap-receiver HOST:PORT] [INVENTORY...]",
     Run("keyline lab sim --trap-receiver 127.0.0.1:1162 config/example", code=1,
         expect="already running in")),
    ("keyline serve --collect",
     Run("keyline serve --collect", service=True, port="KEYLINE_LISTEN_PORT",
         env={"KEYLINE_TRAPS__PORT": "udp"})),
    ("keyline collect",
     Run("keyline collect", service=True, expect="Keyline collector is running",
         env={"KEYLINE_TRAPS__PORT": "udp"})),
    # a second collector beside the demo's: it takes its share of the devices by leases
    ("keyline collect --name c2 [--group core]",
     Run("keyline collect --name c2 --group core", service=True,
         expect="Keyline collector is running", env={"KEYLINE_TRAPS__PORT": "udp"})),
    ("keyline import config/example",
     Run("keyline import config/example", expect=r"Total: \d+ added")),
    ("keyline serve [--inventory PATH]",
     Run("keyline serve", service=True, port="KEYLINE_LISTEN_PORT")),
    ("keyline serve [--inventory PATH]",
     Run("keyline serve --inventory config/example", service=True, port="KEYLINE_LISTEN_PORT")),
    ("keyline --debug serve",
     Run("keyline --debug serve", service=True, port="KEYLINE_LISTEN_PORT")),
    *((f".venv/bin/python bench/{name}.py", BENCHMARK) for name in (
        "ingest", "poll_engine", "poll", "topology", "alarms", "portal", "outage", "traps",
        "report", "cli", "collect")),
    (".venv/bin/python bench/portal.py --processes 2", BENCHMARK),
    (".venv/bin/python bench/collect.py --agents netns --devices 10000 --versions v2c",
     BENCHMARK),
]


def readme_commands(text: str) -> list[str]:
    """The command lines of the shell code blocks: comments and continuation lines off."""
    commands = []
    for block in re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            command = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if command:
                commands.append(" ".join(command.split()))
    return commands


def _word(token: str) -> str:
    if token == "...":
        return r"\x1f[^\x1f]+"
    if re.fullmatch(r"[A-Z][A-Z_]*(:[A-Z_]+)?\.\.\.", token):
        return r"(?:\x1f[^\x1f]+)+"
    if re.fullmatch(r"[A-Z][A-Z_]*(:[A-Z_]+)?", token):
        return r"\x1f[^\x1f]+"
    if "|" in token:
        return r"\x1f(?:" + "|".join(map(re.escape, token.split("|"))) + ")"
    return r"\x1f" + re.escape(token)


def fits(printed: str, command: str) -> bool:
    """Whether `command` is the printed line with its placeholders filled in."""
    pattern = "".join("(?:" if token == "[" else ")?" if token == "]" else _word(token)
                      for token in re.findall(r"\[|\]|[^\s\[\]]+", printed))
    return re.fullmatch(pattern, "".join("\x1f" + word for word in shlex.split(command))) \
        is not None


def test_every_readme_command_is_run_or_says_why_not():
    printed = readme_commands(README.read_text())
    assert len(printed) == len(set(printed)), "a README command printed twice"
    covered = {line for line, _ in STEPS}
    missing = [line for line in printed if line not in covered]
    assert not missing, f"README commands this test neither runs nor excuses: {missing}"
    stale = sorted(covered - set(printed))
    assert not stale, f"steps for commands the README no longer prints: {stale}"
    excused = {line for line, step in STEPS if isinstance(step, NotRun)}
    run = {line for line, step in STEPS if isinstance(step, Run)}
    assert not excused & run, excused & run
    for line, step in STEPS:
        if isinstance(step, Run):
            sample = step.command.format(alarm="1", window="1", ticket="1", opened="1",
                                         mark="1", month="2026-10", out="/tmp/x")
            assert fits(line, sample), f"{sample!r} is not the README's {line!r} filled in"


def test_fits_reads_the_readme_notation():
    assert fits("keyline alarm show ID", "keyline alarm show 12")
    assert not fits("keyline alarm show ID", "keyline alarm show 12 --all")
    assert fits("keyline poll --once [DEVICE...]", "keyline poll --once")
    assert fits("keyline poll --once [DEVICE...]", "keyline poll --once a b")
    assert fits("keyline lab sim fault DEVICE PORT down|up", "keyline lab sim fault a b up")
    assert not fits("keyline lab sim fault DEVICE PORT down|up", "keyline lab sim fault a b x")
    assert fits("keyline x --reason ... --by USER", 'keyline x --reason "two words" --by me')
    assert not fits("keyline serve [--inventory PATH]", "keyline serve --collect")


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    except OSError:
        return False


class Shell:
    """The newcomer's second terminal: the checkout, the venv's `keyline`, the demo's
    settings; what earlier commands printed that later ones need."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        # this month (the demo's data is this month's) and a folder for files to write
        now = datetime.now(UTC)
        self.values: dict[str, str] = {"month": f"{now.year:04d}-{now.month:02d}",
                                       "out": str(Path(env["KEYLINE_DATA_DIR"]).parent)}
        self.ran: list[str] = []

    def environment(self, run: Run) -> dict[str, str]:
        env = dict(self.env)
        for name, value in run.env.items():
            env[name] = str(free_udp_ports(1)[0]) if value == "udp" else value
        if run.port:
            env[run.port] = str(free_tcp_port())
        return env

    def run(self, printed: str, run: Run) -> None:
        command = run.command.format_map(self.values)
        assert fits(printed, command), command
        self.ran.append(command)
        if run.service:
            return self._service(command, run)
        deadline = time.monotonic() + ALARM_WITHIN_S
        while True:
            result = subprocess.run(shlex.split(command), cwd=ROOT, env=self.environment(run),
                                    input=run.stdin or "", capture_output=True, text=True,
                                    timeout=COMMAND_TIMEOUT_S, start_new_session=True)
            output = result.stdout + result.stderr
            match = re.search(run.expect, output) if run.expect else True
            if result.returncode == run.code and match:
                break
            assert run.until and time.monotonic() < deadline, (
                f"$ {command}\nexit {result.returncode} (expected {run.code}), output:\n{output}")
            time.sleep(2)
        assert "Traceback" not in output, output
        if run.capture:
            self.values[run.capture] = match.group(1)

    def _service(self, command: str, run: Run) -> None:
        env = self.environment(run)
        process = subprocess.Popen(shlex.split(command), cwd=ROOT, env=env, text=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + SERVICE_READY_WITHIN_S
        try:
            while not (answers(int(env[run.port])) if run.port
                       else re.search(run.expect, "".join(lines))):
                assert process.poll() is None and time.monotonic() < deadline, (
                    f"$ {command}: not ready\n{''.join(lines)}")
                time.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            reader.join(10)
        output = "".join(lines)
        assert process.returncode == 0, f"$ {command}: exit {process.returncode}\n{output}"
        assert "Traceback" not in output, output


@pytest.fixture
def demo_env(scratch_dir: Path):
    if not snmpsim_installed():
        pytest.skip("snmpsim is not installed: the demo's simulated network needs it")
    keyline = Path(sys.executable).parent / "keyline"
    assert keyline.exists(), f"no keyline command beside {sys.executable}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYLINE_")}
    env.update(PATH=f"{keyline.parent}{os.pathsep}{env.get('PATH', '')}",
               KEYLINE_DATA_DIR=str(scratch_dir / "data"),
               KEYLINE_LISTEN_PORT=str(free_tcp_port()),
               KEYLINE_TRAPS__PORT=str(free_udp_ports(1)[0]))
    inventory = load_inventory([EXAMPLE_INVENTORY])
    lab_port = free_udp_port_on([str(d.management_address) for d in inventory.devices.values()])
    ssh_port = free_tcp_port_on([str(d.management_address) for d in inventory.devices.values()])
    process = subprocess.Popen(["keyline", "demo", "--lab-snmp-port", str(lab_port),
                                "--lab-ssh-port", str(ssh_port)], cwd=ROOT,
                               env=env, text=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    demo = Portal(process)
    demo.read_until_url(120)
    try:
        yield env, demo
    finally:
        demo.stop()


@pytest.mark.timeout(900)  # about 40 commands of a few seconds each, and five services
def test_readme_commands_work_as_printed_on_the_demo(demo_env):
    env, demo = demo_env
    # the demo prints the fault command as the README does: no --work-dir needed
    assert "keyline lab sim fault DEVICE PORT down" in demo.output
    shell = Shell(env)
    for printed, step in STEPS:
        if isinstance(step, Run):
            shell.run(printed, step)
    assert len(shell.ran) == sum(isinstance(step, Run) for _, step in STEPS)
