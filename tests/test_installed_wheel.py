"""An installed Keyline works outside the repository: the wheel, as a user gets it.

The test builds the wheel from this checkout's files (`pip wheel`, which runs setup.py's build
step: the portal's front-end files copied from node_modules into the package), installs it with
its dependencies into a fresh virtual environment in an empty folder, and runs `keyline demo`
from there: no checkout on the path, no PYTHONPATH, the working directory an empty folder.
Then headless Chromium logs in and finds the NOC's pages drawn: every /vendor/* file served,
the whole-network topology drawn by cytoscape with every device, a circuit's traffic chart
painted by Chart.js and its route drawn. The Dockerfile follows the same steps.

Installing the dependencies uses pip as a user would (the package index, or pip's cache
when the same pinned wheels were fetched before, as dev.py's install did).

The wheel is built from the files the Dockerfile's first stage copies (and installed once for
this module's tests), and the second test runs docker-compose.yml's layout from it, without
Docker: the services' own commands and environment (tests/test_docker_layout.py reads them),
`init` once, then the collector and two portal replicas on one PostgreSQL, behind nginx with
the compose file's proxy configuration; the front-end files, the pages, a session valid on
both replicas and a live page's WebSocket through the proxy.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyline.wiring import EXAMPLE_INVENTORY
from lab.nginx import nginx_binary, write_nginx_conf
from portal.vendor import ALLOWED, NODE_MODULES
from tests.conftest import scratch_parent
from tests.portal_process import START_TIMEOUT_S, STOP_TIMEOUT_S, Portal
from tests.test_docker_layout import (
    COMPOSE_FILE,
    bind_mounts,
    compose_config,
    host_path,
    stage_one_sources,
)
from tests.test_portal_browser import browser, log_in  # noqa: F401

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 600  # npm ci runs when node_modules lacks a file: registry downloads
INSTALL_TIMEOUT_S = 900  # every pinned dependency, from the index when not cached
# The demo polls key accounts every 10 s with warm-up polls: traffic within about half a
# minute on an idle machine (README); CI runs loaded, so allow several times that.
TRAFFIC_WITHIN_S = 180


def run(command: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout_s)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def outside_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with nothing of the checkout: no PYTHONPATH, no other
    virtual environment, no KEYLINE_* settings but the ones given."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KEYLINE_", "PYTHON")) and key != "VIRTUAL_ENV"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def build_wheel(work: Path) -> Path:
    """The wheel of this checkout's files, built as the Dockerfile's first stage builds it:
    in a copy of the files its COPY instructions name (as from a fresh clone: setuptools
    builds in the source folder and would reuse what an earlier build left in build/), with
    the checkout's node_modules (what its `npm ci` installs, from the same package-lock.json)."""
    source = stage_one_sources(work / "src")
    if NODE_MODULES.is_dir():
        (source / "node_modules").symlink_to(NODE_MODULES)
    dist = work / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist),
         str(source)], cwd=work, env=dict(os.environ), timeout_s=BUILD_TIMEOUT_S)
    (wheel,) = dist.glob("keyline-*.whl")
    return wheel


