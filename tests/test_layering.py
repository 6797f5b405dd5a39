"""Data flows one way (DESIGN.md): a lower stage never imports a higher one. The collectors
know nothing of alarms, SLA or the portal: what they need of them (the threshold rules that
judge samples as they are written) is handed in by the composition root, keyline.wiring.
Checked in a fresh interpreter, so that what another test imported does not hide an import."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import collectors

ROOT = Path(__file__).resolve().parent.parent
ABOVE_COLLECTORS = ("alarms", "sla", "portal", "keyline")


def test_importing_every_collectors_module_loads_nothing_of_the_stages_above() -> None:
    modules = sorted(f"collectors.{info.name}"
                     for info in pkgutil.iter_modules(collectors.__path__))
    assert "collectors.service" in modules
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    above = [name for name in loaded if name.split(".")[0] in ABOVE_COLLECTORS]
    assert above == [], f"the collectors import {above}"
