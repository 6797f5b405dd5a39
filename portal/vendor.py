"""Front-end packages, served from node_modules: /vendor/<package>/<file>.

The portal's browser code uses a few npm packages (package.json at the repository root:
socket.io-client for live pages, cytoscape for topology, chart.js for traffic charts),
installed by `python3 dev.py` with `npm ci`. No third-party JavaScript is committed to this
repository; this route serves the packages' built files from node_modules, and only the files
named in `ALLOWED` (so node_modules' other contents, package sources and metadata, stay
private). A missing file (npm not run) is 404.

An installed Keyline has no checkout: building the wheel copies the files named in `ALLOWED`
(this table is the one list) into the package as `portal/vendored/<package>/<file>` (setup.py),
and they are served from there. Where the files are: KEYLINE_NODE_MODULES in the app config,
else the package's `vendored` folder when it exists (an installed wheel), else the checkout's
node_modules.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory
from flask.typing import ResponseReturnValue

blueprint = Blueprint("vendor", __name__, url_prefix="/vendor")

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
PACKAGED = Path(__file__).resolve().parent / "vendored"  # in a wheel (setup.py)

ALLOWED: dict[str, frozenset[str]] = {
    "socket.io-client": frozenset({"dist/socket.io.min.js", "dist/socket.io.min.js.map"}),
    "cytoscape": frozenset({"dist/cytoscape.min.js"}),
    "chart.js": frozenset({"dist/chart.umd.min.js", "dist/chart.umd.min.js.map"}),
}

CACHE_SECONDS = 3600


@blueprint.get("/<package>/<path:path>")
def vendor_file(package: str, path: str) -> ResponseReturnValue:
    if path not in ALLOWED.get(package, ()):
        abort(404)
    root = Path(current_app.config.get("KEYLINE_NODE_MODULES") or front_end_root())
    if not (root / package / path).is_file():
        abort(404)
    return send_from_directory(root / package, path, max_age=CACHE_SECONDS)


def front_end_root() -> Path:
    """The folder holding `<package>/<file>`: the wheel's copy if installed, else the
    checkout's node_modules."""
    return PACKAGED if PACKAGED.is_dir() else NODE_MODULES