def test_the_build_step_reads_vendor_py_table():
    """setup.py reads the files to ship from portal/vendor.py's source (no Flask in the
    build environment): the same table the route serves from."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("keyline_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.vendor_files() == {package: sorted(files) for package, files in ALLOWED.items()}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    def keyline(self) -> str:
        return str(self.venv / "bin" / "keyline")


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """The wheel, built and installed into a fresh virtual environment from an empty folder
    (once for the module's tests)."""
    # In a scratch folder, not pytest's tmp_path (owner-only): as root, the embedded
    # PostgreSQL runs as a system user that must reach the server files inside the venv.
    root = Path(tempfile.mkdtemp(prefix="keyline-test-wheel-", dir=scratch_parent()))
    try:
        wheel = build_wheel(root)
        check_wheel_contents(wheel)
        empty = root / "empty"
        empty.mkdir()
        venv = root / "venv"
        run([sys.executable, "-m", "venv", str(venv)], cwd=empty, env=outside_env(venv),
            timeout_s=120)
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
            cwd=empty, env=outside_env(venv), timeout_s=INSTALL_TIMEOUT_S)
        where = run([str(venv / "bin" / "python"), "-c",
                     "import portal.vendor as v; print(v.__file__); print(v.front_end_root())"],
                    cwd=empty, env=outside_env(venv), timeout_s=60).split()
        assert all(Path(path).is_relative_to(venv) for path in where), where
        assert not Path(where[1]).is_relative_to(NODE_MODULES)
        assert not list(empty.iterdir())
        yield Installed(wheel, venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    served = {f"portal/vendored/{package}/{name}" for package, files in ALLOWED.items()
              for name in files}
    assert served <= names, sorted(served - names)
    shipped = {name for name in names if name.startswith("portal/vendored/")}
    extra = {name for name in shipped - served if not Path(name).name.startswith("LICENSE")}
    assert not extra, f"node_modules files the portal does not serve: {sorted(extra)}"
    assert not any(name.startswith(("tests/", "node_modules/")) for name in names)


# beyond the suite's 300 s: a build, a venv's worth of installs (the module's fixture, paid by
# the first test) and a demo, each with its limit
@pytest.mark.timeout(BUILD_TIMEOUT_S + INSTALL_TIMEOUT_S + TRAFFIC_WITHIN_S + 300)
def test_installed_wheel_runs_the_demo_with_its_front_end(
        browser, installed: Installed, scratch_dir: Path):  # noqa: F811
    from config.inventory.loader import load_inventory
    from tests.snmp_agents import free_udp_port_on, free_udp_ports

    venv = installed.venv
    empty = scratch_dir / "empty"
    empty.mkdir()
    inventory = load_inventory([EXAMPLE_INVENTORY])
    lab_port = free_udp_port_on([str(d.management_address) for d in inventory.devices.values()])
    process = subprocess.Popen(
        [str(venv / "bin" / "keyline"), "demo", "--port", "0", "--lab-snmp-port", str(lab_port)],
        cwd=empty, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=outside_env(venv, KEYLINE_DATA_DIR=str(scratch_dir / "data"),
                        KEYLINE_TRAPS__PORT=str(free_udp_ports(1)[0])))
    demo = Portal(process)
    try:
        url = demo.read_until_url(120)
        ((name, password),) = re.findall(r"Log in as (\S+) with password (\S+)", demo.output)
        for package, files in ALLOWED.items():
            for file in sorted(files):
                answer = urllib.request.urlopen(f"{url}vendor/{package}/{file}", timeout=30)
                assert answer.status == 200 and answer.read(), (package, file)
        check_pages(browser, url.rstrip("/"), name, password, inventory)
    finally:
        demo.stop()
    assert "Traceback" not in demo.output, demo.output


def check_pages(browser, base_url: str, name: str, password: str,  # noqa: F811
                inventory) -> None:
    page = browser.new_context(locale="en-US").new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    log_in(page, base_url, name, password)
    # the NOC's overview, once the demo's warm-up polls have measured every circuit
    deadline = time.monotonic() + TRAFFIC_WITHIN_S
    while True:
        page.goto(base_url + "/noc/")
        measured = re.findall(r'<td class="num traffic">([^<]+ / [^<]+)</td>', page.content())
        if len(measured) == len(inventory.circuits):
            break
        assert time.monotonic() < deadline, "no traffic on the NOC page"
        time.sleep(2)

    # the whole network, drawn by cytoscape
    page.goto(base_url + "/noc/topology")
    page.wait_for_function(
        "() => window.keylineTopology && window.keylineTopology.cy"
        " && window.keylineTopology.cy.nodes('[kind = \"device\"]').length > 0")
    drawn = page.evaluate("""() => {
        const cy = window.keylineTopology.cy;
        return {devices: cy.nodes('[kind = "device"]').length, edges: cy.edges().length,
                canvases: document.querySelectorAll('canvas').length};
    }""")
    assert drawn["devices"] == len(inventory.devices), drawn
    assert drawn["edges"] > 0 and drawn["canvases"] > 0, drawn

    # a circuit, reached from the overview as a person would: its chart and its route
    circuit = sorted(inventory.circuits)[0]
    page.goto(base_url + "/noc/")
    page.click(f"a >> text={circuit}")
    page.wait_for_selector('canvas#chart-traffic[data-range="1h"]')
    assert int(page.get_attribute("canvas#chart-traffic", "data-points")) > 0
    painted = page.evaluate("""() => {
        const chart = Chart.getChart('chart-traffic');
        const area = chart.chartArea, ratio = window.devicePixelRatio || 1;
        const pixels = chart.ctx.getImageData(area.left * ratio, area.top * ratio,
            (area.right - area.left) * ratio, (area.bottom - area.top) * ratio).data;
        let count = 0;
        for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) count++; }
        return count;
    }""")
    assert painted > 0, "the traffic chart's plot area is blank"
    route = page.evaluate("() => window.keylineCustomer && window.keylineCustomer.cy"
                          " ? window.keylineCustomer.cy.nodes().length : 0")
    assert route > 0, "the circuit's route is not drawn"
    assert not failed, failed


# --- docker-compose.yml's layout, without Docker -------------------------------------------

def proxy_configuration(compose_conf: str, portal_ports: list[int], port: int) -> str:
    """The compose file's proxy configuration with what only Docker has replaced: the
    `portal` service name, which Docker's DNS (127.0.0.11) resolves to the replicas, by the
    replicas' loopback addresses (addresses: nothing to resolve), port 80 by a free loopback
    port."""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in portal_ports)
    text, count = re.subn(r"^\s*server portal:\d+ resolve;$", servers, compose_conf,
                          flags=re.MULTILINE)
    assert count == 1, compose_conf
    text, count = re.subn(r"^resolver 127\.0\.0\.11 .*;$", "", text, flags=re.MULTILINE)
    assert count == 1, compose_conf
    text, count = re.subn(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{port};", text,
                          flags=re.MULTILINE)
    assert count == 1, compose_conf
    return text


