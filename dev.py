#!/usr/bin/env python3
"""Set up and run Keyline from a checkout: the README's two commands.

    python3 dev.py run    # set up, then run Keyline on its embedded defaults (demo)
    python3 dev.py test   # set up, then run the whole test suite (what CI runs)

Setting up means: a virtual environment in .venv with Keyline and its pinned dependencies,
the portal's front-end packages from the npm registry (when package.json exists), and, when
running as root, the Debian packages the test lab needs (listed in lab/debian-packages.txt).
Each step is skipped when nothing it depends on has changed since the last run.
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


def command_run(extra: list[str]) -> None:
    setup()
    # The demo uses Keyline's own data directory (the settings' data_dir, KEYLINE_DATA_DIR
    # if set), so that every `keyline` command in another terminal reaches it as is.
    os.execv(str(VENV / "bin" / "keyline"), ["keyline", "demo", *extra])


def command_test(extra: list[str]) -> None:
    setup()
    say("ruff check")
    run([str(VENV / "bin" / "ruff"), "check", "."])
    say("pytest")
    result = subprocess.run([str(VENV / "bin" / "pytest"), *extra], cwd=ROOT)
    sys.exit(result.returncode)


def main() -> None:
    commands = {"run": command_run, "test": command_test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
