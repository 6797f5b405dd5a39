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
retired. Two guards: an import that would retire the admin's own account is refused (rolled
back), since it would lock the admin out half-way through; an import that would retire more
than the `inventory_max_retire_share` setting of the inventory, or all of it (an empty
file), stores nothing and shows what would go, with a button to confirm. Until then the
upload waits in a private folder of the data directory named by a random token, for that
admin only and for PENDING_TTL_S; the confirmation holds for exactly the objects shown (a
fingerprint of them): if the store changed meanwhile, the new list is shown instead. The
objects' source positions are stored as `upload:<file>:<line>` (the upload's folder means
nothing later).

Users (/admin/users): every user with role, customer, origin, state and open sessions; add
a local user (store.users.add_local_user), set a new password (set_password: it ends the
user's sessions and revokes its personal tokens; service tokens stay), retire or restore a local
user (set_local_user_retired: the inventory's users are retired by the inventory files;
retirement ends the sessions and revokes every token), change a local user's role or
customer (set_user_role: it ends the sessions and revokes every token), end all of a user's sessions
(end_user_sessions; its live pages are disconnected too). An admin cannot retire their own
account here. Every API token is listed (never the token: its first characters, label,
kind, expiry and state) with a button to revoke it.

Topology (/admin/topology): the declared-versus-discovered diff (topology.reconcile
.load_diff); a link discovery sees but nobody declared can be accepted
(store.topology.accept_link, recorded with the admin's login name), only if it is among the
currently discovered links (a forged port pair is refused).

Notifications (/admin/notifications): the notification outbox's failures (sla/notify.py):
every notification that gave up, and every one waiting for a retry after a failed attempt,
with its channel, destination, attempts and last error (scrubbed of secrets when stored);
"Retry now" makes one due at once (store.outbox.retry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import secrets
import shutil
import time
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
from portal.security import clock, current_viewer, roles_required
from store.inventory import (
    ImportSummary,
    RetireNotConfirmed,
    apply_inventory,
    needs_retire_confirmation,
    retired_share,
)
from store.outbox import OutboxError, counts, list_recent, retry
from store.queries import list_customers
from store.sessions import open_sessions
from store.topology import accept_link, current_discovered_links
from store.users import (
    MIN_PASSWORD_LENGTH,
    TOKEN_PASSWORD_CHANGED,
    TOKEN_REVOKED,
    TOKEN_ROLE_CHANGED,
    TOKEN_USER_RETIRED,
    UserError,
    add_local_user,
    end_user_sessions,
    list_api_tokens,
    list_users,
    revoke_api_token,
    set_local_user_retired,
    set_password,
    set_user_role,
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
SHOWN_RETIRED = 1000  # per kind on the confirmation step: what would go, all of it if sane
PENDING_TTL_S = 1800  # an upload awaits its confirmation this long
PENDING_OWNER = ".owner"  # in an upload's folder: the admin who may confirm it
PENDING_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")

ROLE_LABELS = {
    "noc": lazy_gettext("NOC"),
    "engineer": lazy_gettext("engineer"),
    "account_manager": lazy_gettext("account manager"),
    "customer": lazy_gettext("customer"),
    "admin": lazy_gettext("admin"),
}


# Why a token was revoked (store.users.TOKEN_*), in the viewer's language.
TOKEN_REASON_LABELS = {
    TOKEN_REVOKED: lazy_gettext("revoked"),
    TOKEN_PASSWORD_CHANGED: lazy_gettext("password changed"),
    TOKEN_USER_RETIRED: lazy_gettext("user retired"),
    TOKEN_ROLE_CHANGED: lazy_gettext("role changed"),
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


class _RetiredOtherwise(Exception):
    """The store changed since the admin confirmed: the import would now retire other
    objects than the ones shown."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__("the objects to retire changed")
        self.summary = summary


def retired_digest(summary: ImportSummary) -> str:
    """A fingerprint of what an import retires: a confirmation holds for exactly that."""
    retired = sorted(f"{kind}:{key}" for kind, part in summary.kinds.items()
                     for key in part.retired)
    return hashlib.sha256("\n".join(retired).encode()).hexdigest()


def run_import(conn: psycopg.Connection, inventory: Inventory, files: list[str], *,
               store: bool, admin: str, max_retire_share: float = 1.0,
               confirmed_retire: str | None = None) -> ImportSummary:
    """Apply `inventory`: for good when `store`, else in a transaction rolled back (what an
    import would do). Raises, having stored nothing: _WouldRetireSelf when it would retire
    the account of `admin`; store.inventory.RetireNotConfirmed when it would retire more
    than `max_retire_share` and `confirmed_retire` is not given; _RetiredOtherwise when
    `confirmed_retire` (a retired_digest) is not what it would retire now."""
    with conn.transaction(force_rollback=not store):
        # The guard is applied here rather than by apply_inventory_guarded: the admin's own
        # account is checked first, and a confirmation is for exactly what it showed.
        summary = apply_inventory(conn, inventory, files=files)
        if admin in summary.kinds["users"].retired:
            raise _WouldRetireSelf
        if confirmed_retire is not None:
            if retired_digest(summary) != confirmed_retire:
                raise _RetiredOtherwise(summary)
        elif store and needs_retire_confirmation(summary, max_retire_share):
            raise RetireNotConfirmed(summary, retired_share(summary), max_retire_share)
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


def _pending_root() -> Path:
    """Where uploads wait for a confirmation: the data directory, private to Keyline."""
    settings = current_app.extensions["keyline.settings"]
    root = Path(settings.data_dir) / "pending-imports"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def _new_upload_folder(owner: str) -> Path:
    """A private folder for one upload, named by a random token, that remembers its admin;
    folders left unconfirmed for PENDING_TTL_S are removed."""
    root = _pending_root()
    for old in root.iterdir():
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > PENDING_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
    folder = root / secrets.token_urlsafe(18)
    folder.mkdir(mode=0o700)
    (folder / PENDING_OWNER).write_text(owner, encoding="utf-8")
    return folder


def _pending_folder(token: str, owner: str) -> Path | None:
    """The upload waiting under `token` for `owner`; None when there is none (unknown,
    expired, another admin's)."""
    if not PENDING_TOKEN.fullmatch(token or ""):
        return None
    folder = _pending_root() / token
    try:
        if (folder / PENDING_OWNER).read_text(encoding="utf-8") != owner:
            return None
        if time.time() - folder.stat().st_mtime > PENDING_TTL_S:
            return None
    except OSError:
        return None
    return folder


def _check_folder(folder: Path, paths: list[Path], problems: list[InventoryProblem]
                  ) -> tuple[Inventory | None, list[InventoryProblem], list[str]]:
    """Check the staged files under `folder`: the inventory (sources renamed
    `upload:<file>:<line>`) or the problems, and the files' names as uploaded."""
    names = [path.relative_to(folder).as_posix() for path in paths]
    prefix = str(folder) + "/"

    def shown(text: str | None) -> str | None:
        return text.replace(prefix, "") if text else text

    inventory_found: Inventory | None = None
    if paths:  # the files that could be read are checked even if others could not
        inventory_found, found = check_inventory(paths)
        problems = problems + [InventoryProblem(shown(p.file) or "", p.line, p.field,
                                                shown(p.message) or "", shown(p.hint))
                               for p in found]
    elif not problems:
        problems = [InventoryProblem("-", 0, FILE_FIELD, "no inventory files uploaded")]
    if problems or inventory_found is None:
        return None, problems, names
    return _relabel(inventory_found, lambda file: SOURCE_PREFIX + (shown(file) or file)
                    ), [], names


def _staged_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and path.suffix.lower() in YAML_SUFFIXES)


def _retiring(summary: ImportSummary) -> list[dict[str, Any]]:
    """What an import would retire, kind by kind, for the confirmation step."""
    return [{"kind": kind, "count": len(part.retired), "shown": part.retired[:SHOWN_RETIRED],
             "more": max(0, len(part.retired) - SHOWN_RETIRED)}
            for kind, part in summary.kinds.items() if part.retired]


@blueprint.route("/inventory", methods=["GET", "POST"])
@admin_required
def inventory() -> ResponseReturnValue:
    """Check, import, or confirm an import that retires much (module docstring)."""
    if request.method == "GET":
        return render_template("admin/inventory.html", problems=None, summary=None)
    viewer = current_viewer()
    action = request.form.get("action")
    if action in ("confirm", "cancel"):
        folder = _pending_folder(request.form.get("pending", ""), viewer.user_key)
        if folder is None:
            return render_template("admin/inventory.html", problems=None, summary=None,
                                   error=gettext("That import is no longer waiting for a"
                                                 " confirmation: upload the files again.")), 409
        if action == "cancel":
            shutil.rmtree(folder, ignore_errors=True)
            flash(gettext("Import cancelled: nothing was stored."))
            return redirect(url_for("admin.inventory"))
        return _import_folder(viewer.user_key, folder, _staged_files(folder), [],
                              store=True, confirmed=request.form.get("retired", ""))
    store = action == "import"
    uploads = [f for f in request.files.getlist("files") if f and f.filename]
    if not uploads:
        return render_template("admin/inventory.html", problems=None, summary=None,
                               error=gettext("Choose the inventory files to upload.")), 400
    folder = _new_upload_folder(viewer.user_key)
    try:
        paths, problems = stage_upload(uploads, folder)
    except UploadRefused as refused:
        shutil.rmtree(folder, ignore_errors=True)
        return render_template(
            "admin/inventory.html", problems=None, summary=None,
            error=gettext("The upload is too large: %(why)s.", why=str(refused))), 413
    return _import_folder(viewer.user_key, folder, paths, problems, store=store)


def _import_folder(admin: str, folder: Path, paths: list[Path],
                   problems: list[InventoryProblem], *, store: bool,
                   confirmed: str | None = None) -> ResponseReturnValue:
    """Check the files staged in `folder`, then show what an import would do, import them,
    or ask for a confirmation (keeping the folder for it; otherwise it is removed)."""
    keep = False
    try:
        inventory_found, problems, names = _check_folder(folder, paths, problems)
        if inventory_found is None:
            log.info("admin %s: inventory upload refused, %d problem(s)", admin,
                     len(problems))
            return render_template("admin/inventory.html", problems=problems, summary=None,
                                   files=names), 422
        max_share = current_app.extensions["keyline.settings"].inventory_max_retire_share
        try:
            with _database().pool.connection() as conn:
                summary = run_import(conn, inventory_found,
                                     [SOURCE_PREFIX + n for n in names], store=store,
                                     admin=admin, max_retire_share=max_share,
                                     confirmed_retire=confirmed or None)
        except _WouldRetireSelf:
            return render_template(
                "admin/inventory.html", problems=None, summary=None, files=names,
                error=gettext("This import would retire your own account (%(user)s), so"
                              " nothing was stored. Keep your user in the files.",
                              user=admin)), 409
        except (RetireNotConfirmed, _RetiredOtherwise) as refused:
            keep = True
            log.info("admin %s: an import retiring %d object(s) awaits confirmation", admin,
                     refused.summary.totals()["retired"])
            return render_template(
                "admin/inventory.html", problems=None, summary=None, files=names,
                confirm={"pending": folder.name, "retired": retired_digest(refused.summary),
                         "totals": refused.summary.totals(),
                         "share": round(100 * retired_share(refused.summary)),
                         "max_share": round(100 * max_share),
                         "changed": isinstance(refused, _RetiredOtherwise),
                         "kinds": _retiring(refused.summary)}), 409
        if store:
            log.info("admin %s imported the inventory from %d file(s): %s", admin,
                     len(names), summary.totals())
        return render_template(
            "admin/inventory.html", problems=None, summary=summary,
            rows=_summary_rows(summary), totals=summary.totals(), stored=store, files=names,
            needs_confirmation=not store and needs_retire_confirmation(summary, max_share))
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


# --- users ---------------------------------------------------------------------------------


def _users_page(status: int = 200, error: str | None = None,
                form: dict[str, str] | None = None) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        users = list_users(conn)
        customers = list_customers(conn)
        tokens = list_api_tokens(conn)
        sessions: dict[str, int] = {}
        for found in open_sessions(conn):
            sessions[found.user_key] = sessions.get(found.user_key, 0) + 1
    return render_template("admin/users.html", users=users, customers=customers,
                           roles=USER_ROLES, role_labels=ROLE_LABELS, error=error,
                           form=form or {}, min_password=MIN_PASSWORD_LENGTH,
                           tokens=tokens, sessions=sessions, now=clock(),
                           reason_labels=TOKEN_REASON_LABELS), status


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


@blueprint.post("/users/<key>/role")
@admin_required
def change_role(key: str) -> ResponseReturnValue:
    viewer = current_viewer()
    if key == viewer.user_key:
        return _users_page(400, gettext("You cannot change your own role."))
    role = request.form.get("role", "").strip()
    customer = request.form.get("customer", "").strip() or None
    try:
        with _database().pool.connection() as conn:
            set_user_role(conn, key, role, customer if role == "customer" else None)
    except UserError as refused:
        return _users_page(400, str(refused))
    log.info("admin %s gave local user %s the role %s%s", viewer.user_key, key, role,
             f" of customer {customer}" if role == "customer" else "")
    flash(gettext("Role of %(user)s changed; its sessions ended and its tokens revoked.",
                  user=key))
    return redirect(url_for("admin.users"))


@blueprint.post("/users/<key>/end-sessions")
@admin_required
def end_sessions(key: str) -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        with _database().pool.connection() as conn:
            ended = end_user_sessions(conn, key)
    except UserError as refused:
        return _users_page(400, str(refused))
    log.info("admin %s ended %d session(s) of user %s", viewer.user_key, len(ended), key)
    flash(gettext("Sessions of %(user)s ended: %(count)d.", user=key, count=len(ended)))
    return redirect(url_for("admin.users"))


@blueprint.post("/tokens/revoke")
@admin_required
def revoke_token() -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        token_id = int(request.form.get("token_id", ""))
    except ValueError:
        return _users_page(400, gettext("Choose a token to revoke."))
    try:
        with _database().pool.connection() as conn:
            revoke_api_token(conn, token_id)
    except UserError as refused:
        return _users_page(400, str(refused))
    log.info("admin %s revoked API token %d", viewer.user_key, token_id)
    flash(gettext("Token %(id)d revoked.", id=token_id))
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


# --- notifications ----------------------------------------------------------------------------

NOTIFICATIONS_SHOWN = 500
CHANNEL_LABELS = {"email": lazy_gettext("e-mail"), "webhook": lazy_gettext("webhook")}


def _notifications_page(status: int = 200, error: str | None = None) -> ResponseReturnValue:
    with _database().pool.connection() as conn:
        rows = list_recent(conn, ("failed", "pending"), NOTIFICATIONS_SHOWN, with_errors=True)
        totals = counts(conn)
    return render_template("admin/notifications.html", rows=rows, counts=totals,
                           channel_labels=CHANNEL_LABELS, error=error), status


@blueprint.get("/notifications")
@admin_required
def notifications() -> ResponseReturnValue:
    return _notifications_page()


@blueprint.post("/notifications/retry")
@admin_required
def retry_notification() -> ResponseReturnValue:
    viewer = current_viewer()
    try:
        notification_id = int(request.form.get("notification_id", ""))
    except ValueError:
        return _notifications_page(400, gettext("Choose a notification to retry."))
    try:
        with _database().pool.connection() as conn:
            retry(conn, notification_id)
    except OutboxError:
        return _notifications_page(400, gettext(
            "Notification %(id)d cannot be retried now: it does not exist, is being sent"
            " or was sent.", id=notification_id))
    log.info("admin %s retried notification %d", viewer.user_key, notification_id)
    flash(gettext("Notification %(id)d is due now: the notifier sends it at its next look.",
                  id=notification_id))
    return redirect(url_for("admin.notifications"))
