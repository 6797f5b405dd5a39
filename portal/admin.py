"""The administrator's pages: inventory import, users and roles, topology reconciliation.

Role admin only (`roles_required("admin")`): every other role, staff or customer, gets 404,
as if the pages did not exist. Every form carries the CSRF token (Flask-WTF's CSRFProtect
refuses a POST without it). The pages change the store only through the domain packages'
own functions, and log who did what, never a password.

Inventory import (/admin/inventory). The admin uploads the inventory's YAML files, or one
zip of the inventory folder. The upload is written to a private temporary folder (zip members
only when they are plain YAML files with a safe relative name, with limits on their number
and size: a zip bomb or a `../../etc/passwd` member is refused, not extracted), then read
with config.inventory.loader.check_inventory, exactly as `keyline import` reads files. When
the files have problems, every one is listed with its file (as uploaded, e.g.
`inventory/circuits.yaml`), line and field, and nothing is stored. When they are valid:

- "Check" applies the inventory inside a transaction that is always rolled back
  (store.inventory.apply_inventory under `force_rollback`), to show what an import would
  add, change and retire without storing anything;
- "Import" applies it in one transaction (apply_inventory's own) and shows the summary.

An import makes the store say what the files say, so objects missing from the upload are
retired. One guard: an import that would retire the admin's own account is refused (rolled
back), since it would lock the admin out half-way through. The objects' source positions
are stored as `upload:<file>:<line>` (the temporary folder means nothing later).

Users (/admin/users): every user with role, customer, origin and state; add a local user
(store.users.add_local_user), set a new password (set_password), retire or restore a local
user (set_local_user_retired: the inventory's users are retired by the inventory files). An
admin cannot retire their own account here.

Topology (/admin/topology): the declared-versus-discovered diff (topology.reconcile
.load_diff); a link discovery sees but nobody declared can be accepted
(store.topology.accept_link, recorded with the admin's login name), only if it is among the
currently discovered links (a forged port pair is refused).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from werkzeug.datastructures import FileStorage

from config.inventory.loader import FILE_FIELD, YAML_SUFFIXES, check_inventory
from config.inventory.model import USER_ROLES, Inventory, InventoryProblem, Source
from portal.security import current_viewer, roles_required
from store.inventory import ImportSummary, apply_inventory
from store.queries import list_customers
from store.topology import accept_link, current_discovered_links
from store.users import (
    MIN_PASSWORD_LENGTH,
    UserError,
    add_local_user,
    list_users,
    set_local_user_retired,
    set_password,
)
from topology.reconcile import load_diff

log = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

admin_required = roles_required("admin")

MAX_UPLOAD_FILES = 200
MAX_FILE_BYTES = 8 * 2**20  # one YAML file
MAX_UPLOAD_BYTES = 32 * 2**20  # all of them, zips unpacked
SOURCE_PREFIX = "upload:"
SHOWN_KEYS = 20  # per kind and verb in the import summary

ROLE_LABELS = {
    "noc": lazy_gettext("NOC"),
    "engineer": lazy_gettext("engineer"),
    "account_manager": lazy_gettext("account manager"),
    "customer": lazy_gettext("customer"),
    "admin": lazy_gettext("admin"),
}


class UploadRefused(Exception):
    """The upload as a whole cannot be read (too large, too many files)."""


def _database() -> Any:
    return current_app.extensions["keyline.database"]


# --- the index -----------------------------------------------------------------------------


@blueprint.get("/")
@admin_required
def index() -> ResponseReturnValue:
    return redirect(url_for("admin.inventory"))


# --- inventory import ----------------------------------------------------------------------


def _safe_member(name: str) -> PurePosixPath | None:
    """A zip member's relative path if it is a visible YAML file with a safe name; else None
    (folders, hidden files, macOS resource forks, absolute or `..` paths)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or not path.parts or any(
            part in ("", ".", "..") or part.startswith(".") or part == "__MACOSX"
            for part in path.parts):
        return None
    if path.suffix.lower() not in YAML_SUFFIXES:
        return None
    return path


