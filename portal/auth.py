"""Login, logout and the language switch.

Login checks the name and password with store.users.authenticate (Argon2; an unknown name
costs the same time as a wrong password) through the login protection
(portal/security.attempt_login): after failures for this name (or many from this address)
the next attempt waits, answered 429 with Retry-After and refused before the password is
checked; after the wait the right password works. The error never says which of name or
password was wrong. Neither the password nor the session secret ever reaches a log or a
page. A right password starts a new stored session (portal/security.start_session).

Logout is a POST with the CSRF token (a link or an image on another site cannot log a user
out); it ends the stored session, so a copy of the cookie is useless afterwards. The
language switch is a POST too; it works logged in or not.
"""

from __future__ import annotations

import logging
import math

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from config.inventory.validate import LOGIN_NAME
from portal.i18n import LANGUAGES
from portal.security import (
    accounts,
    attempt_login,
    clock,
    end_session,
    safe_next,
    start_session,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("auth", __name__)

MAX_NAME_LENGTH = 100
MAX_PASSWORD_LENGTH = 1024  # Argon2 of a megabyte "password" is a cheap denial of service


def _loggable(name: str) -> str:
    """The name as typed, for the log, unless it cannot be a login name: a password typed
    into the name field must not end up in the log."""
    return name if LOGIN_NAME.match(name) else "(not a valid login name)"


def _wait_message(wait_s: float) -> str:
    if wait_s < 120:
        return gettext("Too many failed logins. Try again in %(seconds)d seconds.",
                       seconds=max(1, math.ceil(wait_s)))
    return gettext("Too many failed logins. Try again in %(minutes)d minutes.",
                   minutes=math.ceil(wait_s / 60))


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.get("viewer") is not None:
            return redirect(next_path or url_for("index"))
        return render_template("login.html", next=next_path, name="", error=None)
    name = request.form.get("name", "").strip().lower()[:MAX_NAME_LENGTH]
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    checked = password if password and len(password) <= MAX_PASSWORD_LENGTH else None
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        attempt = attempt_login(conn, name, checked, address=address, now=clock(),
                                rules=accounts())
    if attempt.wait_s > 0:
        log.warning("login for user %r from %s refused: %.0f s to wait after failures",
                    _loggable(name), address, attempt.wait_s)
        page = render_template("login.html", next=next_path, name=name,
                               error=_wait_message(attempt.wait_s))
        return page, 429, {"Retry-After": str(max(1, math.ceil(attempt.wait_s)))}
    user = attempt.user
    if user is None:
        log.info("failed login for user %r from %s", _loggable(name), address)
        error = gettext("Wrong name or password.")
        return render_template("login.html", next=next_path, name=name, error=error), 401
    start_session(user, address)
    log.info("user %s (%s) logged in from %s", user.key, user.role, address)
    return redirect(next_path or url_for("index"))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    end_session()
    return redirect(url_for("auth.login"))


@blueprint.post("/language")
def language() -> ResponseReturnValue:
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(safe_next(request.form.get("next")) or url_for("index"))
