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
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from keyline.wiring import EXAMPLE_INVENTORY
from portal.vendor import ALLOWED, NODE_MODULES
from tests.portal_process import Portal
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
    """The wheel of this checkout's files, built in a copy of them (as from a fresh clone:
    setuptools builds in the source folder and would reuse what an earlier build left in
    build/), with the checkout's node_modules (what `npm ci` installed)."""
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "var", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".ruff_cache"))
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


# beyond the suite's 300 s: a build, a venv's worth of installs and a demo, each with its limit
@pytest.mark.timeout(BUILD_TIMEOUT_S + INSTALL_TIMEOUT_S + TRAFFIC_WITHIN_S + 300)
def test_installed_wheel_runs_the_demo_with_its_front_end(
        browser, tmp_path: Path, scratch_dir: Path):  # noqa: F811
    from config.inventory.loader import load_inventory
    from tests.snmp_agents import free_udp_port_on, free_udp_ports

    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    served = {f"portal/vendored/{package}/{name}" for package, files in ALLOWED.items()
              for name in files}
    assert served <= names, sorted(served - names)
    shipped = {name for name in names if name.startswith("portal/vendored/")}
    extra = {name for name in shipped - served if not Path(name).name.startswith("LICENSE")}
    assert not extra, f"node_modules files the portal does not serve: {sorted(extra)}"
    assert not any(name.startswith(("tests/", "node_modules/")) for name in names)

    # In the scratch folder, not pytest's tmp_path (owner-only): as root, the embedded
    # PostgreSQL runs as a system user that must reach the server files inside the venv.
    empty = scratch_dir / "empty"
    empty.mkdir()
    venv = scratch_dir / "venv"
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