def _upload_name(name: str | None) -> str:
    """The uploaded file's own name, without any folder the browser sent."""
    return PurePosixPath((name or "").replace("\\", "/")).name


def stage_upload(uploads: list[FileStorage], folder: Path
                 ) -> tuple[list[Path], list[InventoryProblem]]:
    """Write the uploaded YAML files (and the YAML files of uploaded zips) under `folder`.
    Returns the files written, in name order, and the problems of files that were left out
    (named as uploaded). Raises UploadRefused when the upload breaks the limits."""
    written: dict[str, Path] = {}
    problems: list[InventoryProblem] = []
    total = 0

    def write(relative: PurePosixPath, read: Callable[[int], bytes], shown: str) -> None:
        nonlocal total
        key = relative.as_posix()
        if key in written:
            problems.append(InventoryProblem(shown, 0, FILE_FIELD,
                                             "a file with this name was uploaded twice"))
            return
        if len(written) >= MAX_UPLOAD_FILES:
            raise UploadRefused(f"more than {MAX_UPLOAD_FILES} files")
        data = read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            problems.append(InventoryProblem(shown, 0, FILE_FIELD,
                                             f"larger than {MAX_FILE_BYTES // 2**20} MiB"))
            return
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise UploadRefused(f"more than {MAX_UPLOAD_BYTES // 2**20} MiB in all")
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written[key] = target

    for upload in uploads:
        name = _upload_name(upload.filename)
        if not name:
            continue
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in YAML_SUFFIXES:
            write(PurePosixPath(name), upload.stream.read, name)
        elif suffix == ".zip":
            try:
                archive = zipfile.ZipFile(upload.stream)
            except (zipfile.BadZipFile, OSError):
                problems.append(InventoryProblem(name, 0, FILE_FIELD, "not a readable zip file"))
                continue
            with archive:
                found = 0
                for member in archive.infolist():
                    if member.is_dir():
                        continue
                    relative = _safe_member(member.filename)
                    if relative is None:
                        continue
                    found += 1
                    if member.file_size > MAX_FILE_BYTES:
                        problems.append(InventoryProblem(
                            relative.as_posix(), 0, FILE_FIELD,
                            f"larger than {MAX_FILE_BYTES // 2**20} MiB"))
                        continue
                    with archive.open(member) as stream:
                        write(relative, stream.read, relative.as_posix())
                if not found:
                    problems.append(InventoryProblem(name, 0, FILE_FIELD,
                                                     "no .yaml or .yml files in this zip"))
        else:
            problems.append(InventoryProblem(
                name, 0, FILE_FIELD, "not an inventory file: upload .yaml or .yml files,"
                " or a .zip of the inventory folder"))
    return [written[key] for key in sorted(written)], problems


