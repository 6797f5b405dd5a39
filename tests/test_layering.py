"""Data flows one way (DESIGN.md): a lower stage never imports a higher one. The collectors
know nothing of alarms, SLA or the portal: what they need of them (the threshold rules that
judge samples as they are written) is handed in by the composition root, keyline.wiring.
Checked twice: in a fresh interpreter, so that what another test imported does not hide an
import, and in the source, so that an import inside a function (loaded only when it runs)
counts too."""

from __future__ import annotations

import ast
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


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import statement in `source`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_no_collectors_source_imports_a_stage_above_even_inside_a_function() -> None:
    assert imported_names("def f():\n    from alarms.actions import ActionError\n") == [
        (2, "alarms.actions")]  # the check sees what the import-time one cannot
    above = [f"{path.relative_to(ROOT)}:{line}: {module}"
             for path in sorted((ROOT / "collectors").glob("**/*.py"))
             for line, module in imported_names(path.read_text())
             if module.split(".")[0] in ABOVE_COLLECTORS]
    assert above == []
