"""The wheel's build step: the portal's front-end files go into its package data.

The portal serves a few npm packages' built files at /vendor/* (portal/vendor.py). No
third-party JavaScript is committed to this repository: a checkout serves them from
node_modules (`npm ci`, run by dev.py), and an installed Keyline has no checkout, so building
the wheel copies exactly the files vendor.py serves (its `ALLOWED` table, the one list), and
each package's licence, into `portal/vendored/<package>/` of the build. When a file is
missing, the build runs `npm ci` first (package-lock.json pins the versions), and stops with
a clear error if npm is not there either. An editable install (`pip install -e .`, dev.py)
copies nothing: the checkout's node_modules is served directly.

Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
NODE_MODULES = ROOT / "node_modules"
VENDOR_MODULE = ROOT / "portal" / "vendor.py"
PACKAGED = Path("portal") / "vendored"  # inside the build; vendor.py's PACKAGED


def vendor_files() -> dict[str, list[str]]:
    """portal/vendor.py's ALLOWED table ({package: {file, ...}}), read from its source: the
    build environment has no Flask to import it with."""
    tree = ast.parse(VENDOR_MODULE.read_text(), str(VENDOR_MODULE))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
            else None)
        if isinstance(target, ast.Name) and target.id == "ALLOWED" and node.value is not None:
            table = ast.literal_eval(_Unwrap().visit(node.value))
            return {package: sorted(files) for package, files in table.items()}
    raise SetupError(f"{VENDOR_MODULE}: no ALLOWED table found")


class _Unwrap(ast.NodeTransformer):
    """frozenset({...}) -> {...}, so that the table is a literal."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id == "frozenset" and node.args:
            return self.visit(node.args[0])
        return node


def _missing(table: dict[str, list[str]]) -> list[str]:
    return [f"{package}/{name}" for package, files in table.items() for name in files
            if not (NODE_MODULES / package / name).is_file()]


class BuildPyWithFrontEnd(build_py):
    """build_py, then the front-end files into the build (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            self.copy_front_end()

    def copy_front_end(self) -> None:
        table = vendor_files()
        if _missing(table):
            if shutil.which("npm") is None:
                raise SetupError("the portal's front-end files are missing from node_modules "
                                 f"({', '.join(_missing(table))}) and npm is not installed: "
                                 "install Node.js 18+ and run `npm ci`")
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
            if _missing(table):
                raise SetupError("`npm ci` did not provide " + ", ".join(_missing(table)))
        destination = Path(self.build_lib) / PACKAGED
        shutil.rmtree(destination, ignore_errors=True)  # no file left from an older table
        for package, files in table.items():
            source = NODE_MODULES / package
            names = files + sorted(path.name for path in source.glob("LICENSE*"))
            for name in names:
                (destination / package / name).parent.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(source / name), str(destination / package / name))


if __name__ == "__main__":  # as setuptools' build backend runs it; importable for the tests
    setup(cmdclass={"build_py": BuildPyWithFrontEnd})