def _relabel(value: Any, rename: Callable[[str], str]) -> Any:
    """`value` with every Source's file renamed (model objects are frozen: new copies)."""
    if isinstance(value, Source):
        return Source(rename(value.file), value.line)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for item in dataclasses.fields(value):
            if item.init:
                old = getattr(value, item.name)
                new = _relabel(old, rename)
                if new is not old:
                    changes[item.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, (tuple, list)):
        items = [_relabel(item, rename) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    if isinstance(value, dict):
        changed = {key: _relabel(item, rename) for key, item in value.items()}
        if any(changed[key] is not value[key] for key in value):
            return changed
        return value
    return value


class _WouldRetireSelf(Exception):
    pass


def run_import(conn: psycopg.Connection, inventory: Inventory, files: list[str], *,
               store: bool, admin: str) -> ImportSummary:
    """Apply `inventory`: for good when `store`, else in a transaction rolled back (what an
    import would do). Raises _WouldRetireSelf (having stored nothing) when it would retire
    the account of `admin`."""
    with conn.transaction(force_rollback=not store):
        summary = apply_inventory(conn, inventory, files=files)
        if admin in summary.kinds["users"].retired:
            raise _WouldRetireSelf
    return summary


def _summary_rows(summary: ImportSummary) -> list[dict[str, Any]]:
    rows = []
    for kind, part in summary.kinds.items():
        rows.append({
            "kind": kind, "unchanged": part.unchanged, "touched": part.touched,
            **{verb: {"count": len(keys), "shown": keys[:SHOWN_KEYS],
                      "more": max(0, len(keys) - SHOWN_KEYS)}
               for verb, keys in (("added", part.added), ("changed", part.changed),
                                  ("retired", part.retired))},
        })
    return rows


@blueprint.route("/inventory", methods=["GET", "POST"])
@admin_required
def inventory() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("admin/inventory.html", problems=None, summary=None)
    viewer = current_viewer()
    store = request.form.get("action") == "import"
    uploads = [f for f in request.files.getlist("files") if f and f.filename]
    if not uploads:
        return render_template("admin/inventory.html", problems=None, summary=None,
                               error=gettext("Choose the inventory files to upload.")), 400
    with tempfile.TemporaryDirectory(prefix="keyline-upload-") as scratch:
        folder = Path(scratch)
        try:
            paths, problems = stage_upload(uploads, folder)
        except UploadRefused as refused:
            return render_template(
                "admin/inventory.html", problems=None, summary=None,
                error=gettext("The upload is too large: %(why)s.", why=str(refused))), 413
        names = [path.relative_to(folder).as_posix() for path in paths]
        prefix = str(folder) + "/"

        def shown(text: str | None) -> str | None:
            return text.replace(prefix, "") if text else text

        inventory_found: Inventory | None = None
        if paths:  # the files that could be read are checked even if others could not
            inventory_found, found = check_inventory(paths)
            problems += [InventoryProblem(shown(p.file) or "", p.line, p.field,
                                          shown(p.message) or "", shown(p.hint))
                         for p in found]
        elif not problems:
            problems = [InventoryProblem("-", 0, FILE_FIELD, "no inventory files uploaded")]
    if problems or inventory_found is None:
        log.info("admin %s: inventory upload refused, %d problem(s)", viewer.user_key,
                 len(problems))
        return render_template("admin/inventory.html", problems=problems, summary=None,
                               files=names), 422
    inventory_found = _relabel(inventory_found,
                               lambda file: SOURCE_PREFIX + (shown(file) or file))
    try:
        with _database().pool.connection() as conn:
            summary = run_import(conn, inventory_found, [SOURCE_PREFIX + n for n in names],
                                 store=store, admin=viewer.user_key)
    except _WouldRetireSelf:
        return render_template(
            "admin/inventory.html", problems=None, summary=None, files=names,
            error=gettext("This import would retire your own account (%(user)s), so nothing"
                          " was stored. Keep your user in the files.", user=viewer.user_key)), 409
    if store:
        log.info("admin %s imported the inventory from %d file(s): %s", viewer.user_key,
                 len(names), summary.totals())
    return render_template("admin/inventory.html", problems=None, summary=summary,
                           rows=_summary_rows(summary), totals=summary.totals(),
                           stored=store, files=names)


# --- users ---------------------------------------------------------------------------------


def _users_page(status: int = 200, error: str | None = None,
                form: dict[str, str] | None = None) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        users = list_users(conn)
        customers = list_customers(conn)
    return render_template("admin/users.html", users=users, customers=customers,
                           roles=USER_ROLES, role_labels=ROLE_LABELS, error=error,
                           form=form or {}, min_password=MIN_PASSWORD_LENGTH), status


@blueprint.get("/users")
@admin_required
def users() -> ResponseReturnValue:
    return _users_page()


@blueprint.post("/users")
@admin_required
def add_user() -> ResponseReturnValue:
    viewer = current_viewer()
    form = {name: request.form.get(name, "").strip()
            for name in ("login", "role", "customer", "full_name")}
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        return _users_page(400, gettext("The two passwords differ."), form)
    try:
        with _database().pool.connection() as conn:
            user = add_local_user(conn, form["login"].lower(), form["role"], password,
                                  customer=form["customer"] or None,
                                  full_name=form["full_name"] or None)
    except UserError as refused:
        return _users_page(400, str(refused), form)
    log.info("admin %s added local user %s (%s)", viewer.user_key, user.key, user.role)
    flash(gettext("User %(user)s added.", user=user.key))
    return redirect(url_for("admin.users"))


@blueprint.post("/users/<key>/password")
@admin_required
def reset_password(key: str) -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        with _database().pool.connection() as conn:
            set_password(conn, key, request.form.get("password", ""))
    except UserError as refused:
        return _users_page(400, str(refused))
    log.info("admin %s set a new password for user %s", viewer.user_key, key)
    flash(gettext("New password set for %(user)s.", user=key))
    return redirect(url_for("admin.users"))


@blueprint.post("/users/<key>/retire")
@admin_required
def retire_user(key: str) -> ResponseReturnValue:
    return _set_retired(key, True)


@blueprint.post("/users/<key>/restore")
@admin_required
def restore_user(key: str) -> ResponseReturnValue:
    return _set_retired(key, False)


def _set_retired(key: str, retired: bool) -> ResponseReturnValue:
    viewer = current_viewer()
    if retired and key == viewer.user_key:
        return _users_page(400, gettext("You cannot retire your own account."))
    try:
        with _database().pool.connection() as conn:
            set_local_user_retired(conn, key, retired)
    except UserError as refused:
        return _users_page(400, str(refused))
    log.info("admin %s %s local user %s", viewer.user_key,
             "retired" if retired else "restored", key)
    flash(gettext("User %(user)s retired.", user=key) if retired
          else gettext("User %(user)s restored.", user=key))
    return redirect(url_for("admin.users"))


# --- topology reconciliation ---------------------------------------------------------------


@blueprint.get("/topology")
@admin_required
def topology() -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        diff = load_diff(conn).as_dict()
    return render_template("admin/topology.html", diff=diff)


@blueprint.post("/topology/accept")
@admin_required
def accept() -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        a_port_id = int(request.form.get("a_port_id", ""))
        z_port_id = int(request.form.get("z_port_id", ""))
    except ValueError:
        return _topology_error(gettext("Choose a discovered link to accept."))
    with _database().pool.connection() as conn:
        discovered = {link.port_ids: link for link in current_discovered_links(conn)}
        pair = (min(a_port_id, z_port_id), max(a_port_id, z_port_id))
        if pair not in discovered:
            return _topology_error(gettext("That link is not among the discovered links."))
        link, new = accept_link(conn, pair[0], pair[1], viewer.user_key)
    log.info("admin %s accepted the discovered link %s", viewer.user_key, link)
    flash(gettext("Link %(link)s accepted.", link=str(link)) if new
          else gettext("Link %(link)s had been accepted before.", link=str(link)))
    return redirect(url_for("admin.topology"))


def _topology_error(message: str) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        diff = load_diff(conn).as_dict()
    return render_template("admin/topology.html", diff=diff, error=message), 400


# --- collection health -----------------------------------------------------------------------


@blueprint.get("/health")
@admin_required
def health() -> ResponseReturnValue:
    """How collection is doing: each running service's last report (the collector's spool,
    polls and traps; the alarm pipeline's events), and what a full spool dropped, each drop
    with its device and the time range counted as unknown (store.collection)."""
    from store.collection import collection_status, drops_since

    with _database().pool.connection() as conn:
        status = collection_status(conn)
        drops = drops_since(conn)[:100]
        names = dict(conn.execute("SELECT id, key FROM devices").fetchall())
    return render_template("admin/health.html", status=status, drops=drops, devices=names)
