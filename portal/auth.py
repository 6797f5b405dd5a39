"""Login, logout and the language switch.

Login checks the name and password with store.users.authenticate (Argon2; an unknown name
costs the same time as a wrong password) after asking the login throttle
(portal/security.py) whether this name or this address has failed too often lately. The
error never says which of name or password was wrong. Neither the password nor the session
ever reaches a log or a page.

Logout is a POST with the CSRF token (a link or an image on another site cannot log a user
out). The language switch is a POST too; it works logged in or not.
"""

from __future__ import annotations

import logging
import math

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from config.inventory.validate import LOGIN_NAME
from portal.i18n import LANGUAGES
from portal.security import LoginThrottle, end_session, safe_next, start_session
from store.users import authenticate

log = logging.getLogger(__name__)

blueprint = Blueprint("auth", __name__)

MAX_NAME_LENGTH = 100
MAX_PASSWORD_LENGTH = 1024  # Argon2 of a megabyte "password" is a cheap denial of service


def _loggable(name: str) -> str:
    """The name as typed, for the log, unless it cannot be a login name: a password typed
    into the name field must not end up in the log."""
    return name if LOGIN_NAME.match(name) else "(not a valid login name)"


def _throttle() -> LoginThrottle:
    return current_app.extensions["keyline.login_throttle"]


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
    wait_s = _throttle().retry_after(name, address)
    if wait_s > 0:
        log.warning("login throttled for user %r from %s", _loggable(name), address)
        error = gettext("Too many failed logins. Try again in %(minutes)d minutes.",
                        minutes=max(1, math.ceil(wait_s / 60)))
        return render_template("login.html", next=next_path, name=name, error=error), 429
    user = None
    if name and password and len(password) <= MAX_PASSWORD_LENGTH:
        database = current_app.extensions["keyline.database"]
        with database.pool.connection() as conn:
            user = authenticate(conn, name, password)
    if user is None:
        _throttle().failed(name, address)
        log.info("failed login for user %r from %s", _loggable(name), address)
        error = gettext("Wrong name or password.")
        return render_template("login.html", next=next_path, name=name, error=error), 401
    _throttle().succeeded(name)
    start_session(user)
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