def start_proxy(nginx: Path, work: Path, portal_ports: list[int]) -> tuple[subprocess.Popen,
                                                                           int]:
    from lab.sim.ssh import free_tcp_port_on

    compose = compose_config()
    source = compose["configs"][compose["services"]["proxy"]["configs"][0]["source"]]
    conf = (COMPOSE_FILE.parent / source["file"]).read_text(encoding="utf-8")
    port = free_tcp_port_on(["127.0.0.1"])
    work.mkdir(parents=True)
    work.chmod(0o755)  # as root, nginx's workers run as nobody
    (work / "proxy.conf").write_text(proxy_configuration(conf, portal_ports, port))
    main = write_nginx_conf(work, f"include {work}/proxy.conf;")
    with (work / "nginx.log").open("w") as log:
        process = subprocess.Popen(
            [str(nginx), "-p", str(work), "-c", str(main)],
            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("nginx did not start:\n"
                                     + (work / "nginx.log").read_text()) from None
            time.sleep(0.2)


class Collector:
    """`keyline collect`, its output read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self._reader.join(5)
        assert self.process.returncode == 0, "".join(self.lines)


def service_environ(service: dict, **here: str) -> dict[str, str]:
    """A compose service's environment, with `here` for what differs on this machine."""
    environ = {name: str(value) for name, value in service.get("environment", {}).items()}
    assert set(here) <= set(environ) | {"KEYLINE_LISTEN_PORT"}, sorted(set(here) - set(environ))
    environ.update(here)
    return environ


def status_of(port: int, path: str, cookie: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Cookie": cookie})
        return connection.getresponse().status
    finally:
        connection.close()


# beyond the suite's 300 s: the module's build and installs when this test runs first, then
# the services' starts and stops
@pytest.mark.timeout(BUILD_TIMEOUT_S + INSTALL_TIMEOUT_S + 3 * START_TIMEOUT_S
                     + 3 * STOP_TIMEOUT_S)
def test_compose_layout_runs_from_the_installed_wheel(
        browser, installed: Installed, empty_db_url: str, scratch_dir: Path):  # noqa: F811
    from config.inventory.loader import load_inventory
    from lab.sim.ssh import free_tcp_port_on
    from tests.snmp_agents import free_udp_ports

    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("no nginx for the compose file's proxy (lab/debian-packages.txt)")
    services = compose_config()["services"]
    empty = scratch_dir / "empty"
    empty.mkdir()
    # The compose file's values that only hold inside its containers: the database service's
    # address (here a fresh database of the session's server), the data volumes, 0.0.0.0
    # (here the loopback), the ports, the proxy's address.
    database = {"KEYLINE_DATABASE_URL": empty_db_url}

    def keyline(name: str, arguments: list[str], **here: str) -> subprocess.Popen[str]:
        service = services[name]
        mounts = bind_mounts(service)
        environ = service_environ(service, **database,
                                  KEYLINE_DATA_DIR=str(scratch_dir / f"{name}-data"), **here)
        assert service["command"][:len(arguments) + 1] == ["keyline", *arguments]
        command = [host_path(argument, mounts) for argument in service["command"][1:]]
        return subprocess.Popen([installed.keyline(), *command], cwd=empty,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                env=outside_env(installed.venv, **environ))

    # init: the migrations and the inventory, once; a second run changes nothing
    outputs = []
    for _ in range(2):
        init = keyline("init", ["import"])
        outputs.append(init.communicate(timeout=START_TIMEOUT_S)[0])
        assert init.returncode == 0, outputs[-1]
    assert re.search(r"Total: [1-9]\d* added", outputs[0]), outputs[0]
    assert "Inventory unchanged" in outputs[1], outputs[1]
    # what the compose file's header says to do next: a password for the administrator
    password = "compose-layout-admin-password"
    passwd = subprocess.run(
        [installed.keyline(), "user", "passwd", "admin", "--password-stdin"],
        input=password + "\n", cwd=empty, capture_output=True, text=True,
        timeout=START_TIMEOUT_S,
        env=outside_env(installed.venv, **service_environ(services["portal"], **database)))
    assert passwd.returncode == 0, passwd.stdout + passwd.stderr

    started: list[Portal | Collector] = []
    proxy: subprocess.Popen | None = None
    try:
        collector = Collector(keyline(
            "collector", ["collect"], KEYLINE_TRAPS__HOST="127.0.0.1",
            KEYLINE_TRAPS__PORT=str(free_udp_ports(1)[0])))
        started.append(collector)
        portals = []
        for _ in range(2):  # docker compose up --scale portal=2
            portal = Portal(keyline(
                "portal", ["serve"], KEYLINE_LISTEN_HOST="127.0.0.1",
                KEYLINE_LISTEN_PORT=str(free_tcp_port_on(["127.0.0.1"])),
                KEYLINE_TRUSTED_PROXIES='["127.0.0.1"]'))
            started.append(portal)
            portal.read_until_url()
            portals.append(portal)
        collector.wait_for("Keyline collector is running")
        proxy, port = start_proxy(nginx, scratch_dir / "nginx", [p.port for p in portals])
        base_url = f"http://127.0.0.1:{port}"

        for package, files in ALLOWED.items():
            for file in sorted(files):
                answer = urllib.request.urlopen(f"{base_url}/vendor/{package}/{file}",
                                                timeout=30)
                assert answer.status == 200 and answer.read(), (package, file)

        page = browser.new_context(locale="en-US").new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        log_in(page, base_url, "admin", password)
        page.goto(base_url + "/noc/topology")
        page.wait_for_function(
            "() => window.keylineTopology && window.keylineTopology.cy"
            " && window.keylineTopology.cy.nodes('[kind = \"device\"]').length > 0")
        drawn = page.evaluate(
            "() => window.keylineTopology.cy.nodes('[kind = \"device\"]').length")
        assert drawn == len(load_inventory([EXAMPLE_INVENTORY]).devices)
        # a live page: its socket on the WebSocket transport through the proxy, joined
        page.goto(base_url + "/alarms")
        page.wait_for_selector("#live-state[data-state=live]")
        assert sockets and all(url.startswith(f"ws://127.0.0.1:{port}/socket.io/")
                               and "transport=websocket" in url for url in sockets), sockets
        assert not failed, failed
        # the session opened through the proxy is valid on each replica (one secret key)
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
        for portal in portals:
            assert status_of(portal.port, "/noc/topology", cookie) == 200, portal.output
            assert status_of(portal.port, "/noc/topology", "") in (302, 303), portal.output
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=STOP_TIMEOUT_S)
        for process in reversed(started):
            process.stop()
    secrets = [password, services["portal"]["environment"]["KEYLINE_SECRET_KEY"]]
    for process in started:
        output = process.output if isinstance(process, Portal) else "".join(process.lines)
        assert "Traceback" not in output, output
        outputs.append(output)
    assert not [secret for secret in secrets for output in outputs if secret in output]
